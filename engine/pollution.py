"""Test files whose import changes how the files collected after them collect.

pytest collects all the files of a session inside one ``warnings.catch_warnings`` block, so a
test module that changes the warnings filters at import (``warnings.simplefilter("error")``)
changes the collection of every file collected after it: a collection warning becomes an
error. A file's cached result must not depend on which files ran with it, so the full run is
the reference:

- the plugin reports the files whose collection changed the filters (``Collected.polluters``),
  and each such file is remembered per workspace (`Polluters`, learned from every run that
  collected it);
- a test file's key covers every remembered polluter a full run collects before it (pytest
  collects Maestro's files in path order), as ``collected-after:<path>`` with its content's
  digest: an edit of the polluter re-runs the files after it;
- a file that runs has those polluters run with it, before it, so that it is collected as
  in the full run (whatever the selection: ``maestro test F`` answers for F what the whole
  suite says).

Not covered: state other than the warnings filters (a module that patches ``sys.modules`` or
``os.environ`` at import), and conftest files (collected for every file of their folder
anyway); a result whose collection flips under the same key is flagged flaky instead.
"""

from __future__ import annotations

from collections.abc import Callable, Container, Iterable
from dataclasses import dataclass
from pathlib import Path

import msgpack

from maestro.paths import read_msgpack, replace_file, workspace_state_dir

AFTER = "collected-after:"
_FILE = "collection-polluters.msgpack"


@dataclass(slots=True)
class Polluters:
    """The workspace's test files known to change the warnings filters at collection."""

    path: Path
    files: set[str]
    dirty: bool = False

    @classmethod
    def load(cls, root: Path) -> Polluters:
        found = read_msgpack(path := workspace_state_dir(root) / _FILE)
        return cls(
            path, {f for f in found if isinstance(f, str)} if isinstance(found, list) else set()
        )

    def before(self, target: str, tests: Container[str]) -> list[str]:
        """The known polluters a full run collects before `target` (among `tests`), in order."""
        return sorted(p for p in self.files if p < target and p in tests)

    def inputs(
        self, target: str, tests: Container[str], digest: Callable[[str], str | None]
    ) -> dict[str, str]:
        """The key entries of `target` for the polluters collected before it."""
        return {AFTER + p: digest(p) or "absent" for p in self.before(target, tests)}

    def learn(self, collected: Iterable[str], polluting: Iterable[str]) -> None:
        """A run collected the files `collected`; of those, `polluting` changed the filters."""
        found = set(polluting)
        files = (self.files - set(collected)) | found
        if files != self.files:
            self.files = files
            self.dirty = True

    def save(self) -> None:
        if not self.dirty:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        replace_file(self.path, msgpack.packb(sorted(self.files), use_bin_type=True))
        self.dirty = False
