"""A pytest process started before its run is planned (WarmPytest): the tests in it see exactly
what they see under `python -m pytest`, it runs only a run it fits, and it never outlives an
unused start."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from workspace_procs import alive, wait_dead

from maestro.engine.interpreter import Interpreter
from maestro.engine.runner import WarmPytest, run_pytest_sync, runs_dir, venv_of

pytestmark = pytest.mark.skipif(not Path("/proc").is_dir(), reason="checks processes through /proc")

WriteWorkspace = Callable[[dict[str, str]], Path]

# What a test can see of the process it runs in, written next to it.
PROBE = """
import inspect, json, multiprocessing, os, sys
from pathlib import Path


def _child(queue):
    queue.put(os.getpid())


def test_probe():
    spawn = multiprocessing.get_context("spawn")  # re-imports __main__ the way -m set it up
    queue = spawn.Queue()
    proc = spawn.Process(target=_child, args=(queue,))
    proc.start()
    queue.get(timeout=60)
    proc.join(60)
    main = sys.modules["__main__"]
    Path(__file__).with_name("probe.json").write_text(json.dumps({
        "pid": os.getpid(),
        "argv": sys.argv,
        "main": getattr(getattr(main, "__spec__", None), "name", None),
        "main_file": getattr(main, "__file__", None),
        "path": sys.path,
        "stdin": os.read(0, 100).decode(),
        "env": {k: v for k, v in os.environ.items() if not k.startswith("MAESTRO_")},
        "maestro_env": sorted(k for k in os.environ if k.startswith("MAESTRO_")),
        "fds": len(os.listdir("/proc/self/fd")),
        "spawned": proc.exitcode,
        "warm_module": "maestro_warm" in sys.modules,
        # what inspect.stack() walks under the test (a suite that walks it pays per frame)
        "stack": [(os.path.basename(f.f_code.co_filename), f.f_code.co_name)
                  for f in _frames(sys._getframe())],
    }))


def _frames(frame):
    while frame is not None:
        yield frame
        frame = frame.f_back
"""


def _probe(root: Path) -> dict[str, Any]:
    path = root / "probe.json"
    found: dict[str, Any] = json.loads(path.read_text())
    path.unlink()
    return found


def _warm(root: Path, interpreter: Interpreter, **kw: Any) -> WarmPytest:
    warm = WarmPytest.start(root, interpreter.path, venv=venv_of(interpreter), **kw)
    assert warm is not None
    return warm


def test_a_warm_process_runs_the_tests_as_python_m_pytest_would(
    workspace: WriteWorkspace, interpreter: Interpreter
) -> None:
    root = workspace({"test_probe.py": PROBE})
    cold = run_pytest_sync(root, interpreter, ["test_probe.py"])
    assert cold.outcomes["passed"] == 1, cold.stdout.decode()
    expected = _probe(root)

    with _warm(root, interpreter) as warm:
        pid = warm.pid
        assert pid is not None
        report = run_pytest_sync(root, interpreter, ["test_probe.py"], warm=warm)
    assert report.outcomes["passed"] == 1, report.stdout.decode() + report.stderr.decode()
    seen = _probe(root)
    assert seen["pid"] == pid  # the warm process ran it ...
    assert expected["pid"] != pid
    for key in ("pid", "warm_module"):
        del seen[key], expected[key]
    assert seen == expected  # ... and its tests could not tell
    assert expected["main"] == "pytest.__main__" and expected["spawned"] == 0
    assert expected["stdin"] == ""


def test_a_warm_process_that_does_not_fit_the_run_is_killed_and_another_runs_it(
    workspace: WriteWorkspace, interpreter: Interpreter
) -> None:
    root = workspace({"test_probe.py": PROBE})
    before = {**os.environ, "TZ": "UTC"}
    with _warm(root, interpreter, environ=before) as warm:
        pid = warm.pid
        assert pid is not None
        # the interpreter reads its environment as it starts: a changed TZ cannot be patched in
        after = {**os.environ, "TZ": "Europe/Paris"}
        report = run_pytest_sync(root, interpreter, ["test_probe.py"], environ=after)
        assert report.outcomes["passed"] == 1
        assert alive(pid)  # not offered to that run: still waiting
        report = run_pytest_sync(root, interpreter, ["test_probe.py"], environ=after, warm=warm)
    assert report.outcomes["passed"] == 1, report.stdout.decode() + report.stderr.decode()
    seen = _probe(root)
    assert seen["pid"] != pid and seen["env"]["TZ"] == "Europe/Paris"
    assert wait_dead(pid)


def test_an_unused_warm_process_exits_and_leaves_no_run_record(
    workspace: WriteWorkspace, interpreter: Interpreter
) -> None:
    root = workspace({"test_probe.py": PROBE})
    warm = _warm(root, interpreter)
    pid = warm.pid
    assert pid is not None and alive(pid)
    assert [p for p in runs_dir(root).iterdir() if p.suffix == ".group"]
    warm.discard()
    assert wait_dead(pid)
    assert not [p for p in runs_dir(root).iterdir() if not p.name.startswith(".")]
    assert not (root / "probe.json").exists()


def test_a_warm_process_dies_with_the_process_that_started_it(
    workspace: WriteWorkspace, interpreter: Interpreter
) -> None:
    root = workspace({"test_probe.py": PROBE})
    starter = (
        "import sys\n"
        "from pathlib import Path\n"
        "from maestro.engine.interpreter import query_interpreter\n"
        "from maestro.engine.runner import WarmPytest, venv_of\n"
        "i = query_interpreter(Path(sys.executable))\n"
        "w = WarmPytest.start(Path(sys.argv[1]), i.path, venv=venv_of(i))\n"
        "print(w.pid, flush=True)\n"
        "import os; os._exit(0)\n"  # no clean-up at all, as if killed
    )
    done = subprocess.run(
        [sys.executable, "-c", starter, str(root)],
        cwd="/",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert wait_dead(int(done.stdout.strip()))


def test_a_warm_process_describes_its_interpreter_so_no_query_process_starts(
    workspace: WriteWorkspace, interpreter: Interpreter, monkeypatch: pytest.MonkeyPatch
) -> None:
    from maestro.engine import interpreter as interpreters

    root = workspace({"test_probe.py": PROBE})
    with _warm(root, interpreter) as warm:
        assert warm.describe(root / "python") is None  # not the interpreter it runs

        def no_query(*args: object) -> Interpreter:
            raise AssertionError("the interpreter was started to answer the query")

        monkeypatch.setattr(interpreters, "_query", no_query)
        described = interpreters.query_interpreter(interpreter.path, describe=warm.describe)
        assert described == interpreter
        report = run_pytest_sync(root, interpreter, ["test_probe.py"], warm=warm)
    assert report.outcomes["passed"] == 1
    seen = _probe(root)
    assert not [k for k in seen["maestro_env"] if k.startswith("MAESTRO_WARM")]


def test_a_warm_process_is_ready_once_it_has_described_its_interpreter(
    workspace: WriteWorkspace, interpreter: Interpreter
) -> None:
    """`maestro test` imports what the hand-over needs while the process is not ready, and no
    longer once it is: asking must never block."""
    root = workspace({"test_probe.py": PROBE})
    with _warm(root, interpreter) as warm:
        deadline = time.monotonic() + 60
        while not warm.ready() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert warm.ready()
        started = time.monotonic()
        assert warm.describe(interpreter.path) is not None
        assert time.monotonic() - started < 1.0
        assert warm.ready()  # described: nothing left to wait for
        report = run_pytest_sync(root, interpreter, ["test_probe.py"], warm=warm)
    assert report.outcomes["passed"] == 1


class _Starting:
    """A warm process still importing pytest (or, ``ready``, waiting for its run)."""

    def __init__(self, ready: bool) -> None:
        self._ready = ready

    def ready(self) -> bool:
        return self._ready


def test_while_its_pytest_process_starts_the_cli_reads_what_the_plan_reads_of_the_workspace(
    workspace: WriteWorkspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`maestro test` waits for its pytest process to describe the interpreter before it can
    plan; meanwhile it reads what the plan needs that the description does not change (the
    environment names the code reads, the installed distributions), and the plan, which then
    runs while pytest waits for its hand-over, reads neither again. Nothing is read once the
    process is ready."""
    from maestro.engine import core
    from maestro.engine.testing import env_allowlist_of
    from maestro.graph import env_refs
    from maestro.graph.build import BuildGraph
    from maestro.paths import graph_index_path

    root = workspace(
        {
            "pkg/conf.py": "import os\nLEVEL = os.environ.get('PKG_LEVEL')\n",
            "tests/test_a.py": "def test_a():\n    pass\n",
        }
    )
    graph = BuildGraph.build(root, index_path=graph_index_path(root))
    read: list[bytes] = []
    names = env_refs.read_names
    monkeypatch.setattr(env_refs, "read_names", lambda data: (read.append(data), names(data))[1])
    core._prepare_while_waiting(_Starting(ready=True), graph)  # type: ignore[arg-type]
    assert read == [] and "dists" not in graph.index.extra
    core._prepare_while_waiting(_Starting(ready=False), graph)  # type: ignore[arg-type]
    assert len(read) == 2 and "dists" in graph.index.extra
    read.clear()
    distributions = graph.distributions()
    monkeypatch.setattr(
        "maestro.graph.environment.distribution_map", lambda dirs: pytest.fail("read again")
    )
    graph._dists = {}  # what the index remembers is enough
    assert "PKG_LEVEL" in env_allowlist_of(graph)  # the plan's
    assert read == [] and graph.distributions() == distributions


def test_no_warm_process_after_a_run_served_whole_from_the_cache(
    workspace: WriteWorkspace, interpreter: Interpreter
) -> None:
    from maestro.engine.core import ALL_CACHED, Engine
    from maestro.engine.testing import Selection
    from maestro.paths import workspace_state_dir

    root = workspace(
        {
            "maestro.toml": f"interpreter = {str(interpreter.path)!r}\n",
            # unique: a result for the same inputs may be in the user cache already
            "tests/test_a.py": f"def test_a():\n    assert {os.getpid()} + {time.time_ns()}\n",
        }
    )
    marker = workspace_state_dir(root) / ALL_CACHED
    for expected_marker in (False, True):  # a first run executes, the next is all cached
        warm = Engine.warm(root)
        assert (warm is None) == marker.exists()
        engine = Engine.open(root, warm=warm)
        try:
            summary = engine.run(Selection(), warm=warm)
        finally:
            engine.close()
            if warm is not None:
                warm.discard()
        assert summary.passed == 1
        assert marker.exists() == expected_marker
    assert Engine.warm(root) is None  # the last run needed no process: no start-up wasted
    (root / "tests/test_a.py").write_text(f"def test_a():\n    assert {time.time_ns()}\n")
    engine = Engine.open(root)
    try:
        engine.run(Selection())
    finally:
        engine.close()
    assert not marker.exists()  # it ran pytest: the next run starts one early again
    warm = Engine.warm(root)
    assert warm is not None
    warm.discard()


def _venv_importing_at_start(root: Path) -> Interpreter:
    """A venv whose start-up imports the workspace's own ``src/boot.py`` (a ``.pth`` line, as
    editable installs do), with this suite's packages (pytest) on its path."""
    import sysconfig

    from maestro.engine.interpreter import query_interpreter

    venv = root.parent / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    site = next((venv / "lib").glob("python*/site-packages"))
    ours = sysconfig.get_paths()["purelib"]
    (site / "ws.pth").write_text(f"{ours}\n{root / 'src'}\nimport boot\n")
    return query_interpreter(venv / "bin/python")


def test_a_warm_process_is_not_used_once_code_it_loaded_changed(
    workspace: WriteWorkspace,
) -> None:
    """pytest itself may import the project under test (pluggy, an editable plugin): a process
    that imported it before an edit must not run the edited project's tests with the old code."""
    root = workspace(
        {
            "src/boot.py": "VALUE = 1\n",
            "test_probe.py": PROBE,
            "test_boot.py": "import boot\n\ndef test_boot():\n    assert boot.VALUE == 1\n",
        }
    )
    interpreter = _venv_importing_at_start(root)
    with _warm(root, interpreter) as warm:  # unchanged: the run takes it
        pid = warm.pid
        report = run_pytest_sync(root, interpreter, ["test_probe.py", "test_boot.py"], warm=warm)
    assert report.outcomes["passed"] == 2, report.stdout.decode() + report.stderr.decode()
    assert _probe(root)["pid"] == pid

    with _warm(root, interpreter) as warm:
        pid = warm.pid
        assert warm.describe(interpreter.path) is not None  # it has loaded boot.py
        (root / "src/boot.py").write_text("VALUE = 22\n")
        report = run_pytest_sync(root, interpreter, ["test_probe.py", "test_boot.py"], warm=warm)
    assert report.outcomes == {"passed": 1, "failed": 1}, report.stdout.decode()
    assert _probe(root)["pid"] != pid
    assert pid is not None and wait_dead(pid)


def test_a_warm_process_whose_set_up_never_ran_exits_before_any_conftest(
    workspace: WriteWorkspace, interpreter: Interpreter, tmp_path: Path
) -> None:
    """The waiting process is `python -m pytest` held in site start-up; if that hold never
    happens (a broken sitecustomize of the environment) it must not go on to run the folder."""
    from maestro.envvars import DEFAULT_ENV_ALLOWLIST

    root = workspace(
        {
            "conftest.py": "open('conftest-ran', 'w').close()\n",
            "test_probe.py": "def test_probe():\n    open('test-ran', 'w').close()\n",
        }
    )
    broken = tmp_path / "site"
    broken.mkdir()
    (broken / "sitecustomize.py").write_text("raise RuntimeError('broken environment')\n")
    environ = {**os.environ, "PYTHONPATH": str(broken)}
    allowlist = [*DEFAULT_ENV_ALLOWLIST, "PYTHONPATH"]
    with _warm(root, interpreter, environ=environ, env_allowlist=allowlist) as warm:
        pid = warm.pid
        assert pid is not None
        assert warm.describe(interpreter.path) is None  # it exited without describing
        assert wait_dead(pid)
        assert not (root / "conftest-ran").exists() and not (root / "test-ran").exists()
        report = run_pytest_sync(root, interpreter, ["test_probe.py"], warm=warm)
    assert report.outcomes["passed"] == 1  # a process of its own ran it
    assert report.session is not None and report.session.pid != pid


def test_the_warm_process_starts_before_asyncio_and_pydantic_are_imported(
    workspace: WriteWorkspace, interpreter: Interpreter
) -> None:
    """An in-process `maestro test` starts pytest's process first (maestro/cli/fast.py
    prestart): what it imports until then delays the process and the whole run."""
    root = workspace({"tests/test_a.py": "def test_a():\n    pass\n"})
    probe = (
        "import sys; from pathlib import Path; from maestro.engine.core import Engine; "
        f"warm = Engine.warm(Path({str(root)!r})); "
        "print(warm is not None, sorted({'asyncio', 'pydantic'} & set(sys.modules))); "
        "warm.discard()"
    )
    env = {**os.environ, "VIRTUAL_ENV": str(interpreter.prefix)}
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, cwd="/", env=env, timeout=60
    )
    assert out.stdout.strip() == "True []", out.stderr
