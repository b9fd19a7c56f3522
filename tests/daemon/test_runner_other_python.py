"""The plugin in another interpreter: a Python 3.12 venv with its own, older pytest (7.x)."""

from __future__ import annotations

import glob
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from maestro.engine.interpreter import Interpreter, resolve_interpreter
from maestro.engine.runner import run_pytest_sync
from maestro.errors import PytestUsageError

WriteWorkspace = Callable[[dict[str, str]], Path]


def _python312() -> str | None:
    candidates = [shutil.which("python3.12") or ""]
    candidates += sorted(glob.glob(str(Path.home() / ".pyenv/versions/3.12*/bin/python3.12")))
    for candidate in filter(None, candidates):
        probe = subprocess.run(
            [candidate, "-c", "import sys; assert sys.version_info[:2] == (3, 12)"],
            capture_output=True,
            check=False,
        )
        if probe.returncode == 0:
            return candidate
    return None


@pytest.fixture(scope="session")
def venv312(tmp_path_factory: pytest.TempPathFactory) -> Path:
    python = _python312()
    if python is None:
        pytest.skip("no working python3.12 on this machine")
    venv = tmp_path_factory.mktemp("py312") / "venv"
    pip = [str(venv / "bin/python"), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    steps = [[python, "-m", "venv", str(venv)], [*pip, "pytest>=7,<8"]]
    for step in steps:
        try:
            done = subprocess.run(step, capture_output=True, timeout=300, check=False)
        except subprocess.TimeoutExpired:
            pytest.skip(f"timed out: {' '.join(step)}")
        if done.returncode != 0:
            pytest.skip(
                f"cannot prepare a 3.12 venv with pytest (offline?): {done.stderr[-300:]!r}"
            )
    return venv


@pytest.mark.slow
def test_plugin_runs_in_a_python312_venv(venv312: Path, workspace: WriteWorkspace) -> None:
    root = workspace(
        {
            "lib.py": "def f():\n    raise KeyError('k')\n",
            "test_x.py": (
                "import sys\nimport lib\n\n"
                "def test_version():\n    assert sys.version_info[:2] == (3, 12)\n\n"
                "def test_fails():\n    lib.f()\n"
            ),
        }
    )
    (root / ".venv").symlink_to(venv312)
    interpreter: Interpreter = resolve_interpreter(root, environ={"PATH": ""})
    assert interpreter.source == ".venv"
    assert interpreter.version[:2] == (3, 12)
    assert interpreter.version[:2] != sys.version_info[:2]
    report = run_pytest_sync(root, interpreter, [])
    assert report.session is not None and report.session.python_version.startswith("3.12")
    assert report.session.pytest_version.startswith("7.")
    assert {k.split("::")[1]: r.outcome for k, r in report.results.items()} == {
        "test_version": "passed",
        "test_fails": "failed",
    }
    failed = report.results["test_x.py::test_fails"]
    assert failed.raised_at is not None and failed.raised_at.path == "lib.py"
    assert failed.test_line == 8
    assert "lib.py" in report.file_deps["test_x.py"].files


@pytest.mark.slow
def test_a_conftest_that_fails_to_import_is_named_in_a_python312_venv(
    venv312: Path, workspace: WriteWorkspace
) -> None:
    """The recorder's audit hook outlives the module globals it reads when the interpreter
    shuts down; its error there was the last thing on stderr, and pytest's own message (the
    conftest's traceback) was lost behind it."""
    root = workspace(
        {
            "conftest.py": "raise ValueError('bad settings')\n",
            "test_x.py": "def test_x():\n    pass\n",
        }
    )
    (root / ".venv").symlink_to(venv312)
    interpreter: Interpreter = resolve_interpreter(root, environ={"PATH": ""})
    with pytest.raises(PytestUsageError) as err:
        run_pytest_sync(root, interpreter, ["test_x.py"])
    assert "ValueError: bad settings" in err.value.message, err.value.message
    assert "audit hook" not in err.value.message
