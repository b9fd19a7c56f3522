"""pytest markers a test file applies, read from its text: what the policy's marker rules
(quarantine, never-skip, no-cache) are asked about. Stdlib only: a run that needs no policy
decision still scans markers to know that."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

_MARK = re.compile(r"pytest\.mark\.([A-Za-z_]\w*)")


@dataclass
class MarkerScanner:
    """pytest markers a test file applies (``@pytest.mark.critical``, ``pytestmark = ...``),
    read from its text and remembered by modification time. Static: a marker applied by a
    plugin or conftest hook is not seen (docs/policy.md)."""

    root: Path
    # target -> (its modification time, or its content digest when the caller knew it; markers)
    _seen: dict[str, tuple[int | str, tuple[str, ...]]] = field(default_factory=dict)

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
        return found

    def of(self, targets: Iterable[str]) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for t in targets:
            found = self.markers(t)
            if found:
                out[t] = found
        return out
