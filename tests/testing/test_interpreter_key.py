"""The action key covers the interpreter version: the same tests under Python 3.11, then 3.12,
are a cache miss the second time ("@python" changed), and each interpreter keeps its own results.

Needs a second interpreter: pyenv's 3.12 on this machine image (tests/precision uses the same);
skipped, with the reason, where there is none or its venv cannot get pytest.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from testing_helpers import Workspace
from typer.testing import CliRunner

from maestro.cli import test_cmd

app = typer.Typer()
app.command("test", cls=test_cmd.TestCommand)(test_cmd.test)
app.command("noop")(lambda: None)


@pytest.fixture(scope="module")
def python312(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if sys.version_info[:2] == (3, 12):
        pytest.skip("this suite already runs on 3.12: no second interpreter to compare")
    candidates = sorted(Path.home().glob(".pyenv/versions/3.12*/bin/python3.12"))
    candidates += [Path(p) for p in ("/usr/bin/python3.12", "/usr/local/bin/python3.12")]
    base = next((c for c in candidates if c.exists()), None)
    if base is None:
        pytest.skip("no python3.12 on this machine (pyenv 3.12.x or /usr/bin/python3.12)")
    venv = tmp_path_factory.mktemp("py312") / "venv"
    pytest_version = pytest.__version__
    try:
        subprocess.run([str(base), "-m", "venv", str(venv)], check=True, capture_output=True)
        subprocess.run(  # the same pytest as this suite: only the interpreter differs in @runner
            [str(venv / "bin/python"), "-m", "pip", "install", "-q", f"pytest=={pytest_version}"],
            check=True, capture_output=True, timeout=300,
        )  # fmt: skip
    except (subprocess.SubprocessError, OSError) as exc:
        pytest.skip(f"cannot make a python3.12 venv with pytest=={pytest_version}: {exc}")
    return venv / "bin/python"


def run(ws: Workspace, python: str) -> tuple[int, str]:
    ws.write("maestro.toml", f"interpreter = {python!r}\n")
    result = CliRunner().invoke(app, ["test", "--no-daemon"], env={"COLUMNS": "300"})
    return result.exit_code, result.output


def ran_cached(output: str) -> tuple[int, int]:
    found = re.search(r"ran (\d+) files?, (\d+) cached", output)
    assert found is not None, output
    return int(found[1]), int(found[2])


@pytest.mark.slow
def test_a_second_interpreter_version_is_a_cache_miss(
    ws: Workspace, python312: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(ws.root)
    code, out = run(ws, sys.executable)
    assert code == 0 and ran_cached(out) == (4, 0), out
    code, out = run(ws, sys.executable)
    assert code == 0 and ran_cached(out) == (0, 4), out

    code, out = run(ws, str(python312))
    assert code == 0 and ran_cached(out) == (4, 0), out  # same files, same pytest: all re-run
    assert "inputs changed: installed packages, Python interpreter" in out  # words, not @python
    code, out = run(ws, str(python312))
    assert code == 0 and ran_cached(out) == (0, 4), out

    code, out = run(ws, sys.executable)  # back on 3.11: its results are still there
    assert code == 0 and ran_cached(out) == (0, 4), out
