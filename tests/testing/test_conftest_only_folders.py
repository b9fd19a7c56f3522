"""A conftest.py in a folder that holds no test file: pytest's directory walk imports it (a
collection error or a module-level skip of that folder), while Maestro names test files to
pytest, so the folder was never walked. Found on babel (``tests/benchmarks/conftest.py`` skips:
pytest counts 3 skipped, Maestro 2). Maestro runs such a folder by its conftest, as the walk
does, keyed on its conftests: the same result from the cache."""

from __future__ import annotations

import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from project_python import project_python
from testing_helpers import Workspace

from maestro.engine.interpreter import Interpreter

MAESTRO = str(Path(sys.executable).with_name("maestro"))


@pytest.fixture
def ws(isolated: Path, interpreter: Interpreter) -> Workspace:
    """A workspace with one test file and what each test adds."""
    workspace = Workspace(isolated / "ws", interpreter)
    workspace.write("maestro.toml", f"interpreter = {str(project_python())!r}\n")
    workspace.write("tests/test_a.py", "def test_ok():\n    pass\n")
    return workspace


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    env["MAESTRO_DAEMON"] = "off"
    return env


def _pytest(ws: Workspace, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(project_python()), "-m", "pytest", "-p", "no:cacheprovider",
         "--continue-on-collection-errors", *args],
        cwd=ws.root, env=_env(), capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def _maestro(ws: Workspace, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [MAESTRO, "test", *args],
        cwd=ws.root, env=_env(), capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def _summary(out: str) -> str:
    """The last line of a run: its counts."""
    return out.strip().splitlines()[-1]


def test_a_broken_conftest_in_a_folder_without_tests_fails_the_run_as_under_pytest(
    ws: Workspace,
) -> None:
    ws.write("tests/extra/__init__.py", "")
    ws.write("tests/extra/conftest.py", "import missing_module_xyz\n")
    plain = _pytest(ws, "tests")
    assert plain.returncode == 1 and "ERROR tests/extra" in plain.stdout, plain.stdout
    assert "1 passed, 1 error" in _summary(plain.stdout), plain.stdout
    # a run, then the same from the cache (nothing changed: the conftest is still broken)
    for _ in range(2):
        done = _maestro(ws)
        out = done.stdout + done.stderr
        assert done.returncode == 1, out
        assert "ERROR tests/extra" in out and "missing_module_xyz" in out, out
        assert _summary(done.stdout).startswith("1 passed, 1 error"), out


def test_a_conftest_fixed_then_broken_again_is_run_and_served(ws: Workspace) -> None:
    ws.write("tests/extra/conftest.py", "import missing_module_xyz\n")
    assert _maestro(ws).returncode == 1
    ws.write("tests/extra/conftest.py", "import json\n")
    fixed = _maestro(ws)
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    assert "tests/extra/conftest.py" in fixed.stdout, fixed.stdout  # ran again
    assert _summary(fixed.stdout).startswith("1 passed —"), fixed.stdout
    served = _maestro(ws)
    assert served.returncode == 0, served.stdout + served.stderr
    assert "0 to run" in served.stdout, served.stdout
    ws.write("tests/extra/conftest.py", "import json\nimport missing_module_xyz\n")
    broken = _maestro(ws)
    assert broken.returncode == 1, broken.stdout + broken.stderr
    assert "ERROR tests/extra" in broken.stdout, broken.stdout


def _junit(path: Path) -> tuple[dict[str, str], list[tuple[str, str, str]]]:
    """The suite's counts and each case's (classname, name, outcome element)."""
    root = ET.parse(path).getroot()
    suite = root if root.tag == "testsuite" else root[0]
    counts = {k: suite.get(k, "") for k in ("tests", "errors", "failures", "skipped")}
    outcomes = ("skipped", "error", "failure")
    cases = [
        (
            case.get("classname", ""),
            case.get("name", ""),
            "".join(c.tag for c in case if c.tag in outcomes),
        )
        for case in suite.iter("testcase")
    ]
    return counts, sorted(cases)


def test_a_conftest_skipping_a_folder_without_tests_counts_one_skip_as_pytest(
    ws: Workspace, tmp_path: Path
) -> None:
    ws.write(
        "tests/benchmarks/conftest.py",
        "import pytest\npytest.importorskip('missing_module_xyz')\n",
    )
    plain_xml, ours = tmp_path / "pytest.xml", tmp_path / "maestro.xml"
    plain = _pytest(ws, f"--junitxml={plain_xml}")
    assert plain.returncode == 0 and "= 1 passed, 1 skipped in" in _summary(plain.stdout)
    assert ("", "tests.benchmarks", "skipped") in _junit(plain_xml)[1]
    for _ in range(2):  # a run, then the same from the cache
        done = _maestro(ws, "--junit-xml", str(ours))
        assert done.returncode == 0, done.stdout + done.stderr
        assert _summary(done.stdout).startswith("1 passed, 1 skipped"), done.stdout
        assert _junit(ours) == _junit(plain_xml)


def test_a_folder_pytest_does_not_walk_gives_no_result(ws: Workspace) -> None:
    ws.write("tests/conftest.py", "collect_ignore = ['ignored']\n")
    ws.write("tests/ignored/conftest.py", "import missing_module_xyz\n")
    ws.write("tests/build/conftest.py", "import missing_module_xyz\n")  # norecursedirs
    ws.write("tests/skipped/conftest.py", "import missing_module_xyz\n")
    ws.write("pytest.ini", "[pytest]\nnorecursedirs = skipped build\n")
    plain = _pytest(ws)
    assert plain.returncode == 0, plain.stdout
    assert "= 1 passed in" in _summary(plain.stdout), plain.stdout
    for _ in range(2):
        done = _maestro(ws)
        assert done.returncode == 0, done.stdout + done.stderr
        assert _summary(done.stdout).startswith("1 passed —"), done.stdout
        assert "error" not in done.stdout, done.stdout


def test_a_broken_conftest_run_alone_is_the_same_error(ws: Workspace) -> None:
    """Run alone (nothing else to run), as when it failed last time: pytest would load the
    conftests of `testpaths` and of their `test*` folders first, this one among them."""
    ws.write("pytest.ini", "[pytest]\ntestpaths = tests\n")
    ws.write("tests/testdata/conftest.py", "import missing_module_xyz\n")
    for _ in range(2):
        done = _maestro(ws)
        out = done.stdout + done.stderr
        assert done.returncode == 1, out
        assert "ERROR tests/testdata" in out and "refused" not in out, out
        assert _summary(done.stdout).startswith("1 passed, 1 error"), out
