"""Dynamic dependencies recorded per test file: data files read, modules imported."""

from __future__ import annotations

import site
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from maestro.engine.events import Event, FileDeps, TestResult
from maestro.engine.interpreter import Interpreter, query_interpreter
from maestro.engine.runner import run_pytest_sync

WriteWorkspace = Callable[[dict[str, str]], Path]

FILES = {
    "pkg/__init__.py": "",
    "pkg/util.py": "VALUE = 2\n",
    "pkg/plugins/__init__.py": "",
    "pkg/plugins/alpha.py": "NAME = 'alpha'\n",
    "data/table.csv": "a,b\n1,2\n",
    "data/unused.csv": "x\n",
    "tests/test_reads.py": """
        from pathlib import Path

        from pkg import util

        HERE = Path(__file__).parent


        def test_reads_data():
            text = (HERE.parent / "data" / "table.csv").read_text()
            assert text.startswith("a,b")


        def test_writes_are_not_inputs(tmp_path):
            (HERE.parent / "out.txt").write_text("generated")
            assert util.VALUE == 2
        """,
    "tests/test_dynamic.py": """
        import importlib


        def test_imports_computed_name():
            name = "".join(["al", "pha"])
            module = importlib.import_module(f"pkg.plugins.{name}")
            assert module.NAME == "alpha"


        def test_relative_open(monkeypatch):
            monkeypatch.chdir("data")
            with open("table.csv") as handle:
                assert handle.readline()
        """,
}


def test_each_file_gets_its_own_deps(workspace: WriteWorkspace, interpreter: Interpreter) -> None:
    root = workspace(FILES)
    events: list[Event] = []
    report = run_pytest_sync(
        root, interpreter, ["tests/test_reads.py", "tests/test_dynamic.py"], on_event=events.append
    )
    assert report.outcomes == {"passed": 4}, report.stdout.decode()
    assert set(report.file_deps) == {"tests/test_reads.py", "tests/test_dynamic.py"}

    reads = report.file_deps["tests/test_reads.py"]
    assert "data/table.csv" in reads.files
    assert "data/unused.csv" not in reads.files
    assert "out.txt" not in reads.files  # written, not read
    assert {"pkg/util.py", "pkg/__init__.py", "tests/test_reads.py"} <= set(reads.files)
    modules = {m.name: m.path for m in reads.modules}
    assert modules["pkg.util"] == "pkg/util.py"
    assert modules["pkg"] == "pkg/__init__.py"
    assert all(".pytest_cache" not in f and "__pycache__" not in f for f in reads.files)

    dynamic = report.file_deps["tests/test_dynamic.py"]
    dyn_modules = {m.name: m.path for m in dynamic.modules}
    # imported while a test ran: recorded through the source read (modules are listed for
    # collection-time imports only)
    assert {"pkg/plugins/alpha.py", "pkg/plugins/__init__.py"} <= set(dynamic.files)
    assert "data/table.csv" in dynamic.files  # opened relative to a changed cwd
    # Known limit: pkg was first imported by test_reads.py, so it is not listed again here.
    assert "pkg" not in dyn_modules

    # file_deps of the first file arrives right after its last test, before the next file starts.
    kinds = [(type(e).__name__, getattr(e, "nodeid", getattr(e, "path", ""))) for e in events]
    first_deps = kinds.index(("FileDeps", "tests/test_reads.py"))
    last_read_result = max(
        i for i, (kind, key) in enumerate(kinds) if kind == "TestResult" and "test_reads" in key
    )
    first_dynamic_start = min(
        i for i, (kind, key) in enumerate(kinds) if kind == "TestStart" and "test_dynamic" in key
    )
    assert last_read_result < first_deps < first_dynamic_start


def test_deps_are_the_same_with_warm_bytecode(
    workspace: WriteWorkspace, interpreter: Interpreter
) -> None:
    """A second run reads .pyc files from __pycache__: they are reported as their sources."""
    root = workspace(FILES)
    first = run_pytest_sync(root, interpreter, ["tests/test_reads.py"])
    assert (root / "pkg" / "__pycache__").is_dir()
    second = run_pytest_sync(root, interpreter, ["tests/test_reads.py"])
    assert first.file_deps["tests/test_reads.py"].files == (
        second.file_deps["tests/test_reads.py"].files
    )


def test_deselected_and_collection_only_files_still_get_deps(
    workspace: WriteWorkspace, interpreter: Interpreter
) -> None:
    root = workspace(FILES)
    report = run_pytest_sync(root, interpreter, ["tests", "-k", "computed"])
    assert list(report.results) == ["tests/test_dynamic.py::test_imports_computed_name"]
    # test_reads.py was imported (collected) but none of its tests ran: its deps come at the end.
    assert "pkg/util.py" in report.file_deps["tests/test_reads.py"].files
    assert isinstance(report.results[next(iter(report.results))], TestResult)
    assert all(isinstance(d, FileDeps) for d in report.file_deps.values())


def test_an_environment_inside_the_workspace_is_not_a_dependency(
    workspace: WriteWorkspace,
) -> None:
    """A venv under the root with an unusual name is still the interpreter's, not the code's."""
    root = workspace(
        {
            "test_env.py": """
            import sys
            from pathlib import Path

            def test_reads_env_file():
                Path(sys.prefix, "pyvenv.cfg").read_text()
                Path("local.txt").read_text()
            """,
            "local.txt": "x\n",
        }
    )
    env = root / "odd_env"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env)], check=True)
    (site_packages,) = env.glob("lib/python*/site-packages")
    (site_packages / "borrow.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    interpreter = query_interpreter(env / "bin" / "python")
    assert interpreter.has_pytest and interpreter.prefix == env
    report = run_pytest_sync(root, interpreter, ["test_env.py"])
    assert report.outcomes == {"passed": 1}, report.stdout.decode()
    assert report.file_deps["test_env.py"].files == ["local.txt", "test_env.py"]
