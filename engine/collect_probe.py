"""Ask the workspace's conftests which files they collect themselves (graph/collectors.py).

One short pytest process in the workspace's interpreter, with the probe plugin
(plugin/maestro_collect_probe.py) in place of pytest's collection: no test module is imported,
only the conftests. Asked once per change of the question (its key); the answer is kept in the
workspace's state directory, where the CLI and the daemon both find it.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import tempfile
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from maestro.envvars import DEFAULT_ENV_ALLOWLIST
from maestro.errors import RunnerError
from maestro.graph import collectors
from maestro.paths import workspace_state_dir

if TYPE_CHECKING:
    from maestro.engine.interpreter import Interpreter
    from maestro.graph.build import BuildGraph

log = logging.getLogger(__name__)

PROBE_MODULE = "maestro_collect_probe"
PROBE_ENV = "MAESTRO_COLLECT_PROBE"
PROBE_TIMEOUT_S = 600.0


def ensure_collected(
    graph: BuildGraph,
    interpreter: Interpreter,
    *,
    allowlist: Iterable[str] = DEFAULT_ENV_ALLOWLIST,
    environ: Mapping[str, str] | None = None,
) -> None:
    """Make the files the conftests collect themselves tests of ``graph``, and those their
    walk skips (collect_ignore ...) none (a no-op, without a process, when no conftest defines
    ``pytest_collect_file`` or mentions such ignores, or the answer is known)."""
    request = graph.ask_collected(environ)
    if request is None:
        return
    state = workspace_state_dir(graph.root)
    answer = collectors.load_memo(state, request.key, environ)
    if answer is None:
        try:
            answer = probe(graph.root, interpreter, request, allowlist=allowlist, environ=environ)
        except RunnerError as exc:
            if request.conftests or request.plugins:
                raise
            # only ignores to learn: pytest's own run reports what fails (a broken conftest),
            # and asks again next time
            log.warning("%s", exc)
            graph.learn_collected(request.key, collectors.CollectAnswer(()))
            return
        collectors.save_memo(state, request.key, answer)
    graph.learn_collected(request.key, answer)


def answer_now(
    root: Path,
    request: collectors.CollectRequest,
    configured: str | Path | None,
    environ: Mapping[str, str] | None = None,
    allowlist: Iterable[str] = DEFAULT_ENV_ALLOWLIST,
) -> collectors.CollectAnswer | None:
    """The conftests' answer asked now and kept, for a command that reads the graph without
    running tests (graph stats, impacted); None when it cannot be asked (no interpreter or
    pytest, a conftest that fails to load): the command shows the graph as built."""
    from maestro.engine.interpreter_cache import workspace_interpreter
    from maestro.errors import MaestroError

    try:
        interpreter = workspace_interpreter(root, configured=configured, environ=environ)
        answer = probe(root, interpreter, request, allowlist=allowlist, environ=environ)
    except (MaestroError, OSError) as exc:
        log.warning("%s", exc)
        return None
    collectors.save_memo(workspace_state_dir(root), request.key, answer)
    return answer


def learn_collected_now(graph: BuildGraph, environ: Mapping[str, str] | None = None) -> bool:
    """Make ``graph``'s tests those pytest collects (the conftests' collectors and ignores),
    asking them now when the answer is not known; True when it changed the graph."""
    request = graph.ask_collected(environ)
    if request is None:
        return False
    answer = collectors.load_memo(workspace_state_dir(graph.root), request.key, environ)
    if answer is None:
        from maestro.engine.testing import env_allowlist_of

        configured = graph.loaded.config.interpreter
        allowlist = env_allowlist_of(graph)
        answer = answer_now(graph.root, request, configured, environ, allowlist)
    if answer is None:
        return False
    graph.learn_collected(request.key, answer)
    return True


def probe(
    root: Path,
    interpreter: Interpreter,
    request: collectors.CollectRequest,
    *,
    allowlist: Iterable[str] = DEFAULT_ENV_ALLOWLIST,
    environ: Mapping[str, str] | None = None,
) -> collectors.CollectAnswer:
    """The candidates of ``request`` that a conftest's ``pytest_collect_file`` takes, and the
    topmost path the walk skips for each of its ignorable files."""
    from maestro.engine.runner import EVENTS_FD_ENV, build_env, venv_of

    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="maestro-probe-") as tmp:
        asked, out = Path(tmp) / "request.json", Path(tmp) / "answer.json"
        asked.write_text(
            json.dumps(
                {
                    "root": str(root),
                    "out": str(out),
                    "candidates": request.candidates,
                    "ignorable": request.ignorable,
                    "environment": bool(request.ignoring),
                }
            ),
            encoding="utf-8",
        )
        # the variables the ignoring conftests read reach them, as they reach a run's
        env = build_env(
            venv_of(interpreter), events_fd=-1, allowlist=(*allowlist, *request.variables),
            environ=environ, extra_env={PROBE_ENV: str(asked)},
        )  # fmt: skip
        source = os.environ if environ is None else environ
        variables = tuple((name, source.get(name)) for name in request.variables)
        env.pop(EVENTS_FD_ENV, None)
        command = [
            str(interpreter.path), "-m", "pytest", "-p", PROBE_MODULE, f"--rootdir={root}",
            "-p", "no:cacheprovider", "-q",
        ]  # fmt: skip
        try:
            done = subprocess.run(
                command, cwd=root, env=env, capture_output=True, timeout=PROBE_TIMEOUT_S,
                check=False,
            )  # fmt: skip
            answer = json.loads(out.read_text(encoding="utf-8"))
        except (OSError, ValueError, subprocess.TimeoutExpired) as exc:
            output = locals().get("done")
            why: object = exc
            if output is not None and not out.exists():
                # pytest stopped before collecting (a conftest it could not load): its reason
                # is on stderr, the answer file was never written
                said = (output.stderr + output.stdout).decode(errors="replace").strip()
                why = f"pytest exited with code {output.returncode} first:\n{said[-3000:]}"
            raise RunnerError(
                f"could not ask the conftests defining pytest_collect_file or ignores "
                f"({request.askers}) which files they collect: {why}",
                hint="run `pytest --collect-only -q` in the workspace to see what fails",
            ) from exc
    files = tuple(sorted(str(f) for f in answer.get("files", [])))
    ignored = tuple(sorted(str(f) for f in answer.get("ignored", [])))
    stamps = tuple((str(f), int(m)) for f, m in answer.get("environment", []))
    for error in answer.get("errors", []):
        log.warning("collection probe: %s", error)
    for item in answer.get("unaddressable", []):
        log.warning(
            "not run by Maestro: %s (a plugin's test pytest cannot be given by its file; "
            "plain pytest on the whole folder runs it)",
            item,
        )
    log.info(
        "collection probe: %d of %d candidate files collected, %d of %d test files' paths "
        "left out of the walk, by %s in %.2fs",
        len(files), len(request.candidates), len(ignored), len(request.ignorable),
        request.askers, time.perf_counter() - started,
    )  # fmt: skip
    return collectors.CollectAnswer(files, ignored, stamps, variables)
