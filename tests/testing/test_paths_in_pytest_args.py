"""Paths and node ids among pytest's own arguments (`maestro test -- -k slow tests/x.py`, as
`pytest -k slow tests/x.py` is written) select the run's files, as they do pytest's. User trial
of argcomplete 3.8.0, whose suite lives in test/test.py (no test_ prefix): `maestro test --
test/test.py -k ...` ran the project's other test files (one of them a collection error pytest
never gave) beside the named one, and its outcomes were in no count: "64 deselected, 1 error"
where `pytest test/test.py -k ...` says "2 failed, 6 passed, 282 deselected, 1 xfailed". The real
console script in a subprocess, beside plain pytest on the lean project interpreter."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from console_script import MAESTRO, cases, maestro, same_as_pytest, summary
from project_python import plain_pytest, project_python


def workspace(isolated: Path) -> Path:
    """An empty project with a tests/ folder, run on the lean project interpreter."""
    root = isolated / "ws"
    (root / "tests").mkdir(parents=True)
    (root / "maestro.toml").write_text(f"interpreter = {str(project_python())!r}\n")
    return root


def test_paths_among_pytests_arguments_select_the_files_as_in_pytest(
    isolated: Path, tmp_path: Path
) -> None:
    root = workspace(isolated)
    (root / "tests/test_ok.py").write_text("def test_ok():\n    pass\n")
    (root / "tests/test_bad.py").write_text("def test_bad():\n    assert False\n")
    # not a test_*.py name: collected only when named, as argcomplete's test/test.py
    (root / "tests/checks.py").write_text(
        "def test_one():\n    assert False\n\n\ndef test_two():\n    pass\n"
    )
    python = project_python()
    for args in (
        ["tests/test_ok.py"],  # was '1 failed, 1 passed': test_bad.py ran too
        ["-k", "one", "tests/checks.py"],  # was '2 deselected' (exit 5), its failure shown
        ["-v", "--", "tests/checks.py::test_two"],
        ["--tb=short", "-q", "tests/checks.py", "tests/test_ok.py"],
    ):
        said = same_as_pytest(root, python, tmp_path, args)
        assert "ERROR" not in said, (args, said)

    # served from the cache the second time, with the same outcomes
    again = maestro(root, "test", "--", "-k", "one", "tests/checks.py")
    assert summary(again.stdout) == "1 failed, 1 deselected", again.stdout

    # a plugin's option that may take the next argument as its value keeps it: pytest decides
    plain = plain_pytest(python, root, "-p", "no:randomly", "tests/test_ok.py")
    ours = maestro(root, "test", "--", "-p", "no:randomly", "tests/test_ok.py")
    assert summary(ours.stdout) == summary(plain.stdout) == "1 passed", ours.stdout

    # paths there and --impacted both choose the files: refused, with what to do
    refused = maestro(root, "test", "--impacted", "--", "tests/checks.py")
    assert refused.returncode == 4, refused.stdout + refused.stderr
    assert "tests/checks.py among pytest's arguments would choose the test files" in (
        refused.stdout + refused.stderr
    )


def test_a_file_cut_short_by_exitfirst_shows_what_ran_as_pytest_does(
    isolated: Path, tmp_path: Path
) -> None:
    # `maestro test -- -x` dropped a file pytest's -x stopped inside, its failure with it:
    # "1 passed" (exit 2, "a plugin did" fail the session) where `pytest -x` says "1 failed,
    # 1 passed" (exit 1)
    root = workspace(isolated)
    (root / "tests/test_a.py").write_text("def test_a():\n    pass\n")
    (root / "tests/test_b.py").write_text(
        "def test_b():\n    assert False\n\n\ndef test_b2():\n    pass\n"
    )
    (root / "tests/test_c.py").write_text("def test_c():\n    pass\n")
    python = project_python()
    for args in (["-x"], ["--maxfail=1"], ["-x", "tests/test_b.py"]):
        plain_xml, our_xml = tmp_path / "plain.xml", tmp_path / "ours.xml"
        plain = plain_pytest(python, root, f"--junitxml={plain_xml}", *args)
        ours = maestro(root, "test", "--junitxml", str(our_xml), "--", *args)
        said = ours.stdout + ours.stderr
        assert summary(said) == summary(plain.stdout), (args, said, plain.stdout)
        assert ours.returncode == plain.returncode == 1, (args, said)
        assert "a plugin did" not in said, said
        # test_c.py never started: said in pytest's one line, not its whole output again
        assert "= FAILURES =" not in said, said
        ran = {n: o for n, o in cases(our_xml).items() if "test_c" not in n}
        assert ran == cases(plain_xml), (args, said)  # test_c.py: served, where pytest stopped
    # the cut file was not stored: the whole run gives its whole outcome
    assert summary(plain_pytest(python, root).stdout) == "1 failed, 3 passed"
    assert summary(maestro(root, "test").stdout) == "1 failed, 3 passed"


def test_files_served_after_the_stopping_failure_are_not_counted_as_pytest_never_reaches_them(
    isolated: Path, tmp_path: Path
) -> None:
    # tinydb 4.9.0: 'maestro test -- -x' said '1 failed, 207 passed' where 'pytest -x' says
    # '1 failed, 10 passed': the cached files after the failing one were counted
    root = workspace(isolated)
    (root / "tests/test_a.py").write_text("def test_a():\n    pass\n")
    (root / "tests/test_b.py").write_text("def test_b():\n    assert True\n")
    (root / "tests/test_c.py").write_text("def test_c():\n    pass\n\n\ndef test_c2():\n    pass\n")
    python = project_python()
    for args in (["-x"], ["--maxfail", "1"]):  # the arguments are in the key: stored under them
        assert summary(maestro(root, "test", "--", *args).stdout) == "4 passed"
    (root / "tests/test_b.py").write_text("def test_b():\n    assert False\n")
    for args in (["-x"], ["--maxfail", "1"]):
        plain_xml, our_xml = tmp_path / "plain.xml", tmp_path / "ours.xml"
        plain = plain_pytest(python, root, f"--junitxml={plain_xml}", *args)
        ours = maestro(root, "test", "--junitxml", str(our_xml), "--", *args)
        said = ours.stdout + ours.stderr
        assert summary(said) == summary(plain.stdout) == "1 failed, 1 passed", (args, said)
        assert ours.returncode == plain.returncode == 1, (args, said)
        assert cases(our_xml) == cases(plain_xml), (args, said)
    # with room for more failures, the files after are reached: served and counted
    plain = plain_pytest(python, root, "--maxfail=2")
    assert summary(maestro(root, "test", "--", "--maxfail=2").stdout) == summary(plain.stdout)


def test_explain_answers_for_the_pytest_arguments_it_is_given(isolated: Path) -> None:
    # `maestro explain NODE` after `maestro test -- -k ...` said 'pytest arguments changed since
    # the last run' (argcomplete, YA; pyfakefs, XA): it could not be given the run's arguments
    root = workspace(isolated)
    (root / "tests/test_x.py").write_text(
        "def test_one():\n    pass\n\n\ndef test_two():\n    pass\n"
    )
    assert summary(maestro(root, "test", "--", "-k", "one").stdout) == "1 passed, 1 deselected"
    node = "tests/test_x.py::test_one"
    plain = maestro(root, "explain", node).stdout
    assert "inputs changed: pytest arguments" in plain, plain
    same = "no input changed since its last run"
    given = maestro(root, "explain", node, "--", "-k", "one")
    assert same in given.stdout, given.stdout + given.stderr
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "PYTEST_ADDOPTS")}
    addopts = subprocess.run(
        [MAESTRO, "explain", node], cwd=root, capture_output=True, text=True, timeout=300,
        env={**env, "MAESTRO_DAEMON": "off", "PYTEST_ADDOPTS": "-k one"},
    )  # fmt: skip
    assert same in addopts.stdout, addopts.stdout + addopts.stderr
    wrong = maestro(root, "explain", node, "-x")
    assert wrong.returncode != 0 and "maestro explain -- -x" in wrong.stderr, wrong.stderr


def test_explain_reads_the_paths_and_junitxml_among_them_as_test_does(isolated: Path) -> None:
    # anyio 4.16 and python-json-logger 4.2 (ZB): after `maestro test -- tests/x.py`, `maestro
    # explain NODE -- tests/x.py` said 'runs with its whole file: inputs changed: pytest
    # arguments' of a test the run served: the paths (and --junitxml) are no pytest arguments
    # of the run's key, as `maestro test` reads them
    root = workspace(isolated)
    (root / "tests/test_x.py").write_text("def test_one():\n    pass\n")
    (root / "tests/test_y.py").write_text("def test_two():\n    pass\n")
    args = ["tests/test_x.py", "tests/test_y.py", "--junitxml=out.xml", "-k", "one or two"]
    assert summary(maestro(root, "test", "--", *args).stdout) == "2 passed"
    given = maestro(root, "explain", "tests/test_x.py::test_one", "--", *args)
    assert "no input changed since its last run" in given.stdout, given.stdout + given.stderr


def test_explain_of_a_test_the_last_run_left_out_says_so(isolated: Path) -> None:
    # python-json-logger (ZB): after a `-k rename` run, `maestro explain` of a test of the file
    # that run deselected said 'error: ... is not a test of tests/test_formatters.py (its last
    # run had 30 tests)': it is one; that run left it out
    root = workspace(isolated)
    (root / "tests/test_x.py").write_text(
        "def test_one():\n    pass\n\n\ndef test_two():\n    pass\n"
    )
    assert summary(maestro(root, "test", "--", "-k", "one").stdout) == "1 passed, 1 deselected"
    left_out = maestro(root, "explain", "tests/test_x.py::test_two")
    said = left_out.stdout + left_out.stderr
    assert left_out.returncode != 0 and "is not a test of" not in said, said
    assert "has no record" in said and "maestro test -- tests/test_x.py::test_two" in said, said
    missing = maestro(root, "explain", "tests/test_x.py::test_three")
    assert "is not a test of tests/test_x.py" in missing.stdout + missing.stderr


def test_explain_of_a_misspelt_class_is_no_test_left_out(isolated: Path) -> None:
    # frozenlist (AB): `maestro explain tests/test_frozenlist.py::TestPyFrozenList::test_repr`
    # (the class is TestFrozenListPy) said the last run left the test out, with the hint
    # `maestro test -- NODE`, which pytest answers with "not found": the file defines a
    # test_repr, but no such class
    root = workspace(isolated)
    (root / "tests/test_x.py").write_text(
        "class Base:\n    def test_repr(self):\n        pass\n\n\n"
        "class TestThingPy(Base):\n    pass\n"
    )
    assert summary(maestro(root, "test").stdout) == "1 passed"
    misspelt = maestro(root, "explain", "tests/test_x.py::TestPyThing::test_repr")
    said = misspelt.stdout + misspelt.stderr
    assert misspelt.returncode != 0 and "has no record" not in said, said
    assert "is not a test of tests/test_x.py" in said, said
    served = maestro(root, "explain", "tests/test_x.py::TestThingPy::test_repr")
    assert "no input changed since its last run" in served.stdout, served.stdout + served.stderr


def short_summary(out: str) -> list[str]:
    """The lines of pytest's "short test summary info" section (Maestro's too)."""
    lines = out.splitlines()
    start = next((i for i, line in enumerate(lines) if "short test summary info" in line), None)
    if start is None:
        return []
    return [line for line in lines[start + 1 : -1] if line.strip()]


def test_report_chars_list_the_outcomes_as_pytest_s_short_summary_does(isolated: Path) -> None:
    # `maestro test -- -rs` printed no short summary: a user asking why tests skip had no answer
    # outside the JUnit file (YB, on schedule and voluptuous)
    root = workspace(isolated)
    (root / "tests/test_a.py").write_text("def test_a():\n    pass\n")
    (root / "tests/test_b.py").write_text("def test_b():\n    assert False, 'broken'\n")
    (root / "tests/test_c.py").write_text(
        "import pytest\n\n\ndef test_c():\n    pytest.skip('no c today')\n\n\n"
        "@pytest.mark.xfail(reason='known')\ndef test_c2():\n    assert 0\n\n\n"
        "@pytest.mark.skip(reason='marked')\ndef test_c3():\n    pass\n"
    )
    python = project_python()
    for args in (["-rsx"], ["-r", "s"], ["-rN"]):
        plain = short_summary(plain_pytest(python, root, *args).stdout)
        for _ in range(2):  # run, then served from the cache
            ours = maestro(root, "test", "--", *args)
            assert short_summary(ours.stdout) == plain, (args, ours.stdout)
    # failures too: the message is Maestro's (the exception's line), pytest's is its crash line
    ours = short_summary(maestro(root, "test", "--", "-ra").stdout)
    assert [line.partition(" - ")[0] for line in ours] == [
        "SKIPPED [1] tests/test_c.py:5: no c today",
        "SKIPPED [1] tests/test_c.py:13: marked",
        "XFAIL tests/test_c.py::test_c2",
        "FAILED tests/test_b.py::test_b",
    ]
    assert "broken" in ours[-1]
