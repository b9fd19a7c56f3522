"""A test path in the configuration's addopts (``addopts = -q test_a.py``): pytest prepends it to
every run's arguments, so plain `pytest` runs that file alone and `pytest test_b.py` runs both.
Maestro took its files from the configuration as if addopts named none: `maestro test` said
"1 failed, 1 passed" where `pytest` says "1 passed" (a test pytest never runs failed the run),
and `maestro test -- test_b.py` said "1 failed" where pytest says "1 failed, 1 passed". It now
refuses, naming the paths and the fix (testpaths), as for other arguments that change what pytest
collects. An option's value in addopts (``--ignore test_b.py``) is no path. The real console
script beside plain pytest on the lean project interpreter."""

from __future__ import annotations

from pathlib import Path

from console_script import maestro, summary
from project_python import plain_pytest, project_python


def workspace(isolated: Path, addopts: str) -> Path:
    root = isolated / "ws"
    root.mkdir(parents=True)
    (root / "maestro.toml").write_text(f"interpreter = {str(project_python())!r}\n")
    (root / "pytest.ini").write_text(f"[pytest]\naddopts = {addopts}\n")
    (root / "test_a.py").write_text("def test_a():\n    pass\n")
    (root / "test_b.py").write_text("def test_b():\n    assert False\n")
    return root


def test_a_test_path_in_addopts_is_refused_with_the_fix(isolated: Path) -> None:
    root = workspace(isolated, "-q test_a.py")
    assert summary(plain_pytest(project_python(), root).stdout) == "1 passed"
    for args in ([], ["--", "test_b.py"]):
        ours = maestro(root, "test", *args)
        said = ours.stdout + ours.stderr
        assert ours.returncode == 4, said
        assert "addopts in pytest.ini names test_a.py" in said and "testpaths" in said, said


def test_an_options_value_in_addopts_is_no_path(isolated: Path) -> None:
    root = workspace(isolated, "--ignore test_b.py -p no:cacheprovider")
    plain = plain_pytest(project_python(), root)
    ours = maestro(root, "test")
    assert summary(ours.stdout) == summary(plain.stdout) == "1 passed", ours.stdout + ours.stderr
