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
    _seen: dict[str, tuple[int, tuple[str, ...]]] = field(default_factory=dict)

    def markers(self, target: str) -> list[str]:
        # asked for every file of a plan at every run: os.stat on a string, not pathlib
        path = os.path.join(self.root, target)
        try:
            stamp = os.stat(path).st_mtime_ns
        except OSError:
            return []
        held = self._seen.get(target)
        if held is not None and held[0] == stamp:
            return list(held[1])
        try:
            text = Path(path).read_text(encoding="utf-8", errors="replace")
        except OSError:
            return []
        found = tuple(sorted(set(_MARK.findall(text)) - {"parametrize", "usefixtures"}))
        self._seen[target] = (stamp, found)
        return list(found)

    def of(self, targets: Iterable[str]) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for t in targets:
            found = self.markers(t)
            if found:
                out[t] = found
        return out
