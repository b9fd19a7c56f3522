"""Options after which pytest runs no test (``--co``, ``--setup-plan``, ``--fixtures``,
``--markers``, ``--version``, ``-h``): pytest lists, plans or answers and exits 0. `maestro test
-- --setup-plan` said "119 errors" (exit 1: every node an error, xmltodict 1.0.4) and `-- --co`
"no tests ran" (exit 2) after pytest's listing; `-- --version` failed with "pytest exited with
status 0 before the session started" (exit 3). Maestro keeps results of test runs: it now refuses
them (exit 4), naming the option and plain pytest as the way to run it, and stores nothing. The
real console script beside plain pytest on the lean project interpreter."""

from __future__ import annotations

from pathlib import Path

import pytest
from console_script import maestro, summary
from project_python import plain_pytest, project_python


def workspace(isolated: Path) -> Path:
    root = isolated / "ws"
    root.mkdir(parents=True)
    (root / "maestro.toml").write_text(f"interpreter = {str(project_python())!r}\n")
    (root / "pytest.ini").write_text("[pytest]\n")
    (root / "test_a.py").write_text(
        "import pytest\n\n\n@pytest.fixture\ndef one():\n    return 1\n\n\n"
        "def test_a(one):\n    assert one == 1\n"
    )
    return root


@pytest.mark.parametrize(
    "option", ["--co", "--collect-only", "--setup-plan", "--setup-only", "--fixtures", "--version"]
)
def test_an_option_after_which_pytest_runs_no_test_is_refused(isolated: Path, option: str) -> None:
    root = workspace(isolated)
    plain = plain_pytest(project_python(), root, option)
    assert plain.returncode == 0, plain.stdout + plain.stderr  # pytest: no failure, no test run
    ours = maestro(root, "test", "--", option)
    said = ours.stdout + ours.stderr
    assert ours.returncode == 4, said
    assert f"{option}: pytest runs no test with it" in said, said
    assert "run plain pytest with it" in said, said
    # nothing was kept of it: the next run runs the test, as pytest does
    after = maestro(root, "test")
    assert summary(after.stdout) == "1 passed" and "ran 1 file" in after.stdout, after.stdout
