"""What `maestro test` prints: the plan, the progress bar and the summary, from plain data.

Both routes render with these functions: the full CLI (maestro/cli/test_cmd.py, in process or
through the daemon) and the fast path (maestro/cli/fast.py, the daemon's msgpack answer as it
arrived). They take the wire form (RunTestsResult / PlannedFileInfo in JSON mode, or objects with
the same attributes) and import nothing but rich, so the fast path stays free of typer and
pydantic and the output is the same by construction. rich itself loads at the first print: an
in-process run shows its plan once its pytest process has its run (`Display.plan`'s ``later``).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from maestro.counts import plural
from maestro.nodeids import file_of

if TYPE_CHECKING:
    import logging

    from rich.progress import Progress, TaskID

    from maestro.engine.events import Event

SHOW_REASONS = 10

_FLAKY_SHOWN = 10  # node ids named in the flaky line; the rest are counted


class PlanRow(Protocol):
    """One planned test file (PlannedFileInfo has these attributes)."""

    @property
    def target(self) -> str: ...
    @property
    def runs(self) -> bool: ...
    @property
    def describe(self) -> str: ...
    @property
    def cached_tests(self) -> int: ...


@dataclass(frozen=True, slots=True)
class PlannedRow:
    """A PlannedFileInfo read from its JSON form, with the model's defaults."""

    target: str
    runs: bool
    describe: str
    cached_tests: int = 0

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> PlannedRow:
        return cls(
            target=str(data["target"]),
            runs=bool(data["runs"]),
            describe=str(data["describe"]),
            cached_tests=int(data.get("cached_tests") or 0),
        )


class Display:
    """Progress bar (tests done / total, current test) fed by the runner's events."""

    def __init__(self, *, impacted: bool = False, scope: str | None = None) -> None:
        self.impacted = impacted  # the plan is an impact selection: say what it left out
        self.scope = scope  # the subfolder a plain `maestro test` was limited to
        self.progress: Progress | None = None
        self.task: TaskID | None = None
        self.done = 0
        self.total = 0
        self.started = time.monotonic()
        self._pending: list[PlanRow] | None = None  # a plan kept for later (`plan`)
        # Not a terminal (a CI log, a file): pytest's own progress instead of a bar, a line per
        # test file and a letter per test as they finish, so a slow or hung run shows where
        # it is. None until the plan says tests run.
        self._letters: str | None = None  # the file of the line being written
        self._sessions = 0  # pytest sessions seen: a later one runs files again
        self._log_handlers: list[logging.Handler] = []

    def __enter__(self) -> Display:
        import logging

        # a warning logged mid-run (to the terminal or the log the letters go to) gets a line
        # of its own, not the end of the letters' line
        self._log_handlers = [
            h
            for h in logging.getLogger().handlers
            if isinstance(h, logging.StreamHandler) and not isinstance(h, logging.FileHandler)
        ]
        for handler in self._log_handlers:
            handler.addFilter(self._end_line)
        return self

    def __exit__(self, *exc: object) -> None:
        for handler in self._log_handlers:
            handler.removeFilter(self._end_line)
        self._log_handlers = []
        self.finish()

    def _end_line(self, record: object) -> bool:
        """A log record is about to be printed: end the letters' line first (a file's further
        letters start a line of their own)."""
        if self._letters:
            from maestro.cli.consoles import console

            console.out("", highlight=False)
            self._letters = ""
        return True

    def reset(self) -> None:
        self.finish()
        self.done = self.total = 0

    def daemon_event(self, name: str, payload: Mapping[str, Any]) -> None:
        """The daemon's run events: run.queued (stderr), run.plan, run.progress."""
        if name == "run.queued":
            from maestro.cli.consoles import err_console
            from maestro.wire import RunQueued

            err_console.print(f"[dim]{RunQueued.model_validate(payload).describe()}[/]")
        elif name == "run.plan":
            self.plan([PlannedRow.from_wire(f) for f in payload.get("files", [])])
        elif name == "run.progress":
            data = payload.get("event")
            if isinstance(data, dict):
                self.progress_event(data)

    def plan(self, files: Sequence[PlanRow], *, later: bool = False) -> None:
        """Show the plan: its counts, the reasons of the files that run, then the progress bar
        (in a terminal). ``later``: keep it until :meth:`show_plan` (or :meth:`finish`) asks:
        an in-process run shows it once its pytest process has its run."""
        if later:
            self._pending = list(files)
            return
        from rich.markup import escape

        from maestro.cli.consoles import console

        to_run = [f for f in files if f.runs]
        cached = [f for f in files if not f.runs]
        cached_tests = sum(f.cached_tests for f in cached)
        if self.scope:
            console.print(
                f"[dim]tests under {escape(self.scope)}/ (the current folder; "
                "--all for the whole project)[/]"
            )
        if self.impacted and not files:
            console.print(NOTHING_IMPACTED)
            return
        served = sum(f.cached_tests for f in to_run)  # nodes of files run in part
        console.print(
            f"[bold]{len(files)}[/] {'test file' if len(files) == 1 else 'test files'}: "
            f"[green]{len(cached)} cached[/] ({plural(cached_tests, 'test')}), "
            f"[cyan]{len(to_run)} to run[/]"
            + (f" ([green]{served} of their tests cached[/])" if served else "")
        )
        for f in to_run[:SHOW_REASONS]:
            console.print(f"  {escape(f.target)}  [dim]{escape(f.describe)}[/]")
        if len(to_run) > SHOW_REASONS:
            console.print(f"  [dim]... and {len(to_run) - SHOW_REASONS} more[/]")
        if self.impacted and (line := selection_note(files)):
            console.print(f"[dim]{escape(line)}[/]")
        if not to_run:
            return
        if not console.is_terminal:
            self._letters = ""
            return
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        self.progress = Progress(
            TextColumn("[progress.description]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=True,
        )
        self.progress.start()
        self.task = self.progress.add_task("collecting", total=None)

    def event(self, event: Event) -> None:
        """An in-process runner event (maestro.engine.events)."""
        from maestro.engine.events import Collected, TestResult, TestStart

        if self._letters is not None:
            if isinstance(event, TestResult):
                self._letter(event.nodeid, event.outcome)
            elif isinstance(event, Collected):
                self._session()
            return
        if self.progress is None or self.task is None:
            return
        match event:
            case Collected():
                self._collected(len(event.nodeids))
            case TestStart():
                self._started(event.nodeid)
            case TestResult():
                self._finished()

    def progress_event(self, data: Mapping[str, Any]) -> None:
        """A plugin event in its JSON form (the daemon's run.progress)."""
        kind = data.get("event")
        if self._letters is not None:
            if kind == "test_result":
                self._letter(str(data.get("nodeid", "")), str(data.get("outcome", "")))
            elif kind == "collected":
                self._session()
            return
        if self.progress is None or self.task is None:
            return
        files = data.get("files")
        if kind == "collected" and isinstance(files, dict):
            self._collected(sum(len(ids) for ids in files.values()))
        elif kind == "test_start":
            self._started(str(data.get("nodeid", "")))
        elif kind == "test_result":
            self._finished()

    def _collected(self, total: int) -> None:
        if self.progress is not None and self.task is not None:
            # Results reported while collecting (a module-level skip) are not among the items.
            self.total = total + self.done
            self.progress.update(self.task, total=self.total, description="running")

    def _started(self, nodeid: str) -> None:
        if self.progress is not None and self.task is not None:
            self.progress.update(self.task, description=short(nodeid))

    def _finished(self) -> None:
        if self.progress is not None and self.task is not None:
            self.done += 1
            self.progress.update(self.task, completed=self.done)

    def _session(self) -> None:
        """A pytest session starts: after the first, the run runs files again (a partial run's
        failure re-checked by its whole file, a file given a variable it read): their letters
        go on lines of their own, so no file shows more letters than it has tests."""
        self._sessions += 1
        if self._sessions > 1 and self._letters:
            from maestro.cli.consoles import console

            console.out("", highlight=False)  # end the line being written
            self._letters = ""

    def _letter(self, nodeid: str, outcome: str) -> None:
        from maestro.cli.consoles import console

        file = file_of(nodeid)
        if file != self._letters:
            label = file + (" (run again)" if self._sessions > 1 else "")
            console.out(("\n" if self._letters else "") + label + " ", end="", highlight=False)
            self._letters = file
        console.out(_LETTERS.get(outcome, "?"), end="", highlight=False)

    def show_plan(self) -> None:
        """Show the plan kept by ``plan(files, later=True)``, if any."""
        pending, self._pending = self._pending, None
        if pending is not None:
            self.plan(pending)

    def finish(self) -> None:
        self.show_plan()
        if self._letters:
            from maestro.cli.consoles import console

            console.out("", highlight=False)  # end the last file's line
        self._letters = None
        if self.progress is not None:
            self.progress.stop()
            self.progress = None


# pytest's progress letters
_LETTERS = {
    "passed": ".",
    "failed": "F",
    "error": "E",
    "skipped": "s",
    "xfailed": "x",
    "xpassed": "X",
}

NOTHING_IMPACTED = "nothing impacted: no change reaches a test file, nothing to run"


def selection_note(files: Sequence[PlanRow]) -> str | None:
    """Why fewer files run than `maestro impacted` lists, in one line; None when all run whole.

    `maestro impacted` follows imports and reads from the changed files to every test file they
    can reach; `test --impacted` then re-runs only the tests that executed changed code."""
    whole = sum(1 for f in files if f.runs and not f.cached_tests)
    part = sum(1 for f in files if f.runs and f.cached_tests)
    kept = sum(1 for f in files if not f.runs)
    if not (part or kept):
        return None
    return (
        f"node-level selection: of the {plural(len(files), 'test file')} `maestro impacted` lists, "
        f"{whole} run whole, {part} in part, {kept} not at all: only tests that executed "
        "changed code re-run (`maestro explain FILE` says why for each)"
    )


def final_exit_code(result: Mapping[str, Any], *, impacted: bool) -> int:
    """The run's exit code, except that an impact selection with nothing impacted is a success
    (pytest's 5, "no tests collected", would fail CI on a docs-only change)."""
    code = int(result.get("exit_code", 0))
    if impacted and code == 5 and not result.get("files"):
        return 0
    return code


def no_tests_in_scope(scope: str) -> int:
    from rich.markup import escape

    from maestro.cli.consoles import console

    """A subfolder with no test files (a source folder): pytest's "no tests ran", exit 5."""
    console.print(
        f"no test files under {escape(scope)}/ (the current folder); --all runs the project"
    )
    return 5


def short(nodeid: str, width: int = 50) -> str:
    return nodeid if len(nodeid) <= width else "…" + nodeid[-(width - 1) :]


def _tests(result: Mapping[str, Any]) -> Iterable[Mapping[str, Any]]:
    """Every test outcome of every file that has a result, in plan order."""
    for f in result.get("files", []):
        action = f.get("result")
        if action is not None:
            yield from action.get("tests", [])


def _each(tests: Iterable[Mapping[str, Any]]) -> Iterable[Mapping[str, Any]]:
    """One outcome per test, as pytest lists failures: a node id several tests share (its
    ``each``) stands for each of them."""
    for t in tests:
        each = t.get("each") or []
        if not each:
            yield t
        for one in each:
            yield {**t, **one, "each": []}


def _teardown(test: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The error of a teardown that failed after its test failed or was skipped, listed as
    pytest lists it (its own line, counted among the errors); its text is not kept."""
    if test.get("outcome") in ("failed", "skipped") and "error" in (test.get("also") or []):
        after = "failed" if test.get("outcome") == "failed" else "was skipped"
        failed = f"its teardown failed after it {after}"
        return [{**test, "outcome": "error", "message": failed, "line": None}]
    return []


def counts_line(result: Mapping[str, Any]) -> list[str]:
    """The parts of pytest's counts line for a run's counts, as rich markup."""
    from maestro.counts import NONE_RAN, counts_parts

    return [f"[{colour}]{text}[/]" for text, colour in counts_parts(result)] or [
        f"[yellow]{NONE_RAN}[/]"
    ]


def report_chars(pytest_args: Sequence[str]) -> str | None:
    """The outcomes a run's ``-r CHARS`` asks pytest's "short test summary info" to list, in
    its order and as pytest resolves them (``a``: all but passes, ``A``: all, ``N``: none);
    None when not given (Maestro's failures section stands for pytest's default ``fE``)."""
    import re

    given: str | None = None
    args = list(pytest_args)
    for i, arg in enumerate(args):
        if arg == "--":
            break
        if arg == "-r" and i + 1 < len(args):
            given = args[i + 1]
        elif found := re.fullmatch(r"-[vqsxl]*r(.+)", arg):
            given = found.group(1)
    if given is None:
        return None
    chars = ""
    for char in given:
        char = char.lower() if char in "FS" else char  # pytest's old aliases
        if char == "a":
            chars = "sxXEf"
        elif char == "A":
            chars = "PpsxXEf"
        elif char == "N":
            chars = ""
        elif char not in chars:
            chars += char
    return chars


def _short_summary(tests: list[Mapping[str, Any]], chars: str) -> list[str]:
    """pytest's "short test summary info" lines for `chars` (`report_chars`)."""
    lines: list[str] = []
    every = list(_each(tests))

    def said(t: Mapping[str, Any]) -> str:
        message = str(t.get("message") or "").splitlines()
        return f" - {message[0]}" if message and message[0] else ""

    words = {"f": ("failed", "FAILED"), "E": ("error", "ERROR"), "x": ("xfailed", "XFAIL"),
             "X": ("xpassed", "XPASS"), "p": ("passed", "PASSED")}  # fmt: skip
    for char in chars:
        if char == "s":
            folded: dict[tuple[str, Any, str], int] = {}
            for t in every:
                if t.get("outcome") == "skipped":
                    where = (str(t.get("path") or file_of(str(t["node_id"]))), t.get("line"))
                    key = (*where, str(t.get("message") or ""))
                    folded[key] = folded.get(key, 0) + 1
            for (path, line, reason), count in folded.items():
                at = f"{path}:{line}" if line else path
                lines.append(f"SKIPPED [{count}] {at}: {reason}")
        elif char in words:
            outcome, word = words[char]
            shown = [t for t in every if t.get("outcome") == outcome]
            if char == "E":
                shown += [t for t in every for t in _teardown(t)]
            lines += [f"{word} {t['node_id']}{'' if char == 'p' else said(t)}" for t in shown]
    return lines


_WARNINGS_DOCS = "https://docs.pytest.org/en/stable/how-to/capture-warnings.html"


def print_summary(result: Mapping[str, Any], *, report: str | None = None) -> None:
    """Failures, flaky tests and the counts line of a RunTestsResult in JSON mode; ``report``:
    the outcomes ``-r`` asks for (`report_chars`), listed as pytest's short summary lists them."""
    import textwrap

    from rich.markup import escape

    from maestro.cli.consoles import console

    tests = list(_tests(result))
    failures = [
        shown
        for t in _each(tests)
        for shown in ([t] if t.get("outcome") in ("failed", "error") else []) + _teardown(t)
    ]
    quarantined = {str(q.get("node_id")): q for q in result.get("quarantined") or []}
    if failures:
        console.rule("[bold red]failures")
        for t in failures:
            path, line = t.get("path"), t.get("line")
            where = f"{path}:{line}" if path and line else (path or "")
            label = "FAILED" if t.get("outcome") == "failed" else "ERROR"
            if str(t.get("node_id")) in quarantined:
                label = f"QUARANTINED {label}"
            # Node ids and messages are text, not markup: `[hook1-ata]` must stay visible.
            console.print(f"[red]{label}[/] {escape(str(t['node_id']))}", highlight=False)
            detail = f"    {where}: {t.get('message') or ''}".rstrip(": ")
            console.print(escape(detail), highlight=False)
            if t.get("details"):  # pytest's report: the traceback and its assertion diff
                text = textwrap.indent(str(t["details"]).rstrip("\n"), "    ")
                console.print(escape(text), highlight=False, soft_wrap=True)
    if printed := str(result.get("configure_warnings") or ""):  # pytest prints them as it starts
        from maestro.cli.consoles import err_console

        err_console.print(escape(printed.rstrip("\n")), highlight=False, soft_wrap=True)
    if shown := str(result.get("warnings_shown") or ""):  # where pytest prints its own
        console.rule("warnings summary")
        console.print(escape(shown.rstrip("\n") + "\n"), highlight=False, soft_wrap=True)
        console.print(f"-- Docs: {_WARNINGS_DOCS}", highlight=False, soft_wrap=True)
    if report and (short := _short_summary(tests, report)):
        console.rule("short test summary info")
        for line in short:
            console.print(escape(line), highlight=False, soft_wrap=True)
    flaky = [str(t["node_id"]) for t in tests if t.get("flaky")]
    if flaky:
        shown = ", ".join(flaky[:_FLAKY_SHOWN])
        if len(flaky) > _FLAKY_SHOWN:  # a whole file flips when its collection does
            shown += f" and {len(flaky) - _FLAKY_SHOWN} more"
        console.print("[yellow]flaky[/] (outcome changed with the same inputs): " + escape(shown))
    for note in result.get("confirmed") or []:  # a partial run's doubt the whole file settled
        console.print("[yellow]re-checked[/] " + escape(str(note)), highlight=False)
    for note in result.get("environment") or []:  # a variable pytest did not get, read
        console.print("[yellow]environment[/] " + escape(str(note)), highlight=False)
    for note in result.get("notes") or []:  # a change reaching no test, inputs changed mid-run
        console.print("[yellow]note:[/] " + escape(str(note)), highlight=False, soft_wrap=True)
    if result.get("not_run_files"):
        unfinished = int(result["not_run_files"])
        did = f"{plural(unfinished, 'file')} did not finish (not cached)"
        console.print(f"[yellow]{did}[/]")
        if result.get("pytest_said"):
            console.print("pytest said:", highlight=False)
            console.print(escape(str(result["pytest_said"])), highlight=False, soft_wrap=True)
    if result.get("session_failed"):
        console.print(
            "[yellow]pytest failed its session with no test failing[/]: a plugin did, after the"
            " tests; a gate such as pytest-cov's --cov-fail-under judged only the tests that"
            " ran, not those served from the cache, so the exit code is the tests'. pytest said:"
        )
        console.print(escape(str(result["session_failed"])), highlight=False, soft_wrap=True)
    if quarantined:
        bad = sum(1 for q in quarantined.values() if q.get("outcome") in ("failed", "error"))
        rules = ", ".join(sorted({str(q.get("rule")) for q in quarantined.values()}))
        console.print(
            f"[yellow]quarantined[/] {plural(len(quarantined), 'test')} ({bad} failed,"
            " not failing the run;"
            f" rule {escape(rules)}): " + escape(", ".join(sorted(quarantined))),
            highlight=False,
        )
    parts = counts_line(result)
    warned = int(result.get("warnings") or 0)
    ran = result.get("pytest_exit_code") is not None
    console.print(
        ", ".join(parts)
        + f" — ran {plural(int(result.get('ran_files') or 0), 'file')},"
        + f" {result.get('cached_files', 0)} cached"
        + f" (saved {float(result.get('time_saved_s', 0.0)):.2f}s)"
        + (f", pytest {float(result.get('wall_s', 0.0)):.2f}s" if ran else "")
    )
    if before := int(result.get("cached_warnings") or 0):
        which = (
            f"{before} of the {warned} warnings {'is' if before == 1 else 'are'}"
            if before != warned
            else f"the {warned} warnings are"
            if warned != 1
            else "the warning is"
        )
        console.print(
            f"{which} from the cached results' recorded runs (maestro test shows the text of"
            " the warnings of the files it runs; --no-cache runs them all)",
            highlight=False,
        )
    notes = [str(n) for n in result.get("policy") or []]
    if notes:
        more = f" and {len(notes) - 1} more" if len(notes) > 1 else ""
        console.print(
            escape(
                f"policy: {notes[0]}{more} (maestro explain --execution "
                f"{result.get('execution_id', '')})"
            ),
            highlight=False,
        )


def print_stale(result: Mapping[str, Any], *, as_json: bool, scope: Sequence[str] = ()) -> None:
    """`maestro stale`: the stale files of a StaleResult in its JSON form (``stale``: rows with
    ``target``, ``reason``, ``changed``, ``describe``; ``tests``), those under the `scope` paths
    when given (`maestro stale -- PATHS`). Both routes (maestro/cli/fast.py and the full CLI)
    print with this."""
    import json

    from rich.markup import escape

    from maestro.cli.consoles import console

    rows: list[Mapping[str, Any]] = list(result.get("stale") or [])
    stale = [f for f in rows if _under(str(f["target"]), scope)] if scope else rows
    if as_json:
        shown = [{"target": f["target"], "reason": f["reason"], "changed": f["changed"]}
                 for f in stale]  # fmt: skip
        console.print_json(json.dumps({"schema": "maestro.stale/1", "stale": shown}))
        return
    for f in stale:  # node ids are text, not markup: `test_x[case0]` keeps `[case0]`
        console.print(f"{escape(f['target'])}  [dim]{escape(f['describe'])}[/]", highlight=False)
    if scope:
        named = escape(" ".join(scope))
        console.print(f"{len(stale)} of the test files {named} names stale", highlight=False)
    else:
        tests = int(result.get("tests") or 0)
        console.print(f"{len(stale)} of {plural(tests, 'test file')} stale")


def _under(target: str, scope: Sequence[str]) -> bool:
    return any(p in ("", ".") or target == p or target.startswith(p + "/") for p in scope)
