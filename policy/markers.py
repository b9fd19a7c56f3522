"""pytest markers a test file applies, read from its text: what the policy's marker rules
(quarantine, never-skip, no-cache) are asked about. Stdlib only: a run that needs no policy
decision still scans markers to know that."""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from maestro.paths import replace_file

_MARK = re.compile(r"pytest\.mark\.([A-Za-z_]\w*)")
log = logging.getLogger(__name__)
MEMO_DIR = "policy-memo"
"""Under the workspace's state folder: plan-time decisions by policy digest (policy/memo.py)
and the marker scans by content digest (:data:`MARKERS_FILE`)."""
MARKERS_FILE = "markers.json"


@dataclass
class MarkerScanner:
    """pytest markers a test file applies (``@pytest.mark.critical``, ``pytestmark = ...``),
    read from its text and remembered by modification time. Static: a marker applied by a
    plugin or conftest hook is not seen (docs/policy.md)."""

    root: Path
    # target -> (its modification time, or its content digest when the caller knew it; markers)
    _seen: dict[str, tuple[int | str, tuple[str, ...]]] = field(default_factory=dict)
    # where scans by content digest are kept for the next process (:meth:`keep_in`)
    kept: Path | None = None
    _dirty: bool = False

    def keep_in(self, path: Path) -> None:
        """Read the scans kept in ``path`` (by content digest: a file whose digest the caller
        gives is not read again) and write new ones there at :meth:`save`. A new process
        would otherwise read every test file of a plan once (tens of ms for Django's)."""
        if self.kept is not None:
            return
        self.kept = path
        try:
            held = json.loads(path.read_text(encoding="utf-8"))
            for target, (digest, found) in held.items():
                if target not in self._seen and isinstance(digest, str):
                    self._seen[target] = (digest, tuple(str(m) for m in found))
        except FileNotFoundError:
            pass
        except (OSError, ValueError, TypeError, AttributeError) as exc:
            log.warning("kept marker scans %s not read (%s): files are read", path, exc)

    def save(self) -> None:
        """Write the scans made by content digest since the last save (atomically)."""
        if self.kept is None or not self._dirty:
            return
        held = {t: [s, list(m)] for t, (s, m) in self._seen.items() if isinstance(s, str)}
        try:
            self.kept.parent.mkdir(parents=True, exist_ok=True)
            replace_file(self.kept, json.dumps(held, separators=(",", ":")).encode())
        except OSError as exc:
            log.warning("marker scans not kept in %s: %s", self.kept, exc)
            return
        self._dirty = False

    def markers(self, target: str, digest: str | None = None) -> list[str]:
        """``digest``: the file's content digest when the caller has it (a plan does: its
        cache key's inputs), which spares the stat that otherwise tells a changed file."""
        return list(self.found(target, digest))

    def found(self, target: str, digest: str | None = None) -> tuple[str, ...]:
        held = self._seen.get(target)
        if digest is not None and held is not None and held[0] == digest:
            return held[1]
        # asked for every file of a plan at every run: os.stat on a string, not pathlib
        path = os.path.join(self.root, target)
        stamp: int | str
        if digest is not None:
            stamp = digest
        else:
            try:
                stamp = os.stat(path).st_mtime_ns
            except OSError:
                return ()
            if held is not None and held[0] == stamp:
                return held[1]
        try:
            text = Path(path).read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ()
        found = tuple(sorted(set(_MARK.findall(text)) - {"parametrize", "usefixtures"}))
        self._seen[target] = (stamp, found)
        self._dirty = self._dirty or isinstance(stamp, str)
        return found

    def of(self, targets: Iterable[str]) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for t in targets:
            found = self.markers(t)
            if found:
                out[t] = found
        return out
