"""`maestro test` counts pytest's warnings as pytest's summary line does, fresh and served from
the cache (then saying they are the recorded run's): real pytest children, a real LMDB cache."""

from __future__ import annotations

import re
import subprocess

import pytest
import typer
from project_python import project_python
from testing_helpers import Workspace
from typer.testing import CliRunner

from maestro.cli import test_cmd

app = typer.Typer()
app.command("test", cls=test_cmd.TestCommand)(test_cmd.test)
app.command("noop")(lambda: None)

WARNS = """
import warnings


def test_user():
    warnings.warn("careful", UserWarning)


def test_deprecated():
    warnings.warn("old api", DeprecationWarning)


def test_quiet():
    assert True
"""

AT_IMPORT = """
import warnings

warnings.warn("at import", UserWarning)


def test_q():
    assert 1
"""


def _said(output: str) -> str:
    return " ".join(output.split())


def test_the_summary_counts_warnings_as_pytest_does(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws.write("maestro.toml", f"interpreter = {str(project_python())!r}\n")
    ws.write("tests/test_warns.py", WARNS)
    ws.write("tests/test_at_import.py", AT_IMPORT)
    monkeypatch.chdir(ws.root)
    monkeypatch.setenv("MAESTRO_TRACE", "always")  # a per-test record from the first run
    plain = subprocess.run(
        [str(project_python()), "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    found = re.search(r"(\d+) warnings? in ", plain.stdout)
    assert found is not None, plain.stdout
    expected = int(found[1])
    assert expected == 3  # two tests and one test file's import

    fresh = CliRunner().invoke(app, ["test", "--no-daemon"])
    assert fresh.exit_code == 0, fresh.output
    assert f", {expected} warnings — ran" in _said(fresh.output)
    assert "recorded run" not in fresh.output

    served = CliRunner().invoke(app, ["test", "--no-daemon"])
    assert served.exit_code == 0 and ", 0 to run" in served.output, served.output
    said = _said(served.output)
    assert f", {expected} warnings — ran 0 files" in said
    assert f"the {expected} warnings are from the cached results' recorded runs" in said

    # one test runs again: its warning is this run's; its file's other test's, carried, and
    # the other file's are the recorded runs'
    ws.edit("tests/test_warns.py", '"careful"', '"careful!"')
    partly = CliRunner().invoke(app, ["test", "--no-daemon"])
    said = _said(partly.output)
    assert "1 of 3 tests: tests/test_warns.py::test_user" in said
    assert f", {expected} warnings — ran 1 file," in said, said
    assert f"2 of the {expected} warnings are from the cached results' recorded runs" in said


def test_a_warning_at_a_test_file_s_import_is_no_input_of_the_others(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    # pytest's terminal formats each warning with its source line (linecache reads the file it
    # points at) after the collection: that read made the test file an input of every file
    ws.write("maestro.toml", f"interpreter = {str(project_python())!r}\n")
    ws.write("tests/test_at_import.py", AT_IMPORT)
    monkeypatch.chdir(ws.root)
    first = CliRunner().invoke(app, ["test", "--no-daemon"])
    assert first.exit_code == 0, first.output
    ws.edit("tests/test_at_import.py", "assert 1", "assert 2")
    again = CliRunner().invoke(app, ["test", "--no-daemon"])
    assert again.exit_code == 0, again.output
    assert re.search(r"ran 1 file, (\d+) cached", again.output), again.output


def test_a_conftest_s_warning_is_counted_when_every_file_is_served(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A warning raised at a conftest's import (hpack's conftest primes Hypothesis: pytest says
    "88 passed, 5 warnings") is raised once per session: a run served whole from the cache said
    "88 passed", as if there were none."""
    ws.write("maestro.toml", f"interpreter = {str(project_python())!r}\n")
    ws.write("tests/conftest.py", 'import warnings\n\nwarnings.warn("at conftest import")\n')
    ws.write("tests/test_one.py", "def test_one():\n    assert True\n")
    ws.write("tests/test_two.py", "def test_two():\n    assert True\n")
    monkeypatch.chdir(ws.root)
    plain = subprocess.run(
        [str(project_python()), "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    found = re.search(r"(\d+) passed, 1 warning in ", plain.stdout)
    assert found is not None, plain.stdout
    fresh = CliRunner().invoke(app, ["test", "--no-daemon"])
    assert f"{found[1]} passed, 1 warning — ran" in _said(fresh.output), fresh.output
    served = CliRunner().invoke(app, ["test", "--no-daemon"])
    said = _said(served.output)
    assert f"{found[1]} passed, 1 warning — ran 0 files" in said, said
    assert "the warning is from the cached results' recorded runs" in said
    # the note names `maestro test --no-cache` as showing them: a run shows the warnings it
    # had as pytest's summary does
    assert "--no-cache runs them all)" in said, said
    rerun = CliRunner().invoke(app, ["test", "--no-daemon", "--no-cache"])
    assert "UserWarning: at conftest import" in rerun.output, rerun.output


def test_pytest_s_warning_about_a_served_file_s_collection_is_counted(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    """pytest warns about a file's parametrize while collecting it, pointing at its own code
    (cookiecutter: "Passing a non-Collection iterable to parametrize is deprecated", pytest
    says "379 passed, 4 skipped, 2 warnings"): once that file was served and another ran, the
    run said "379 passed, 4 skipped"."""
    ws.write("maestro.toml", f"interpreter = {str(project_python())!r}\n")
    ws.write(
        "tests/test_gen.py",
        "import pytest\n\n\n@pytest.mark.parametrize('x', (i for i in range(2)))\n"
        "def test_gen(x):\n    assert x < 2\n",
    )
    ws.write("tests/test_other.py", "def test_other():\n    assert True\n")
    monkeypatch.chdir(ws.root)
    plain = subprocess.run(
        [str(project_python()), "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    found = re.search(r"(\d+) passed, 1 warning in ", plain.stdout)
    assert found is not None, plain.stdout
    counts = f"{found[1]} passed, 1 warning — ran"
    fresh = CliRunner().invoke(app, ["test", "--no-daemon"])
    assert counts in _said(fresh.output), fresh.output
    ws.edit("tests/test_other.py", "assert True", "assert 1")
    partly = CliRunner().invoke(app, ["test", "--no-daemon"])
    said = _said(partly.output)
    assert f"{counts} 1 file," in said, said
    assert "the warning is from the cached results' recorded runs" in said
    served = CliRunner().invoke(app, ["test", "--no-daemon"])
    assert f"{counts} 0 files" in _said(served.output), served.output


def test_a_served_file_counts_no_assertion_rewrite_warning(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    """pytest warns about an assert it rewrites ("assertion is always true, perhaps remove
    parentheses?") only when it rewrites the module, which it does only when the rewritten
    module's .pyc is absent: plain pytest says "2 passed, 1 warning", then "2 passed". A run
    served whole from the cache said "2 passed, 1 warning" run after run."""
    monkeypatch.delenv("PYTHONDONTWRITEBYTECODE", raising=False)
    ws.write("maestro.toml", f"interpreter = {str(project_python())!r}\n")
    ws.write(
        "tests/test_rw.py",
        'def test_a():\n    assert (1, "always true")\n\n\ndef test_b():\n    assert 1\n',
    )
    _warned_once_then_served(ws, monkeypatch, "tests/__pycache__", "*pytest*.pyc")


def test_a_served_file_counts_no_assertion_rewrite_warning_raised_in_a_test(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same warning raised while a test runs: the test imports a helper module a conftest
    registered for rewriting (``pytest.register_assert_rewrite``). Plain pytest says it once,
    as it rewrites the helper; a served result said "1 warning" run after run (the warning
    was stored as the test's own)."""
    monkeypatch.delenv("PYTHONDONTWRITEBYTECODE", raising=False)
    ws.write("maestro.toml", f"interpreter = {str(project_python())!r}\n")
    ws.write("tests/rw/conftest.py", 'import pytest\n\npytest.register_assert_rewrite("rwhelp")\n')
    ws.write("tests/rw/rwhelp.py", 'def check():\n    assert (1, "always true")\n')
    ws.write(
        "tests/rw/test_rw.py",
        "import os\nimport sys\n\nsys.path.insert(0, os.path.dirname(__file__))\n\n\n"
        "def test_a():\n    import rwhelp\n\n    rwhelp.check()\n",
    )
    _warned_once_then_served(ws, monkeypatch, "tests/rw/__pycache__", "rwhelp*pytest*.pyc")


def _warned_once_then_served(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch, folder: str, rewritten: str
) -> None:
    """Plain pytest says the rewrite warning once, then not once the rewritten .pyc exists;
    with that .pyc removed, Maestro's first run says it too, and its served run does not."""
    monkeypatch.chdir(ws.root)

    def plain() -> str:
        done = subprocess.run(
            [str(project_python()), "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
            capture_output=True, text=True, timeout=300, check=False,
        )  # fmt: skip
        return done.stdout

    found = re.search(r"(\d+) passed, 1 warning in ", plain())
    assert found is not None
    passed = found[1]
    assert f"\n{passed} passed in " in plain()  # the rewritten module's .pyc exists
    for pyc in (ws.root / folder).glob(rewritten):
        pyc.unlink()
    fresh = CliRunner().invoke(app, ["test", "--no-daemon"])
    assert f"{passed} passed, 1 warning — ran" in _said(fresh.output), fresh.output
    assert f"\n{passed} passed in " in plain()  # Maestro's pytest wrote the .pyc
    served = CliRunner().invoke(app, ["test", "--no-daemon"])
    said = _said(served.output)
    assert f"{passed} passed — ran 0 files" in said, said
