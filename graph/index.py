"""The persisted per-file index: what a previous process learned about each file.

An entry is reused without reading the file when its (size, mtime_ns, inode) are unchanged and
its mtime is older than the index itself by a safety margin (git's "racily clean" rule: a file
written in the same tick as the index could change without changing its stat). A file whose stat
changed is re-hashed; if the content digest is unchanged, its scan is reused too.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgpack

from maestro.graph.scanner import SCANNER_VERSION, RawImport

log = logging.getLogger(__name__)

INDEX_FORMAT = 2  # 2: each file's imports are a nested msgpack blob, decoded on demand
MAGIC = b"MXGI"
"""The file: MAGIC, the CRC-32 of the payload (4 bytes, big-endian), the msgpack payload. The
check makes a damaged file a miss up front: parts of the payload are decoded only later."""
RACY_MARGIN_NS = 2_000_000_000


class FileEntry:
    """What the index knows of one Python file. Imports stay an encoded blob until asked for: a
    warm process that restores the resolved edges never needs them, and decoding ~30k small
    lists is most of an index load."""

    __slots__ = ("_imports", "_packed", "digest", "inode", "mtime_ns", "problems", "size",
                 "syntax_checked")  # fmt: skip

    def __init__(
        self,
        size: int,
        mtime_ns: int,
        inode: int,
        digest: str,  # sha256 hex of the content; "" until someone needs it
        imports: list[RawImport] | None,
        problems: list[tuple[int, str]] | None = None,  # (line, message)
        syntax_checked: bool = False,
        packed: bytes | list[Any] | None = None,  # encoded (from the index) or plain (a scan)
    ) -> None:
        self.size = size
        self.mtime_ns = mtime_ns
        self.inode = inode
        self.digest = digest
        self._imports = imports
        self._packed = packed
        self.problems = problems if problems is not None else []
        self.syntax_checked = syntax_checked

    @property
    def imports(self) -> list[RawImport]:
        if self._imports is None:
            try:
                packed = self._packed or []
                if isinstance(packed, bytes):
                    packed = msgpack.unpackb(packed)
                imports = [RawImport(k, m, lv, tuple(n), ln) for k, m, lv, n, ln in packed]
            except Exception as exc:  # unreachable past the CRC check, unless we wrote it so
                log.warning("ignoring damaged imports in the graph index: %s", exc)
                imports, self.size = [], -1  # -1: never fresh again, rescanned on next look
            self._imports = imports
            self._packed = None
        return self._imports

    def copy(self) -> FileEntry:
        """An entry no later change to this one reaches (imports are immutable tuples in a list
        nobody edits, so they are shared; problems grow in place, so they are not)."""
        return FileEntry(
            self.size,
            self.mtime_ns,
            self.inode,
            self.digest,
            self._imports,
            list(self.problems),
            self.syntax_checked,
            packed=self._packed,
        )

    def pack(self) -> list[Any]:
        packed = (
            self._packed
            if self._imports is None
            else [[i.kind, i.module, i.level, list(i.names), i.line] for i in self._imports]
        )
        if isinstance(packed, list):
            packed = msgpack.packb(packed)
        return [
            self.size,
            self.mtime_ns,
            self.inode,
            self.digest,
            packed or b"",
            [list(p) for p in self.problems],
            self.syntax_checked,
        ]

    @classmethod
    def unpack(cls, raw: list[Any]) -> FileEntry:
        size, mtime_ns, inode, digest, imports, problems, checked = raw
        if not isinstance(imports, bytes):
            raise TypeError("imports must be an encoded blob")
        return cls(
            size,
            mtime_ns,
            inode,
            digest,
            None,
            [(int(a), str(b)) for a, b in problems],
            bool(checked),
            packed=imports,
        )


@dataclass(slots=True)
class Index:
    path: Path | None
    files: dict[str, FileEntry] = field(default_factory=dict)
    dynamic: dict[str, list[str]] = field(default_factory=dict)  # test file -> recorded inputs
    # What each recorded directory listing said when it was recorded, so that a name added or
    # removed since is told from an edit once the graph knows the file: recorder (test file or
    # module) -> {directory: digest of its names}, and digest -> the names.
    listed: dict[str, dict[str, str]] = field(default_factory=dict)
    listings: dict[str, frozenset[str]] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)  # e.g. cached distribution map
    saved_at_ns: int = 0
    dirty: bool = False

    @classmethod
    def load(cls, path: Path | None) -> Index:
        if path is None:
            return cls(None)
        try:
            raw = path.read_bytes()
            payload = raw[8:]
            if raw[:4] != MAGIC or int.from_bytes(raw[4:8], "big") != zlib.crc32(payload):
                log.warning("ignoring graph index %s: not a current index or damaged", path)
                return cls(path, dirty=True)
            data = _unpack(payload)
            if data.get("format") != INDEX_FORMAT or data.get("scanner") != SCANNER_VERSION:
                return cls(path, dirty=True)
            return cls(
                path,
                files={k: FileEntry.unpack(v) for k, v in data["files"].items()},
                dynamic={k: list(v) for k, v in data.get("dynamic", {}).items()},
                listed={k: dict(v) for k, v in data.get("listed", {}).items()},
                listings={k: frozenset(v) for k, v in data.get("listings", {}).items()},
                extra=dict(data.get("extra", {})),
                saved_at_ns=int(data.get("saved_at_ns", 0)),
            )
        except FileNotFoundError:
            return cls(path, dirty=True)
        except Exception as exc:  # a damaged index is only a cache: rebuild, never fail
            log.warning("ignoring unreadable graph index %s: %s", path, exc)
            return cls(path, dirty=True)

    def fresh(self, rel: str, st: os.stat_result) -> FileEntry | None:
        """The entry for `rel` if its stat proves it unchanged, else None."""
        entry = self.files.get(rel)
        if (
            entry is not None
            and entry.size == st.st_size
            and entry.mtime_ns == st.st_mtime_ns
            and entry.inode == st.st_ino
            and st.st_mtime_ns < self.saved_at_ns - RACY_MARGIN_NS
        ):
            return entry
        return None

    def save(self) -> None:
        if self.path is None or not self.dirty:
            return
        now = time.time_ns()
        seen = {digest for dirs in self.listed.values() for digest in dirs.values()}
        for digest in self.listings.keys() - seen:
            del self.listings[digest]  # no recording refers to it any more
        try:
            payload = _pack(
                {
                    "format": INDEX_FORMAT,
                    "scanner": SCANNER_VERSION,
                    "saved_at_ns": now,
                    "files": {k: v.pack() for k, v in self.files.items()},
                    "dynamic": self.dynamic,
                    "listed": self.listed,
                    "listings": {k: sorted(v) for k, v in self.listings.items()},
                    "extra": self.extra,
                }
            )
        except (TypeError, ValueError, OverflowError) as exc:  # only a cache: never fail a build
            log.warning("cannot save graph index %s: %s", self.path, exc)
            return
        tmp = self.path.with_suffix(f".tmp{os.getpid()}")
        try:
            tmp.write_bytes(MAGIC + zlib.crc32(payload).to_bytes(4, "big") + payload)
            os.replace(tmp, self.path)
        except OSError as exc:
            log.warning("cannot save graph index %s: %s", self.path, exc)
            with contextlib.suppress(OSError):
                tmp.unlink()
            return
        self.saved_at_ns = now
        self.dirty = False


# The graph holds no name that is not UTF-8 (maestro.names), but the index, a cache of whatever
# it is given, stays exact for one anyway: such a str round-trips through surrogateescape. Both
# ends try strict UTF-8 first, the fast path of msgpack's C code.


def _pack(doc: dict[str, Any]) -> bytes:
    try:
        return msgpack.packb(doc, use_bin_type=True)
    except UnicodeEncodeError:
        return msgpack.packb(doc, use_bin_type=True, unicode_errors="surrogateescape")


def _unpack(payload: bytes) -> dict[str, Any]:
    try:
        data = msgpack.unpackb(payload, raw=False, strict_map_key=False)
    except UnicodeDecodeError:
        data = msgpack.unpackb(
            payload, raw=False, strict_map_key=False, unicode_errors="surrogateescape"
        )
    if not isinstance(data, dict):
        raise TypeError(f"the index is a {type(data).__name__}, not a map")
    return data
