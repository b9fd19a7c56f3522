"""Run pytest in the workspace's interpreter with the injected plugin, and collect a RunReport.

The child is ``<interpreter> -m pytest -p maestro_pytest_plugin ...`` in its own session (so the
whole process group can be signalled), with the plugin's directory prepended to PYTHONPATH and a
pipe descriptor for events (stdout stays the test's). The child is reaped by a dedicated thread
with ``os.wait4`` so that its exact CPU time is known even when other children run concurrently.
Cancelling the awaiting task terminates the group (SIGTERM, then SIGKILL after a grace period)
and re-raises; a timeout is simply ``asyncio.timeout(...)`` around the call.

A run never outlives its runner, and never overlaps a run its dead runner left behind:

- The child gets the read end of a *lifeline* pipe whose write end only this process holds
  (``MAESTRO_LIFELINE_FD``); ``plugin/maestro_lifeline.py``, imported by the plugin, SIGKILLs the
  group when it reads EOF, i.e. when this process exits however it exits, and on Linux also arms
  ``PR_SET_PDEATHSIG``. No ``preexec_fn``: it is unsafe in the daemon's threaded process. The
  death signal follows the *thread* that forked, so ``Popen`` runs on the event loop's thread,
  which lives as long as the runner (the daemon's and the CLI's main thread); never spawn from an
  executor thread.
- Each run is recorded in the workspace state dir (``runs/``, see ``RunRecord``) by two flocked
  files: one held by the runner, one by the child. Before starting, a runner SIGKILLs any group
  whose child still holds its lock while its runner's lock is free (an orphan whose lifeline did
  not fire: a test stuck in C code holding the GIL, a child where the plugin did not load) and
  waits for it to die. Runs of live runners are left alone: the daemon serialises its
  own, and an explicit ``--no-daemon`` run beside it is the user's call.

The spawn itself, the lifeline, the run records and the warm process live in
maestro/engine/warm.py, which imports only what a spawn needs (the console script starts an
in-process run's pytest from there before the rest of the CLI loads); they are re-exported here.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Coroutine, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, ParamSpec, TypeVar

from maestro.engine.warm import EVENTS_FD_ENV as EVENTS_FD_ENV
from maestro.engine.warm import LIFELINE_FD_ENV as LIFELINE_FD_ENV
from maestro.engine.warm import OWN_DIRS_ENV as OWN_DIRS_ENV
from maestro.engine.warm import PLUGIN_MODULE as PLUGIN_MODULE
from maestro.engine.warm import RUNS_DIR as RUNS_DIR
from maestro.engine.warm import SELECT_ENV as SELECT_ENV
from maestro.engine.warm import TRACE_ENV as TRACE_ENV
from maestro.engine.warm import WARM_DESCRIBE_FD_ENV as WARM_DESCRIBE_FD_ENV
from maestro.engine.warm import WARM_MODULE as WARM_MODULE
from maestro.engine.warm import RunRecord as RunRecord
from maestro.engine.warm import WarmPytest as WarmPytest
from maestro.engine.warm import _register_sync, _release, _signal_group, _spawn
from maestro.engine.warm import build_env as build_env
from maestro.engine.warm import plugin_dir as plugin_dir
from maestro.engine.warm import reap_orphans as reap_orphans
from maestro.engine.warm import runs_dir as runs_dir
from maestro.envvars import DEFAULT_ENV_ALLOWLIST as DEFAULT_ENV_ALLOWLIST
from maestro.errors import PytestUsageError, RunnerError
from maestro.paths import workspace_state_dir

# asyncio and the event models (pydantic) are imported where a run needs them, not here:
# `WarmPytest.start` starts an in-process run's pytest before the CLI has imported either
if TYPE_CHECKING:
    import asyncio

    from maestro.engine.events import (
        Collected,
        CollectError,
        Event,
        FileDeps,
        SessionEnd,
        SessionStart,
        SessionTrace,
        TestResult,
        TestTrace,
    )
    from maestro.engine.interpreter import Interpreter

log = logging.getLogger(__name__)

DEFAULT_GRACE_S = 5.0
_DRAIN_S = 2.0  # after exit, how long a grandchild may keep our pipes open
_EVENT_LINE_LIMIT = 16 * 1024 * 1024  # buffered at a time; a longer line is read in parts
_MAX_OUTPUT_BYTES = 64 * 1024 * 1024
_CHUNK = 64 * 1024

EventCallback = Callable[["Event"], None]


@dataclass(frozen=True)
class RunReport:
    """Everything one pytest run produced; bytes fields are ready for the CAS."""

    exit_code: int  # pytest's exit status, or -N when killed by signal N
    results: dict[str, TestResult]  # by node id, in completion order
    file_deps: dict[str, FileDeps]  # by test file (workspace-relative posix path)
    collected: Collected | None
    session: SessionStart | None
    session_end: SessionEnd | None
    unfinished: tuple[str, ...]  # started but never reported (the child died inside them)
    stdout: bytes
    stderr: bytes
    junit_xml: bytes | None
    wall_s: float
    user_s: float
    system_s: float
    max_rss_kb: int
    command: tuple[str, ...]
    invalid_event_lines: int = 0
    traces: dict[str, TestTrace] = field(default_factory=dict)  # by node id
    session_trace: SessionTrace | None = None
    # test files collected only for what their import does, every test of them deselected
    collected_only: tuple[str, ...] = ()
    # untracked files its tests read that a program they ran wrote (`note_program_outputs`):
    # found once the run is over, as what the pytest process wrote itself no input
    produced: set[str] = field(default_factory=set)

    @property
    def cpu_s(self) -> float:
        return self.user_s + self.system_s

    @property
    def collection_errors(self) -> list[CollectError]:
        return list(self.collected.errors) if self.collected else []

    @property
    def outcomes(self) -> Counter[str]:
        return Counter(result.outcome for result in self.results.values())


@dataclass
class _Collector:
    """Folds events into the pieces of a RunReport as they arrive."""

    on_event: EventCallback | None
    results: dict[str, TestResult] = field(default_factory=dict)
    file_deps: dict[str, FileDeps] = field(default_factory=dict)
    started: dict[str, None] = field(default_factory=dict)
    collected: Collected | None = None
    session: SessionStart | None = None
    session_end: SessionEnd | None = None
    traces: dict[str, TestTrace] = field(default_factory=dict)
    session_trace: SessionTrace | None = None
    invalid: int = 0
    # node ids collected more than once (a collector naming several items alike): pytest runs
    # and counts each; here they are one node whose results and traces are joined
    repeated: frozenset[str] = frozenset()

    def feed(self, line: bytes) -> None:
        if not line.strip():
            return
        import maestro.engine.events as ev

        event = ev.parse_event(line)
        if event is None:
            self.invalid += 1
            return
        match event:
            case ev.SessionStart():
                self.session = event
            case ev.Collected():
                self.collected = event
                ids = Counter(n for nodes in event.files.values() for n in nodes)
                self.repeated = frozenset(n for n, times in ids.items() if times > 1)
            case ev.TestStart():
                self.started[event.nodeid] = None
            case ev.TestResult():
                seen = self.results.get(event.nodeid)
                if event.nodeid not in self.repeated and not _skipped_again(seen, event):
                    seen = None
                self.results[event.nodeid] = event if seen is None else _joined(seen, event)
                self.started.pop(event.nodeid, None)
            case ev.FileDeps():
                self.file_deps[event.path] = event
            case ev.TestTrace():
                known = self.traces.get(event.nodeid) if event.nodeid in self.repeated else None
                self.traces[event.nodeid] = event if known is None else _joined_trace(known, event)
            case ev.SessionTrace():
                self.session_trace = event
            case ev.SessionEnd():
                self.session_end = event
        if self.on_event is not None:
            try:
                self.on_event(event)
            except Exception:  # a listener's bug must not lose the run
                log.exception("on_event callback failed for %s", event.event)


# which of a repeated node id's outcomes the node takes: a failure is never hidden by a pass
_SEVERITY = {"skipped": 0, "xfailed": 1, "passed": 2, "xpassed": 3, "error": 4, "failed": 5}


def _skipped_again(seen: TestResult | None, new: TestResult) -> bool:
    """A module collected twice (as tests and as doctests, ``--doctest-modules``) that skips
    at import: pytest reports, and counts, each collector's skip."""
    return (
        seen is not None
        and seen.when == new.when == "collect"
        and seen.outcome == new.outcome == "skipped"
        and new.nodeid.endswith(".py")
    )


def _joined(seen: TestResult, new: TestResult) -> TestResult:
    """Two tests of one node id as one node: the worse outcome, with its failure's details, the
    other counted beside it (as pytest counts both)."""
    worse, other = (new, seen) if _SEVERITY[new.outcome] > _SEVERITY[seen.outcome] else (seen, new)
    return worse.model_copy(
        update={
            "also": [*worse.also, other.outcome, *other.also],
            "subtests_passed": seen.subtests_passed + new.subtests_passed,
            "duration_s": seen.duration_s + new.duration_s,
            "stdout": seen.stdout + new.stdout,
            "stderr": seen.stderr + new.stderr,
            "each": [*(seen.each or [seen]), new],
        }
    )


def _joined_trace(seen: TestTrace, new: TestTrace) -> TestTrace:
    """What two tests of one node id executed and read: the node depends on both."""
    functions = {
        f: sorted({*names, *new.functions.get(f, ())}) for f, names in seen.functions.items()
    }
    for f, names in new.functions.items():
        functions.setdefault(f, sorted(names))
    return seen.model_copy(
        update={
            "functions": functions,
            "files": sorted({*seen.files, *new.files}),
            "opaque": list(dict.fromkeys([*seen.opaque, *new.opaque])),
            "params": seen.params if seen.params == new.params else None,
        }
    )


def venv_of(interpreter: Interpreter) -> Path | None:
    return interpreter.prefix if interpreter.is_venv else None


def build_command(
    root: Path, interpreter: Interpreter, args: Sequence[str], *, junit_xml: Path | None
) -> list[str]:
    command = [str(interpreter.path), "-m", "pytest", "-p", PLUGIN_MODULE, f"--rootdir={root}"]
    if junit_xml is not None:
        command.append(f"--junitxml={junit_xml}")
    command.extend(args)
    return command


async def run_pytest(
    root: Path,
    interpreter: Interpreter,
    args: Sequence[str] = (),
    *,
    on_event: EventCallback | None = None,
    junit_xml: Path | None = None,
    env_allowlist: Iterable[str] = DEFAULT_ENV_ALLOWLIST,
    extra_env: Mapping[str, str] | None = None,
    grace_s: float = DEFAULT_GRACE_S,
    environ: Mapping[str, str] | None = None,
    nice: int = 0,
    test_scores: Mapping[str, float] | None = None,
    deselect: Sequence[str] = (),
    warm: WarmPytest | None = None,
    on_started: Callable[[], None] | None = None,
    until: Sequence[str] = (),
    only: Sequence[str] = (),
    background: bool = False,
) -> RunReport:
    """Run pytest on ``args`` (paths, node ids, options) in ``root`` and report every test.

    ``on_event`` is called on the event loop for each validated event as it arrives. Raises
    RunnerError when pytest cannot start or the plugin never reports (bad arguments, broken
    interpreter); test failures are results, not errors. ``environ`` is where allowlisted
    variables come from (default: this process's environment). ``nice`` > 0 lowers the child's
    priority (speculative runs): set with setpriority right after the spawn rather than in a
    preexec_fn, which is unsafe in the daemon's threaded process; everything the child starts
    later inherits it. ``test_scores`` (node id -> P(fail)) reorders the tests through the
    plugin, highest first: a file or class ranks as its best test and is never split, equal
    scores keep pytest's order. ``deselect``
    drops exactly these node ids (pytest's ``--deselect`` matches prefixes: ``test_a`` would
    also drop ``test_ab``). ``until`` (node ids) drops, in each file holding some of them, the
    tests pytest collects after the last of them (when all of them are collected; else none).
    ``only`` (test ids) keeps, of the files they are in, only the tests they name (as pytest
    matches an id argument: a class's or an unparametrized function's id takes its tests).
    ``warm``: a process started for this run before it was planned,
    used when it was started exactly as this run would start one (else it is discarded).
    ``on_started`` is called on the event loop once the process has its run: work that may
    wait until then (it would only delay the start) begins there.
    ``background``: a run nobody asked for (speculation, a re-recording), which must leave the
    workspace's files as the user's own runs make them: coverage.py writes its data under a
    private directory (removed after the run) and pytest-cov writes no report.
    """
    select_path: str | None = None
    private: Path | None = None
    if background:
        private = _private_dir(root)
        extra_env = {**(extra_env or {}), **background_env(private)}
        warm = None
    if test_scores or deselect or until or only:
        fd, select_path = tempfile.mkstemp(prefix="maestro-select-", suffix=".json")  # 0600
        selection = {
            "scores": dict(test_scores or {}),
            "deselect": list(deselect),
            "until": list(until),
            "only": list(only),
        }
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(selection, f)
        extra_env = {**(extra_env or {}), SELECT_ENV: select_path}
    try:
        report = await _run_pytest(
            root, interpreter, args, on_event=on_event, junit_xml=junit_xml,
            env_allowlist=env_allowlist, extra_env=extra_env, grace_s=grace_s,
            environ=environ, nice=nice, warm=warm, on_started=on_started,
        )  # fmt: skip
        whole = tuple(d for d in deselect if "::" not in d)  # a file's path: all its tests
        return replace(report, collected_only=whole) if whole else report
    finally:
        if select_path is not None:
            with contextlib.suppress(OSError):
                os.unlink(select_path)
        if private is not None:
            shutil.rmtree(private, ignore_errors=True)


async def _run_pytest(
    root: Path,
    interpreter: Interpreter,
    args: Sequence[str],
    *,
    on_event: EventCallback | None,
    junit_xml: Path | None,
    env_allowlist: Iterable[str],
    extra_env: Mapping[str, str] | None,
    grace_s: float,
    environ: Mapping[str, str] | None,
    nice: int,
    warm: WarmPytest | None = None,
    on_started: Callable[[], None] | None = None,
) -> RunReport:
    import asyncio

    interpreter.require_pytest()
    root = root.absolute()
    if not root.is_dir():
        raise RunnerError(f"workspace root {root} is not a directory", hint="check the path")
    if junit_xml is not None:
        junit_xml = junit_xml.absolute()
        junit_xml.unlink(missing_ok=True)
    command = build_command(root, interpreter, args, junit_xml=junit_xml)

    def env_of(events_fd: int) -> dict[str, str]:
        return build_env(
            venv_of(interpreter),
            events_fd=events_fd,
            allowlist=env_allowlist,
            extra_env=extra_env,
            environ=environ,
        )

    spawned = None
    if warm is not None and nice == 0:
        spawned = warm.take(root, command, env_of)
    if spawned is None:
        spawned = _spawn(
            root,
            command,
            await _register(root),
            env_of,
            stdin=subprocess.DEVNULL,
            nice=nice,
            interpreter=interpreter.path,
        )
    proc, read_fd, lifeline_write, record = (
        spawned.proc,
        spawned.read_fd,
        spawned.lifeline_write,
        spawned.record,
    )
    started = spawned.started
    assert proc.stdout is not None and proc.stderr is not None
    try:
        child = _Child(proc)
    except BaseException:
        _signal_group(proc.pid, signal.SIGKILL)
        _release(read_fd, lifeline_write, record)
        raise
    collector = _Collector(on_event)
    pipes = _Pipes()
    try:
        if on_started is not None:
            on_started()
        loop = asyncio.get_running_loop()
        events = await pipes.open(loop, os.fdopen(read_fd, "rb", buffering=0), _EVENT_LINE_LIMIT)
        out = await pipes.open(loop, proc.stdout)
        err = await pipes.open(loop, proc.stderr)
        readers = asyncio.gather(_read_all(out), _read_all(err), _read_events(events, collector))
        try:
            status, rusage = await asyncio.shield(child.exited)
            try:
                stdout, stderr, _ = await asyncio.wait_for(asyncio.shield(readers), _DRAIN_S)
            except TimeoutError:
                log.warning("a process left by the tests keeps the output open; killing group")
                _signal_group(proc.pid, signal.SIGKILL)
                try:
                    stdout, stderr, _ = await asyncio.wait_for(readers, _DRAIN_S)
                except TimeoutError as exc:
                    raise RunnerError(
                        "a process started by the tests outside its process group keeps the "
                        "test output open",
                        hint="make the tests stop the daemons they start",
                    ) from exc
        except BaseException:
            readers.cancel()
            with contextlib.suppress(BaseException):
                await readers
            raise
    except asyncio.CancelledError:
        log.info("run cancelled; terminating process group %d", proc.pid)
        await child.terminate(grace_s)
        raise
    finally:
        if not child.exited.done():
            _signal_group(proc.pid, signal.SIGKILL)
        pipes.close()
        # The child is reaped or SIGKILLed: its lifeline and record may go.
        _release(None, lifeline_write, record)
    wall_s = time.monotonic() - started
    report = RunReport(
        exit_code=os.waitstatus_to_exitcode(status),
        results=collector.results,
        file_deps=collector.file_deps,
        collected=collector.collected,
        session=collector.session,
        session_end=collector.session_end,
        unfinished=tuple(collector.started),
        stdout=stdout,
        stderr=stderr,
        junit_xml=_read_optional(junit_xml),
        wall_s=wall_s,
        user_s=rusage.ru_utime,
        system_s=rusage.ru_stime,
        max_rss_kb=rusage.ru_maxrss,
        command=tuple(command),
        invalid_event_lines=collector.invalid,
        traces=collector.traces,
        session_trace=collector.session_trace,
    )
    if report.exit_code == _PYTEST_USAGE_ERROR:
        raise _usage_error(report, root)
    if report.session is None:
        said = startup_failure(report.stderr.decode(errors="replace"))
        raise RunnerError(
            f"pytest exited with status {report.exit_code} before the session started"
            + (": " + said if said else ""),
            hint=f"run `{interpreter.path} -m pytest {' '.join(args)}` in {root} to see why",
        )
    return report


# "SyntaxError: invalid syntax", "pytest.PytestDeprecationWarning: The option ...", "KeyError"
_RAISED = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Warning|Exit|Interrupt)\b(:|$)")
_SAID_LINE_MAX = 240


def startup_failure(stderr: str) -> str:
    """What pytest said as it failed before its session, short: the exception's line first, then
    up to three lines before it (the file and line it names). The end of stderr buried it under
    INTERNALERROR> prefixes, carets and the exception's own long explanation (pytest-asyncio's
    deprecation under ``filterwarnings = error``: ~900 characters in one line); without an
    exception line, the last five lines."""
    lines = [line.removeprefix("INTERNALERROR>").strip() for line in stderr.strip().splitlines()]
    lines = [line for line in lines if line.strip("^~ ")]
    raised = next((i for i in range(len(lines) - 1, -1, -1) if _RAISED.match(lines[i])), None)
    around = [] if raised is None else [lines[raised], *lines[max(0, raised - 3) : raised]]
    picked = around or lines[-5:]
    return " | ".join(
        line if len(line) <= _SAID_LINE_MAX else line[: _SAID_LINE_MAX - 3] + "..."
        for line in picked
    )


_PYTEST_USAGE_ERROR = 4  # pytest.ExitCode.USAGE_ERROR


def _usage_error(report: RunReport, root: Path) -> PytestUsageError:
    """What pytest said when it refused the run ("ERROR: not found: ...::test_x"), paths made
    relative to the workspace: its results must not be taken for a run that found no tests."""
    said: list[str] = []
    for stream in (report.stderr, report.stdout):
        lines = stream.decode(errors="replace").splitlines()
        first = next((i for i, line in enumerate(lines) if line.startswith("ERROR:")), None)
        if first is not None:
            lines[first] = lines[first].removeprefix("ERROR:")
            said += [line.strip() for line in lines[first : first + 4] if line.strip()]
    if not said:  # a conftest.py that fails to import: the end of its traceback
        tail = report.stderr.decode(errors="replace").strip().splitlines()[-4:]
        said = [line.strip() for line in tail if line.strip()]
    # argparse's usage line and pytest's ini/rootdir footer say nothing about what is wrong
    said = [
        line.partition(" error: ")[2] or line
        for line in said
        if not line.startswith(("usage:", "inifile:", "rootdir:"))
    ]
    text = " ".join(said) or "no message"
    return PytestUsageError(
        f"pytest refused the run: {text.replace(str(root) + os.sep, '')}",
        hint="fix what pytest names (a node id, an option after `--`, a conftest.py); if "
        "plain pytest given the same files runs, this is Maestro's fault: please report it",
    )


_T = TypeVar("_T")
_P = ParamSpec("_P")


def run_sync(main: Coroutine[Any, Any, _T]) -> _T:
    """``asyncio.run(main)`` whose main task does not hold the result: on 3.11 the runner's
    SIGINT bookkeeping formats the finished task's repr, and with it the whole result (a
    thousand-test report took a quarter of a second)."""
    import asyncio

    box: list[_T] = []

    async def holder() -> None:
        box.append(await main)

    asyncio.run(holder())
    return box[0]


def synchronous(
    main: Callable[_P, Coroutine[Any, Any, _T]],
) -> Callable[_P, _T]:
    """``main`` for synchronous callers: the same parameters, run to completion with
    :func:`run_sync` (Ctrl-C terminates a pytest child group as in the async form)."""

    @functools.wraps(main)
    def call(*args: _P.args, **kwargs: _P.kwargs) -> _T:
        return run_sync(main(*args, **kwargs))

    return call


run_pytest_sync = synchronous(run_pytest)


class _Child:
    """Reaps the child in a thread with wait4 (exit status and its own rusage)."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        import asyncio

        self.proc = proc
        loop = asyncio.get_running_loop()
        self.exited: asyncio.Future[tuple[int, Any]] = loop.create_future()
        thread = threading.Thread(
            target=self._wait, args=(loop,), name=f"maestro-wait-{proc.pid}", daemon=True
        )
        thread.start()

    def _wait(self, loop: asyncio.AbstractEventLoop) -> None:
        while True:
            try:
                _, status, rusage = os.wait4(self.proc.pid, 0)
                break
            except ChildProcessError:  # reaped elsewhere: nothing more to learn
                status, rusage = 0, None
                break
            except InterruptedError:
                continue
        # Popen must not try to reap (or warn about) a pid we already reaped.
        self.proc.returncode = os.waitstatus_to_exitcode(status) if rusage is not None else 0
        with contextlib.suppress(RuntimeError):  # the loop closed: nobody is waiting
            loop.call_soon_threadsafe(self._resolve, status, rusage)

    def _resolve(self, status: int, rusage: Any) -> None:
        if not self.exited.done():
            self.exited.set_result((status, rusage))

    async def terminate(self, grace_s: float) -> None:
        """SIGTERM the group, SIGKILL it after ``grace_s``; returns once the child is reaped."""
        import asyncio

        pid = self.proc.pid
        _signal_group(pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(asyncio.shield(self.exited), grace_s)
        except TimeoutError:
            log.warning("process group %d ignored SIGTERM for %.1fs; killing", pid, grace_s)
        finally:
            # Grandchildren may outlive the leader: the group gets SIGKILL either way.
            _signal_group(pid, signal.SIGKILL)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self.exited), grace_s)


class _Pipes:
    """Read ends wrapped as asyncio stream readers; closes every transport it opened."""

    def __init__(self) -> None:
        self._transports: list[asyncio.BaseTransport] = []
        self._pending: list[IO[bytes]] = []

    async def open(
        self, loop: asyncio.AbstractEventLoop, pipe: IO[bytes], limit: int = _CHUNK
    ) -> asyncio.StreamReader:
        import asyncio

        self._pending.append(pipe)
        reader = asyncio.StreamReader(limit=limit)
        transport, _ = await loop.connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(reader), pipe
        )
        self._pending.remove(pipe)
        self._transports.append(transport)
        return reader

    def close(self) -> None:
        for transport in self._transports:
            transport.close()
        for pipe in self._pending:
            pipe.close()
        self._transports.clear()
        self._pending.clear()


async def _read_all(reader: asyncio.StreamReader) -> bytes:
    """The whole stream, keeping at most _MAX_OUTPUT_BYTES (the rest is counted, not kept)."""
    chunks: list[bytes] = []
    kept = dropped = 0
    while chunk := await reader.read(_CHUNK):
        if kept < _MAX_OUTPUT_BYTES:
            chunk = chunk[: _MAX_OUTPUT_BYTES - kept]
            chunks.append(chunk)
            kept += len(chunk)
        else:
            dropped += len(chunk)
    if dropped:
        chunks.append(f"\n[maestro: {dropped} more bytes dropped]\n".encode())
    return b"".join(chunks)


async def _read_events(reader: asyncio.StreamReader, collector: _Collector) -> None:
    while line := await _read_line(reader):
        collector.feed(line)


async def _read_line(reader: asyncio.StreamReader) -> bytes:
    """The next line, whole however long ("" at the end): a test's name may be the text of
    its parameter, 10 MB in python-multipart's suite, and the collected line holds them all.
    The reader's limit bounds what is buffered at a time, not the line."""
    import asyncio

    parts: list[bytes] = []
    while True:
        try:
            parts.append(await reader.readuntil(b"\n"))
        except asyncio.LimitOverrunError as exc:  # no newline in the buffer's first part
            parts.append(await reader.readexactly(exc.consumed))
            continue
        except asyncio.IncompleteReadError as exc:  # the end, maybe after a last unended line
            parts.append(exc.partial)
        return b"".join(parts)


async def _register(root: Path) -> RunRecord | None:
    """Kill the orphans of the workspace, then record this run; None if the state dir is
    unusable (the lifeline still ties the run to this process)."""
    import asyncio

    return await asyncio.to_thread(_register_sync, root)


BACKGROUND_ENV = "MAESTRO_BACKGROUND"
"""Set for a background run's pytest: the plugin turns pytest-cov's reports off."""


def background_env(private: Path) -> dict[str, str]:
    """The variables of a background run's pytest. coverage.py (pytest-cov, and the children it
    measures) writes its data where COVERAGE_FILE says: a pytest-cov run in the workspace
    combines and deletes every ``.coverage.*`` file beside its own, so a run the user did not
    start and the user's own would break each other's data (errors in the tests of both)."""
    return {"COVERAGE_FILE": str(private / ".coverage"), BACKGROUND_ENV: "1"}


def _private_dir(root: Path) -> Path:
    """A new directory only this run writes: under the workspace's state, else the temp dir."""
    try:
        base = workspace_state_dir(root) / "background"
        base.mkdir(mode=0o700, parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix="run-", dir=base))
    except OSError:
        return Path(tempfile.mkdtemp(prefix="maestro-background-"))


def _read_optional(path: Path | None) -> bytes | None:
    if path is None:
        return None
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None
