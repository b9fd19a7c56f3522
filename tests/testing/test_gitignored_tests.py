"""pytest does not read .gitignore: a gitignored file it collects (a local test file hidden by a
personal rule, a generated `_version.py` under `--doctest-modules`) is a test of `maestro test`
too, planned, keyed by its content, run and explained like any other. Found on humanize 4.17.0,
whose .gitignore holds `src/*/_version.py`: with a module of its package deleted plain pytest
reported `ERROR src/humanize/_version.py`, and Maestro had no node for it."""

from __future__ import annotations

import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

from project_python import project_python
from testing_helpers import Workspace

MAESTRO = str(Path(sys.executable).with_name("maestro"))


def _cases(path: Path) -> tuple[dict[str, list[str]], dict[str, str]]:
    """Each `<testcase>`'s classname.name -> the tags of its outcome elements, and the suite's
    counts, from a JUnit file."""
    root = ET.parse(path).getroot()
    suite = next(root.iter("testsuite"))
    cases = {
        c.get("classname", "") + "." + c.get("name", ""): sorted(
            e.tag for e in c if e.tag not in ("properties", "system-out", "system-err")
        )
        for c in root.iter("testcase")
    }
    counts = {k: suite.get(k, "") for k in ("tests", "failures", "errors", "skipped")}
    return cases, counts


def _env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAESTRO_")}
    env.update(
        MAESTRO_DAEMON="off",
        MAESTRO_CACHE_DIR=str(tmp_path / "cache"),
        MAESTRO_STATE_DIR=str(tmp_path / "state"),
    )
    return env


def _pytest(ws: Workspace, junit: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAESTRO_")}
    subprocess.run(
        [str(project_python()), "-m", "pytest",
            "-q", "-p", "no:cacheprovider", f"--junitxml={junit}"],
        cwd=ws.root, env=env, capture_output=True, timeout=120,
    )  # fmt: skip


def _maestro(ws: Workspace, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [MAESTRO, *args], cwd=ws.root, env=_env(tmp_path), capture_output=True, text=True,
        timeout=180,
    )  # fmt: skip


def _git_repo(ws: Workspace, personal: str) -> None:
    subprocess.run(["git", "init", "-q", str(ws.root)], check=True, timeout=30)
    (ws.root / ".git" / "info").mkdir(parents=True, exist_ok=True)
    (ws.root / ".git" / "info" / "exclude").write_text(personal)


def test_gitignored_files_pytest_collects_are_maestro_tests_too(
    ws: Workspace, tmp_path: Path
) -> None:
    ws.write("maestro.toml", f"interpreter = {str(project_python())!r}\n")
    ws.write(
        "pytest.ini",
        "[pytest]\naddopts = --doctest-modules\ntestpaths = src tests\npythonpath = src\n",
    )
    ws.write(
        ".gitignore",
        "src/*/_version.py\ntests/scratch/\ntests/env/\n__pycache__/\n",
    )
    _git_repo(ws, "# a personal rule\ntests/test_local.py\n")
    ws.write("src/gen/__init__.py", "from gen._version import VERSION\n")
    # a generated module: gitignored, collected for its doctests
    ws.write(
        "src/gen/_version.py",
        """
        VERSION = "1.0"


        def v():
            \"\"\"
            >>> v()
            '1.1'
            \"\"\"
            return VERSION
        """,
    )
    ws.write("tests/test_fine.py", "import gen\n\n\ndef test_fine():\n    assert gen.VERSION\n")
    ws.write("tests/test_local.py", "def test_local():\n    assert 1 == 2\n")
    ws.write("tests/scratch/test_deep.py", "def test_deep():\n    assert True\n")
    # a virtual environment pytest never enters, ignored or not
    ws.write("tests/env/pyvenv.cfg", "home = /usr\n")
    ws.write("tests/env/lib/test_in_venv.py", "def test_venv():\n    assert False\n")
    plain, ours = tmp_path / "pytest.xml", tmp_path / "maestro.xml"
    _pytest(ws, plain)
    truth = _cases(plain)
    assert any("test_local" in name for name in truth[0]), truth
    assert any("_version" in name for name in truth[0]), truth
    assert any("test_deep" in name for name in truth[0]), truth
    assert not any("test_venv" in name for name in truth[0]), truth
    for _ in range(2):  # a run, then the same answer from the cache
        done = _maestro(ws, tmp_path, "test", "--junit-xml", str(ours))
        assert done.returncode == 1, done.stdout + done.stderr
        assert _cases(ours) == truth, done.stdout + done.stderr
    explained = _maestro(ws, tmp_path, "explain", "tests/test_local.py")
    assert explained.returncode == 0, explained.stdout + explained.stderr
    assert "not a test file" not in explained.stdout + explained.stderr
    # its content is an input: an edit re-runs it, as plain pytest would
    ws.edit("tests/test_local.py", "1 == 2", "1 == 1")
    ws.edit("src/gen/_version.py", "'1.1'", "'1.0'")
    _pytest(ws, plain)
    truth = _cases(plain)
    assert truth[1]["failures"] == "0", truth
    done = _maestro(ws, tmp_path, "test", "--junit-xml", str(ours))
    assert done.returncode == 0, done.stdout + done.stderr
    assert _cases(ours) == truth


def test_a_gitignored_module_that_fails_to_import_is_an_error_node(
    ws: Workspace, tmp_path: Path
) -> None:
    """humanize's case: its package lost a module, and importing the gitignored `_version.py`
    (which runs the package's `__init__`) fails; pytest reports it, so must Maestro."""
    ws.write("maestro.toml", f"interpreter = {str(project_python())!r}\n")
    ws.write(
        "pytest.ini",
        "[pytest]\naddopts = --doctest-modules\ntestpaths = src tests\npythonpath = src\n",
    )
    ws.write(".gitignore", "src/*/_version.py\n")
    _git_repo(ws, "")
    ws.write("src/gen/__init__.py", "from gen import gone\nfrom gen._version import VERSION\n")
    ws.write("src/gen/_version.py", 'VERSION = "1.0"\n')
    ws.write("tests/test_fine.py", "def test_fine():\n    assert True\n")
    plain, ours = tmp_path / "pytest.xml", tmp_path / "maestro.xml"
    _pytest(ws, plain)
    truth = _cases(plain)
    assert ".src.gen._version" in truth[0], truth
    done = _maestro(ws, tmp_path, "test", "--junit-xml", str(ours))
    assert done.returncode == 1, done.stdout + done.stderr
    assert "ERROR src/gen/_version.py" in done.stdout, done.stdout
    # pytest stops after collection errors, Maestro runs the other files (documented)
    errors = {name: tags for name, tags in _cases(ours)[0].items() if tags == ["error"]}
    assert errors == truth[0]


def _committed_with_a_hidden_test(ws: Workspace) -> None:
    """A committed repository whose passing tests/test_local.py is hidden by .git/info/exclude."""
    ws.write("maestro.toml", f"interpreter = {str(project_python())!r}\n")
    ws.write("tests/test_local.py", "def test_local():\n    assert True\n")
    _git_repo(ws, "tests/test_local.py\n")
    subprocess.run(["git", "add", "-A"], cwd=ws.root, check=True, timeout=30)
    subprocess.run(
        ["git", "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "init"],
        cwd=ws.root, check=True, timeout=30,
    )  # fmt: skip


def test_impacted_runs_an_edited_hidden_test_file(ws: Workspace, tmp_path: Path) -> None:
    """git knows no version of a hidden file: `maestro test --impacted` compares it with what
    the last runs keyed, so an edit to it is impacted (it said "nothing impacted" while plain
    pytest failed), and an unchanged one is not."""
    _committed_with_a_hidden_test(ws)
    done = _maestro(ws, tmp_path, "test", "--impacted")
    assert "tests/test_local.py" in done.stdout, done.stdout + done.stderr  # never run: new
    assert done.returncode == 0, done.stdout + done.stderr
    done = _maestro(ws, tmp_path, "test", "--impacted")
    assert "nothing impacted" in done.stdout, done.stdout + done.stderr
    ws.edit("tests/test_local.py", "assert True", "assert False")
    done = _maestro(ws, tmp_path, "test", "--impacted")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "FAILED tests/test_local.py::test_local" in done.stdout, done.stdout


def test_impacted_shows_an_edited_hidden_test_file(ws: Workspace, tmp_path: Path) -> None:
    """`maestro impacted` (in process, and the daemon's answer an editor asks for) sees an
    edit to a hidden test file as `maestro test --impacted` does: it said nothing was
    impacted, from git alone."""
    _committed_with_a_hidden_test(ws)
    assert _maestro(ws, tmp_path, "test").returncode == 0
    done = _maestro(ws, tmp_path, "impacted")
    assert "tests/test_local.py" not in done.stdout, done.stdout + done.stderr  # as last run
    ws.edit("tests/test_local.py", "assert True", "assert False")
    done = _maestro(ws, tmp_path, "impacted", "--no-daemon")
    assert "tests/test_local.py" in done.stdout, done.stdout + done.stderr
    env = {**_env(tmp_path), "MAESTRO_DAEMON": "start"}
    try:
        done = subprocess.run(
            [MAESTRO, "impacted"], cwd=ws.root, env=env, capture_output=True, text=True,
            timeout=180,
        )  # fmt: skip
        assert "tests/test_local.py" in done.stdout, done.stdout + done.stderr
        status = subprocess.run(
            [MAESTRO, "daemon", "status"], cwd=ws.root, env=env, capture_output=True, text=True,
            timeout=60,
        )  # fmt: skip
        assert status.returncode == 0, status.stdout + status.stderr  # the daemon answered
    finally:
        subprocess.run(
            [MAESTRO, "daemon", "stop"], cwd=ws.root, env=env, capture_output=True, timeout=60
        )
