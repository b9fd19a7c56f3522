"""Ask the workspace's conftests which files they collect themselves (graph/collectors.py).

One short pytest process in the workspace's interpreter, with the probe plugin
(plugin/maestro_collect_probe.py) in place of pytest's collection: no test module is imported,
only the conftests. Asked once per change of the question (its key); the answer is kept in the
workspace's state directory, where the CLI and the daemon both find it.
"""

from __future__ import annotations

import json
import logging
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
    """Make the files the conftests collect themselves tests of ``graph`` (a no-op, without a
    process, when no conftest defines ``pytest_collect_file`` or the answer is known)."""
    request = graph.ask_collected()
    if request is None:
        return
    state = workspace_state_dir(graph.root)
    files = collectors.load_memo(state, request.key)
    if files is None:
        files = probe(graph.root, interpreter, request, allowlist=allowlist, environ=environ)
        collectors.save_memo(state, request.key, files)
    graph.learn_collected(request.key, files)


def probe(
    root: Path,
    interpreter: Interpreter,
    request: collectors.CollectRequest,
    *,
    allowlist: Iterable[str] = DEFAULT_ENV_ALLOWLIST,
    environ: Mapping[str, str] | None = None,
) -> tuple[str, ...]:
    """The candidates of ``request`` that a conftest's ``pytest_collect_file`` takes."""
    from maestro.engine.runner import EVENTS_FD_ENV, build_env, venv_of

    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="maestro-probe-") as tmp:
        asked, out = Path(tmp) / "request.json", Path(tmp) / "answer.json"
        asked.write_text(
            json.dumps({"root": str(root), "out": str(out), "candidates": request.candidates}),
            encoding="utf-8",
        )
        env = build_env(
            venv_of(interpreter), events_fd=-1, allowlist=allowlist, environ=environ,
            extra_env={PROBE_ENV: str(asked)},
        )  # fmt: skip
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
                f"could not ask the conftests defining pytest_collect_file "
                f"({request.askers}) which files they collect: {why}",
                hint="run `pytest --collect-only -q` in the workspace to see what fails",
            ) from exc
    files = tuple(sorted(str(f) for f in answer.get("files", [])))
    for error in answer.get("errors", []):
        log.warning("collection probe: %s", error)
    for item in answer.get("unaddressable", []):
        log.warning(
            "not run by Maestro: %s (a plugin's test pytest cannot be given by its file; "
            "plain pytest on the whole folder runs it)",
            item,
        )
    log.info(
        "collection probe: %d of %d candidate files collected by %s in %.2fs",
        len(files), len(request.candidates), request.askers,
        time.perf_counter() - started,
    )  # fmt: skip
    return files
