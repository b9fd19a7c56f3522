"""The README's Emacs 28 + eglot (Debian's elpa-eglot 1.9) recipe as written, in a real Emacs in
batch mode, on a multi-file project. eglot 1.9 shows no code lenses: what a person sees is the
recipe's messages and Flymake's diagnostics.

- the first file visited (a source file) is served: `M-x maestro-run-impacted` works there;
- a test file edited to use that source file and saved (C-x C-s) counts at once: the run
  includes its tests;
- the run takes over 30 s (eglot gives up on a request after 10 s): the command answers at once,
  the run finishes, its counts arrive as a message and the failure as a diagnostic at the
  failing line;
- a new Emacs visiting the failed test file first shows the stored failure there, marked cached,
  without a run;
- two Python files opened at once (before the first server answered) share one server."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from editor_helpers import FAIL_LINE, Project, project, real_project, recipe

EMACS = shutil.which("emacs")
HARNESS = Path(__file__).with_name("emacs_recipe.el")
ARTIFACTS = Path(__file__).with_name("artifacts") / "emacs"
SLOW_S = 32

__all__ = ["project", "real_project"]  # the fixtures


def has_eglot() -> bool:
    if EMACS is None:
        return False
    probe = subprocess.run(
        [EMACS, "--batch", "-q", "--eval", "(require 'eglot)"], capture_output=True, timeout=60
    )
    return probe.returncode == 0


@pytest.mark.slow
@pytest.mark.extended  # 36 s; `make test` keeps the two-buffer recipe below and Neovim's long run
@pytest.mark.skipif(
    not has_eglot(),
    reason="emacs with eglot is not installed (`apt-get install -y emacs-nox elpa-eglot`; "
    "`make test` does)",
)
def test_readme_recipe_runs_a_long_impacted_run_to_the_end(project: Project) -> None:
    assert EMACS is not None
    project.write(
        "tests/test_slow.py",
        f"""
        import time

        from pkg.calc import add


        def test_slow_sum():
            time.sleep({SLOW_S})
            assert add(2, 2) == 4
        """,
    )
    project.commit()
    init = project.base / "init.el"
    init.write_text(recipe("Emacs 28", "elisp"))
    seen, stderr = emacs(project, init, mode="session")
    assert seen["servers"] == 1, seen
    assert seen["buffer"] == "calc.py", seen  # the run started in the first buffer visited
    assert seen["answered_s"] < 10, seen  # the command answers at once, whatever the run takes
    assert seen["finished_s"] > SLOW_S, seen
    finished = seen["finished"]
    assert finished["kind"] == "impacted" and finished["cancelled"] is False, finished
    # test_calc.py (2 pass, 1 fails), test_geometry.py, test_slow.py import pkg.calc, and since
    # the save test_text.py (2 tests); without the save the run would count 4 passed
    assert (finished["passed"], finished["failed"]) == (6, 1), finished
    assert "Timed out" not in stderr
    assert "maestro: run impacted tests started" in stderr
    assert "maestro: run impacted tests: 1 failed, 6 passed" in stderr  # the recipe's message
    text = (project.root / "tests/test_text.py").read_text()
    assert text.startswith("from pkg.calc import add\n") and "def test_add_here" in text
    diags = seen["diagnostics"]
    assert len(diags) == 1, diags
    assert diags[0]["range"]["start"]["line"] == FAIL_LINE - 1
    assert "ZeroDivisionError" in diags[0]["message"]
    # eglot has no test explorer: pytest's report follows the one-line message (Flymake shows it)
    first, _, report = diags[0]["message"].partition("\n")
    assert first == "test_div_zero failed: ZeroDivisionError: no zero please", first
    assert 'raise ZeroDivisionError("no zero please")' in report, diags

    # a new Emacs, a new language server: the stored failure shows without a run
    again, _ = emacs(project, init, mode="restart")
    diags = again["diagnostics"]
    assert len(diags) == 1 and "ZeroDivisionError" in diags[0]["message"], again
    assert "cached result" in diags[0]["message"], again
    assert 'raise ZeroDivisionError("no zero please")' in diags[0]["message"], again
    assert again["finished"] is None  # nothing ran
    # stored results keep the failing line: restored, the failure sits where the run put it
    assert [d["range"]["start"]["line"] + 1 for d in diags] == [FAIL_LINE], diags


@pytest.mark.skipif(
    not has_eglot(),
    reason="emacs with eglot is not installed (`apt-get install -y emacs-nox elpa-eglot`; "
    "`make test` does)",
)
def test_readme_recipe_two_files_opened_at_once_share_one_server(project: Project) -> None:
    """`emacs pkg/calc.py tests/test_text.py`: both buffers' eglot-ensure run after the first
    command, the second while the first server is still starting: one server for both."""
    init = project.base / "init.el"
    init.write_text(recipe("Emacs 28", "elisp"))
    seen, stderr = emacs(project, init, mode="two-files")
    assert seen["servers"] == 1, (seen, stderr[-2000:])
    assert seen["same"] is True, seen
    lsp = [p for p in seen["processes"] if not p.endswith("stderr") and "EGLOT" in p]
    assert len(lsp) == 1, seen["processes"]


REAL_EDIT = "tests/test_utils.py"
REAL_TAIL = """

from dateutil.easter import easter


def test_easter_here():
    assert easter(2024).month == 5
"""


@pytest.mark.slow
@pytest.mark.extended
@pytest.mark.skipif(
    not has_eglot(),
    reason="emacs with eglot is not installed (`apt-get install -y emacs-nox elpa-eglot`; "
    "`make test` does)",
)
def test_readme_recipe_on_a_real_project(real_project: Project) -> None:
    """python-dateutil: the first file visited is a source file (easter.py); a test file that
    did not use it now does (a new failing test), saved; M-x maestro-run-impacted there runs
    every test file using easter.py (rrule's hundreds of tests among them) to the end, the new
    test's failure a diagnostic at its line; a new Emacs shows it again, cached, without a run."""
    init = real_project.base / "init.el"
    init.write_text(recipe("Emacs 28", "elisp"))
    assert_line = len((real_project.root / REAL_EDIT).read_text().splitlines()) + REAL_TAIL.count(
        "\n"
    )
    files = {
        "MAESTRO_SOURCE": "src/dateutil/easter.py",
        "MAESTRO_EDIT": REAL_EDIT,
        "MAESTRO_EDIT_HEAD": "",
        "MAESTRO_EDIT_TAIL": REAL_TAIL,
        "MAESTRO_FAILED": REAL_EDIT,
    }
    seen, stderr = emacs(real_project, init, mode="real-session", extra=files)
    assert seen["servers"] == 1, seen
    assert seen["buffer"] == "easter.py", seen
    assert seen["answered_s"] < 10, seen
    finished = seen["finished"]
    assert finished["kind"] == "impacted" and finished["cancelled"] is False, finished
    assert finished["passed"] > 300 and finished["failed"] >= 1, finished  # test_rrule: 400+
    assert "Timed out" not in stderr
    assert f"maestro: run impacted tests: {finished['counts']}" in stderr
    diags = seen["diagnostics"]
    assert [d["range"]["start"]["line"] + 1 for d in diags] == [assert_line], diags
    assert "test_easter_here" in diags[0]["message"], diags

    # a new Emacs visiting that test file: the stored failure, marked cached, nothing run
    again, _ = emacs(real_project, init, mode="restart", extra=files)
    diags = again["diagnostics"]
    assert [d["range"]["start"]["line"] + 1 for d in diags] == [assert_line], again
    assert "cached result" in diags[0]["message"], again
    assert again["finished"] is None


def emacs(
    project: Project, init: Path, *, mode: str, extra: dict[str, str] | None = None
) -> tuple[dict[str, Any], str]:
    """Emacs in batch mode with ``init`` and the harness in ``mode``: what it saw, its stderr."""
    assert EMACS is not None
    out = project.base / f"seen-{mode}.json"
    proc = subprocess.run(
        [EMACS, "--batch", "-q", "-l", str(init), "-l", str(HARNESS)],
        cwd=project.root,
        env={**project.env, "MAESTRO_OUT": str(out), "MAESTRO_WS": str(project.root),
             "MAESTRO_MODE": mode, **(extra or {})},
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=500,
    )  # fmt: skip
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / f"stderr-{mode}.txt").write_text(proc.stderr)  # the messages a person saw
    assert out.exists(), f"emacs wrote nothing (exit {proc.returncode}): {proc.stderr[-3000:]}"
    (ARTIFACTS / out.name).write_text(out.read_text())
    seen: dict[str, Any] = json.loads(out.read_text())
    assert "error" not in seen, (seen, proc.stderr[-3000:])
    return seen, proc.stderr


@pytest.mark.skipif(
    not has_eglot(),
    reason="emacs with eglot is not installed (`apt-get install -y emacs-nox elpa-eglot`; "
    "`make test` does)",
)
@pytest.mark.parametrize(
    ("counts", "said"),
    [
        # blinker through the recipe: its message said "23 passed, 0 failed, 1 errors"
        (':passed 23 :failed 0 :errors 1 :counts "23 passed, 1 error"', "23 passed, 1 error"),
        (':passed 6 :failed 1 :errors 0 :counts "1 failed, 6 passed"', "1 failed, 6 passed"),
        (':message "no tests ran"', "no tests ran"),
    ],
)
def test_readme_recipe_says_the_counts_in_pytests_words(
    tmp_path: Path, counts: str, said: str
) -> None:
    """The recipe's end message is pytest's counts line, as the server words it (plurals,
    order, only the counts that are not 0)."""
    assert EMACS is not None
    init = tmp_path / "init.el"
    init.write_text(recipe("Emacs 28", "elisp"))
    call = (
        '(eglot-handle-notification nil \'maestro/runFinished :label "run impacted tests" '
        f":cancelled :json-false :error nil {counts})"
    )
    done = subprocess.run(
        [EMACS, "--batch", "-q", "-l", str(init), "--eval", call],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert f"maestro: run impacted tests: {said}\n" in done.stderr, done.stderr
