"""Snapshot and restore: the disaster-recovery drill.

A snapshot is `data.mdb` (a compacted, transactionally consistent `env.copyfd`) plus
`manifest.json` listing every blob digest, every action entry's value hash, counts and the
sha256 of the data file. Restore re-verifies all of it before touching the target, so a damaged
or altered snapshot is refused rather than installed. Both sides also check every sealed action
entry against its own digest (`layout.unseal_action`), so an entry edited before the snapshot
(with the manifest written to match) is refused too. Unsealed entries (snapshots of an older
Maestro's cache) and newer ones pass: they are kept as they are and never served as hits.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import lmdb
from pydantic import ValidationError

from maestro.errors import CacheError, IntegrityError

from . import layout as L
from .action import NewerSchemaError
from .files import (
    DataFileManifest,
    check_data_file,
    create_private,
    data_file_facts,
    restore_staged,
)

log = logging.getLogger(__name__)

FORMAT: Literal["maestro-cache-snapshot/1"] = "maestro-cache-snapshot/1"
DATA_FILE = L.DATA_FILE
MANIFEST_FILE = "manifest.json"


class Manifest(DataFileManifest):
    """What a snapshot must contain, checked entry by entry on restore."""

    format: Literal["maestro-cache-snapshot/1"] = FORMAT
    data_file: str = DATA_FILE
    blob_count: int
    action_count: int
    total_bytes: int
    """Stored value bytes (blobs + action results), as `stats().bytes` counts them."""
    blobs: dict[str, int]
    """Blob sha256 hex -> size."""
    actions: dict[str, str]
    """Action digest hex -> sha256 hex of the stored action-result bytes."""


@dataclass(frozen=True, slots=True)
class RestoreReport:
    manifest: Manifest
    target: Path
    replaced: Path | None
    """Where the previous cache was moved (with --force), kept until the user deletes it."""
    seconds: float


def _sealed_action_problem(key: bytes, data: bytes) -> str | None:
    """Why a sealed action entry is corrupt, or None; unsealed and newer entries are let through
    (an older Maestro's snapshot holds only unsealed ones; the cache quarantines them on read)."""
    try:
        L.unseal_action(key, data)
    except (L.UnsealedActionError, NewerSchemaError):
        return None
    except CacheError as exc:
        return exc.message
    return None


def _open_readonly(path: Path) -> tuple[lmdb.Environment, L.Dbs]:
    env = lmdb.open(
        str(path), readonly=True, lock=False, max_dbs=len(L.DB_NAMES) + 1, map_size=1 << 20
    )
    try:
        return env, L.open_dbs(env, create=False)
    except lmdb.Error:
        env.close()
        raise


def take_snapshot(env: lmdb.Environment, dest_dir: Path) -> Manifest:
    if dest_dir.exists() and any(dest_dir.iterdir()):
        raise CacheError(
            f"snapshot destination {dest_dir} is not empty", hint="choose a new or empty directory"
        )
    dest_dir.parent.mkdir(parents=True, exist_ok=True)
    dest_dir.mkdir(mode=0o700, exist_ok=True)  # an existing empty directory is the user's choice
    try:
        # copyfd into a file created 0600: env.copy would create it with LMDB's 0644.
        with create_private(dest_dir / DATA_FILE) as out:
            env.copyfd(out.fileno(), compact=True)
            out.flush()
            os.fsync(out.fileno())
        blobs: dict[str, int] = {}
        actions: dict[str, str] = {}
        total = 0
        corrupt: list[str] = []
        copy, dbs = _open_readonly(dest_dir)
        try:
            with copy.begin() as txn:
                for key, data in txn.cursor(db=dbs.cas):
                    if hashlib.sha256(data).digest() != key:
                        corrupt.append(key.hex())
                    blobs[key.hex()] = len(data)
                    total += len(data)
                for key, data in txn.cursor(db=dbs.ac):
                    if _sealed_action_problem(key, data) is not None:
                        corrupt.append(key.hex())
                    actions[key.hex()] = hashlib.sha256(data).hexdigest()
                    total += len(data)
        finally:
            copy.close()
        if corrupt:
            raise IntegrityError(
                f"{len(corrupt)} corrupt entries in the cache, e.g. {corrupt[0]}; "
                "a snapshot would preserve them",
                hint="run `maestro cache verify` (it quarantines them), then snapshot again",
            )
        data_path = dest_dir / DATA_FILE
        manifest = Manifest(
            **data_file_facts(data_path),
            blob_count=len(blobs),
            action_count=len(actions),
            total_bytes=total,
            blobs=blobs,
            actions=actions,
        )
        tmp = dest_dir / (MANIFEST_FILE + ".tmp")
        tmp.unlink(missing_ok=True)
        with create_private(tmp) as fh:
            fh.write(manifest.model_dump_json(indent=1).encode())
        tmp.replace(dest_dir / MANIFEST_FILE)
    except BaseException:
        for name in (DATA_FILE, MANIFEST_FILE, MANIFEST_FILE + ".tmp"):
            (dest_dir / name).unlink(missing_ok=True)
        raise
    log.info("snapshot of %d blobs, %d actions -> %s", len(blobs), len(actions), dest_dir)
    return manifest


def load_manifest(snapshot_dir: Path) -> Manifest:
    path = snapshot_dir / MANIFEST_FILE
    try:
        return Manifest.model_validate_json(path.read_bytes())
    except FileNotFoundError as exc:
        raise CacheError(
            f"{snapshot_dir} is not a cache snapshot (no {MANIFEST_FILE})",
            hint="pass the directory `maestro cache snapshot` wrote",
        ) from exc
    except ValidationError as exc:
        raise IntegrityError(f"invalid snapshot manifest {path}: {exc}") from exc


def check_snapshot(snapshot_dir: Path) -> Manifest:
    """Re-verify a snapshot in place: data file hash, then every blob and action entry."""
    manifest = load_manifest(snapshot_dir)
    refuse = f"refusing to restore from {snapshot_dir}"
    check_data_file(snapshot_dir / manifest.data_file, manifest, refuse)
    _check_entries(snapshot_dir, manifest, refuse)
    return manifest


def _check_entries(env_dir: Path, manifest: Manifest, refuse: str) -> None:
    """Re-hash every blob against its key and the manifest; compare every action entry."""
    problems: list[str] = []
    try:
        env, dbs = _open_readonly(env_dir)
    except lmdb.Error as exc:
        raise IntegrityError(f"{refuse}: unreadable data file: {exc}") from exc
    try:
        with env.begin() as txn:
            seen = 0
            for key, data in txn.cursor(db=dbs.cas):
                seen += 1
                hex_ = key.hex()
                if manifest.blobs.get(hex_) != len(data):
                    problems.append(f"blob {hex_} is not in the manifest")
                elif hashlib.sha256(data).digest() != key:
                    problems.append(f"blob {hex_} does not hash to its digest")
            if seen != manifest.blob_count or seen != len(manifest.blobs):
                problems.append(f"{seen} blobs stored, manifest lists {len(manifest.blobs)}")
            seen = 0
            for key, data in txn.cursor(db=dbs.ac):
                seen += 1
                if manifest.actions.get(key.hex()) != hashlib.sha256(data).hexdigest():
                    problems.append(f"action {key.hex()} differs from the manifest")
                elif (why := _sealed_action_problem(key, data)) is not None:
                    problems.append(f"action {key.hex()}: {why}")
            if seen != manifest.action_count or seen != len(manifest.actions):
                problems.append(f"{seen} actions stored, manifest lists {len(manifest.actions)}")
    finally:
        env.close()
    if problems:
        more = f" (+{len(problems) - 3} more)" if len(problems) > 3 else ""
        shown = "; ".join(problems[:3]) + more
        raise IntegrityError(
            f"{refuse}: {shown}", hint="the snapshot was altered or damaged; use another snapshot"
        )


def restore_snapshot(snapshot_dir: Path, target: Path, *, force: bool = False) -> RestoreReport:
    from .store import is_open_in_process, make_private

    started = time.monotonic()
    if is_open_in_process(target):
        raise CacheError(
            f"the cache at {target} is open in this process", hint="close it before restoring"
        )
    load_manifest(snapshot_dir)  # a wrong path is reported before the target
    occupied = target.exists() and any(target.iterdir())
    if occupied and not force:
        raise CacheError(
            f"{target} already holds a cache",
            hint="pass --force to replace it (the old one is kept beside it)",
        )
    manifest = load_manifest(snapshot_dir)
    refuse = f"refusing to restore from {snapshot_dir}"
    replaced = restore_staged(
        snapshot_dir / manifest.data_file,
        manifest,
        refuse,
        target,
        lambda staged: _check_entries(staged, manifest, refuse),
    )
    if replaced is not None:
        # Kept for the user to delete, and still captured test output. The restore itself is
        # done: a failure here is reported, not raised.
        try:
            make_private(replaced)
        except (CacheError, OSError) as exc:
            log.warning("could not make %s private: %s", replaced, exc)
    dir_fd = os.open(target.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    log.info("restored %s -> %s", snapshot_dir, target)
    return RestoreReport(manifest, target, replaced, time.monotonic() - started)
