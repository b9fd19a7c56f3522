"""What the server remembers per workspace: each test's last outcome (with both locations of a
failure when a live run reported them) and each test file's last plan (why it ran or was cached).

Live runs give the full picture (``run.progress`` carries the failing line in the test and the
raising line in the source); results served from the cache only keep one location (the raising
line, or the test line), and the test's ``def`` line stands in for the other. Both carry pytest's
report of a failure, redacted by the daemon.
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from maestro.cache.keys import WHOLE_FILE
from maestro.nodeids import base as base_nodeid
from maestro.nodeids import file_of
from maestro.server.methods import TestResult

FAILING = ("failed", "error")
HOST = socket.gethostname()


def provenance(result: dict[str, Any]) -> tuple[float | None, str | None]:
    """When a stored result's run started (epoch seconds) and where: "local" for this machine,
    else the host it came from through the team cache."""
    at: float | None = None
    started = (result.get("timing") or {}).get("started_at")
    if isinstance(started, str):
        try:
            at = datetime.fromisoformat(started).timestamp()
        except ValueError:
            at = None
    host = (result.get("provenance") or {}).get("hostname")
    where = None if not isinstance(host, str) else ("local" if host == HOST else host)
    return at, where


def ran_words(at: float | None, where: str | None, now: float | None = None) -> str:
    """ "ran 5 min ago here" / "ran 2 h ago on ci-7 (team cache)"."""
    parts = []
    if at is not None:
        age = max(0.0, (now if now is not None else time.time()) - at)
        if age < 60:
            parts.append("ran just now")
        elif age < 3600:
            parts.append(f"ran {age // 60:.0f} min ago")
        elif age < 86400:
            parts.append(f"ran {age // 3600:.0f} h ago")
        else:
            parts.append(f"ran {age // 86400:.0f} d ago")
    if where == "local":
        parts.append("here")
    elif where:
        parts.append(f"on {where} (team cache)")
    return " ".join(parts)


@dataclass
class TestState:
    __test__ = False

    nodeid: str
    file: str
    outcome: str
    duration_s: float = 0.0
    message: str | None = None
    details: str | None = None  # pytest's report of a failure (traceback, assertion diff)
    def_line: int | None = None  # 1-based, the test's own line (pytest's item location)
    test_line: int | None = None  # 1-based, the failing line inside the test file
    raised_path: str | None = None
    raised_line: int | None = None  # 1-based
    cached: bool = False
    flaky: bool = False
    run_id: str | None = None
    at: float = field(default_factory=time.time)
    ran_at: float | None = None  # when the run that produced it started (stored results)
    ran_on: str | None = None  # "local" or the host of a team-cache result
    # of inputs saved over since, kept while a run of some other tests of its file (one test run
    # from the editor) cleared the file's mark: not a result of the current inputs
    outdated: bool = False

    @property
    def failing(self) -> bool:
        return self.outcome in FAILING

    def to_json(self) -> TestResult:
        return {
            "id": self.nodeid,
            "file": self.file,
            "outcome": self.outcome,
            "durationS": round(self.duration_s, 6),
            "message": self.message,
            "details": self.details,
            "line": self.def_line,
            "testLine": self.test_line,
            "raisedAt": (
                {"path": self.raised_path, "line": self.raised_line} if self.raised_path else None
            ),
            "cached": self.cached,
            "flaky": self.flaky,
            "runId": self.run_id,
            "ranAt": self.ran_at,
            "ranOn": self.ran_on,
        }


@dataclass
class FileState:
    target: str
    runs: bool  # False: served from the cache
    describe: str  # "cached", "inputs changed: pkg/a.py", "no cached result", ...
    reason: str | None = None
    changed: list[str] = field(default_factory=list)
    run_id: str | None = None
    at: float = field(default_factory=time.time)

    def to_json(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "runs": self.runs,
            "describe": self.describe,
            "reason": self.reason,
            "changed": self.changed,
            "runId": self.run_id,
        }


class Results:
    """Last known outcomes of one workspace."""

    def __init__(self) -> None:
        self.tests: dict[str, TestState] = {}
        self.files: dict[str, FileState] = {}
        # test files whose content or inputs were saved changed since their last result: the
        # result is of other inputs (shown as outdated until a new one arrives)
        self.outdated: set[str] = set()
        self.version = 0
        """Bumped when a test's outcome is recorded (rows built from the results are stale)."""
        self.recorded_at: dict[str, float] = {}  # test file -> when its last result arrived

    def mark_outdated(self, targets: list[str], *, changed_at: float | None = None) -> list[str]:
        """Of ``targets``, those with a result, now outdated (newly so). ``changed_at``: when
        the change was made (a file's mtime); a result that arrived after it is of the new
        inputs (the daemon's report of a change can come after the run that saw it)."""
        newly = [
            t
            for t in targets
            if t not in self.outdated
            and self.of_file(t)
            and (changed_at is None or self.recorded_at.get(t, 0.0) <= changed_at)
        ]
        self.outdated.update(newly)
        return newly

    def _arrived(self, target: str) -> None:
        """A result of ``target`` arrived: the file is no longer outdated as a whole, but the
        results this one does not replace (the others of a file one test of which ran) stay of
        the earlier inputs, each marked."""
        self.recorded_at[target] = time.time()
        if target in self.outdated:
            self.outdated.discard(target)
            for state in self.tests.values():
                if state.file == target:
                    state.outdated = True

    def is_outdated(self, target: str, states: list[TestState]) -> bool:
        """Whether the results ``states`` of test file ``target`` are of inputs saved over."""
        return target in self.outdated or any(s.outdated for s in states)

    def record_plan(self, files: list[dict[str, Any]], run_id: str) -> None:
        for f in files:
            self.files[f["target"]] = FileState(
                target=f["target"],
                runs=bool(f.get("runs")),
                describe=str(f.get("describe") or ""),
                reason=f.get("reason"),
                changed=list(f.get("changed") or []),
                run_id=run_id,
            )

    def record_live(self, event: dict[str, Any], run_id: str) -> TestState | None:
        """A ``test_result`` event of the pytest plugin (engine/events.py TestResult)."""
        if event.get("event") != "test_result":
            return None
        nodeid = str(event["nodeid"])
        self.version += 1
        self._arrived(file_of(nodeid))
        location = event.get("location") or {}
        raised = event.get("raised_at") or {}
        state = TestState(
            nodeid=nodeid,
            file=file_of(nodeid),
            outcome=str(event.get("outcome")),
            duration_s=float(event.get("duration_s") or 0.0),
            message=event.get("message"),
            details=event.get("longrepr"),
            def_line=location.get("line"),
            test_line=event.get("test_line"),
            raised_path=raised.get("path"),
            raised_line=raised.get("line"),
            cached=False,
            run_id=run_id,
        )
        self.tests[nodeid] = state
        return state

    def record_file_result(
        self, target: str, result: dict[str, Any] | None, *, cached: bool, run_id: str | None
    ) -> None:
        """A file's ActionResult (JSON mode) from the run summary. Live details win for tests
        this run reported; a result of the whole file replaces what was known about it, one
        of some of its tests (a node id asked for) only theirs."""
        if result is None:
            return
        self.version += 1
        self._arrived(target)
        ran_at, ran_on = provenance(result)
        seen: set[str] = set()
        for t in result.get("tests") or []:
            nodeid = str(t["node_id"])
            seen.add(nodeid)
            live = self.tests.get(nodeid)
            if not cached and live is not None and live.run_id == run_id:
                live.flaky = bool(t.get("flaky"))
                live.ran_at, live.ran_on = ran_at, ran_on
                continue
            path, line = t.get("path"), t.get("line")
            in_test = path == target
            self.tests[nodeid] = TestState(
                nodeid=nodeid,
                file=target,
                outcome=str(t.get("outcome")),
                duration_s=float(t.get("duration_s") or 0.0),
                message=t.get("message"),
                details=t.get("details"),
                test_line=line if in_test else t.get("test_line"),
                raised_path=path if path and not in_test else None,
                raised_line=line if path and not in_test else None,
                cached=cached,
                flaky=bool(t.get("flaky")),
                run_id=run_id,
                ran_at=ran_at,
                ran_on=ran_on,
            )
        if (result.get("inputs") or {}).get("@select", WHOLE_FILE) != WHOLE_FILE:
            return  # the result of the tests asked for: the file's others keep what is known
        for nodeid in [n for n, s in self.tests.items() if s.file == target and n not in seen]:
            if self.tests[nodeid].run_id != run_id:
                del self.tests[nodeid]  # removed or renamed since

    def record_restored(self, target: str, result: dict[str, Any]) -> None:
        """A file's stored result for its current inputs, found without a run (after a
        restart): shown as cached, with when and where it ran."""
        at, where = provenance(result)
        describe = " ".join(w for w in ("cached,", ran_words(at, where)) if w).rstrip(",")
        self.files[target] = FileState(target=target, runs=False, describe=describe)
        self.record_file_result(target, result, cached=True, run_id=None)

    def of_file(self, target: str) -> list[TestState]:
        return [s for s in self.tests.values() if s.file == target]

    def by_file(self) -> dict[str, list[TestState]]:
        """All results grouped by test file, in one pass (for answers about many files)."""
        out: dict[str, list[TestState]] = {}
        for state in self.tests.values():
            out.setdefault(state.file, []).append(state)
        return out

    def of_node(self, nodeid: str) -> list[TestState]:
        """The results of a test function (all its parametrizations), a class, or one
        parameter set."""
        exact = self.tests.get(nodeid)
        if exact is not None and base_nodeid(nodeid) != nodeid:
            return [exact]
        prefix = nodeid + "::"
        return [
            s
            for s in self.tests.values()
            if base_nodeid(s.nodeid) == nodeid or s.nodeid.startswith(prefix)
        ]


EXCERPT_LINES = 60
EXCERPT_CHARS = 6000


def excerpt(details: str, lines: int = EXCERPT_LINES, chars: int = EXCERPT_CHARS) -> str:
    """The end of a failure's report (where it raised, the assertion diff) for a diagnostic or a
    hover, at most ``lines`` lines and about ``chars`` characters, with a first line saying how
    much is left out (the test explorer, JUnit and the terminal show it whole)."""
    kept = details.rstrip("\n").splitlines()
    total = len(kept)
    kept = kept[-lines:]
    while len(kept) > 1 and sum(len(line) + 1 for line in kept) > chars:
        kept.pop(0)
    text = "\n".join(kept)
    if len(text) > chars:  # one very long line
        text = "..." + text[-chars:]
    if len(kept) < total:
        text = f"[{total - len(kept)} earlier lines of the report not shown]\n{text}"
    return text


def summarize(states: list[TestState]) -> str:
    """ "2 passed, 1 failed" for a lens title."""
    if not states:
        return ""
    counts: dict[str, int] = {}
    for s in states:
        counts[s.outcome] = counts.get(s.outcome, 0) + 1
    order = ["failed", "error", "passed", "skipped", "xfailed", "xpassed"]
    # pytest's words: "2 errors" (the other outcomes are not counted in the plural)
    return ", ".join(
        f"{counts[o]} {o}{'s' if o == 'error' and counts[o] != 1 else ''}"
        for o in order
        if o in counts
    )
