"""The README's Neovim 0.7 recipe as written, in a real headless Neovim (Debian 12's 0.7.2) on a
multi-file project: what a person sees, not what the protocol allows.

- the first buffer opened gets its lens (0.7's codelens.refresh() before the server is ready
  fails, then skips that buffer's later refreshes: the recipe must not depend on it), with no
  "not supported by any of the servers" message;
- right after an edit and `:w`, a source file's lens counts the saved change (Neovim sends
  didSave after the user's BufWritePost autocmds run);
- a second buffer (a test file) gets its run lenses; running it from its lens (a run longer than
  eglot's 10 s request timeout), the lens shows the whole run's result when it ends (0.7 ignores
  workspace/codeLens/refresh), the slow test's lens its duration, and the failure is a diagnostic
  at the failing line;
- a new Neovim (a new server) shows the stored result on that file, marked cached.

On a real project (python-dateutil, where the first-buffer and after-`:w` problems were found):
the first buffer's lens, "unsaved edit" after an edit, right after `:w` the count that
`maestro impacted` gives for that file; one of its test files run from its lens to the end, with
its result on the lens, shown again (cached) in a new Neovim.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from editor_helpers import FAIL_LINE, Project, project, real_project, recipe
from workspace_procs import CALC_FILES

NVIM = shutil.which("nvim")
HARNESS = Path(__file__).with_name("nvim_recipe.lua")
ARTIFACTS = Path(__file__).with_name("artifacts") / "neovim"
SLOW_S = 11  # past eglot's 10 s request timeout: the run outlives any request
# tests/test_calc.py with a slow passing test after its three (their lines stay where they are)
SLOW_CALC = (
    CALC_FILES["tests/test_calc.py"].rstrip()
    + f"""


        def test_slow_sum():
            import time

            time.sleep({SLOW_S})
            assert add(2, 2) == 4
        """
)
SLOW_LINE = textwrap.dedent(SLOW_CALC).lstrip("\n").splitlines().index("def test_slow_sum():")

REAL_SOURCE = "src/dateutil/relativedelta.py"
REAL_TEST = "tests/test_relativedelta.py"  # one of the files it impacts

__all__ = ["project", "real_project"]  # the fixtures


@pytest.mark.slow
@pytest.mark.skipif(
    NVIM is None, reason="nvim is not installed (`apt-get install -y neovim`; `make test` does)"
)
def test_readme_recipe_lenses_first_buffer_and_after_save(project: Project) -> None:
    assert NVIM is not None
    project.write("tests/test_calc.py", SLOW_CALC)
    project.commit()
    init = project.base / "init.lua"
    init.write_text(recipe("Neovim 0.7", "lua"))
    seen = nvim(project, init, "pkg/calc.py", mode="session", ran="1 failed, 3 passed")
    assert seen["first_name"].endswith("pkg/calc.py")
    steps = seen["steps"]
    # tests/test_calc.py and tests/test_geometry.py (through pkg.geometry) import pkg.calc
    assert [lens["title"] for lens in steps["first"]["lenses"]] == ["▶ 2 impacted test files"], seen
    edited = [lens["title"] for lens in steps["edited"]["lenses"]]
    assert edited == ["▶ 2 impacted test files (unsaved edit)"], seen
    saved = steps["saved"]
    assert saved["ok"] and [lens["title"] for lens in saved["lenses"]] == [
        "▶ 2 impacted test files"
    ]
    assert saved["ms"] < 10000, saved  # right after :w, not after a later trigger
    second = {(lens["line"], lens["title"]) for lens in seen["steps"]["second"]["lenses"]}
    assert (0, "▶ Run file") in second and (3, "▶ Run") in second and (7, "▶ Run") in second
    assert (SLOW_LINE, "▶ Run") in second
    assert not [m for m in seen["messages"] if "not supported" in m], seen["messages"]
    # run from the lens, past eglot's request timeout: the file's lens shows the whole run's
    # result once it finished, the slow test's lens its duration, the failure is a diagnostic at
    # the failing line
    ran = seen["steps"]["ran"]
    assert ran["ok"] and ran["ms"] > SLOW_S * 1000, ran
    first_line = [lens["title"] for lens in ran["lenses"] if lens["line"] == 0]
    assert any(t.startswith("last: ✗ 1 failed, 3 passed") for t in first_line), ran
    slow = [lens["title"] for lens in ran["lenses"] if lens["line"] == SLOW_LINE]
    took = [int(t.split()[2]) for t in slow if t.startswith("✓ passed ") and t.endswith(" ms")]
    assert took and took[0] >= SLOW_S * 1000, slow
    assert [d["lnum"] for d in seen["diagnostics"]] == [FAIL_LINE - 1], seen["diagnostics"]

    # a new Neovim, a new language server: the stored result shows, marked cached
    again = nvim(project, init, "tests/test_calc.py", mode="restart")
    lens = [lens["title"] for lens in again["steps"]["restarted"]["lenses"] if lens["line"] == 0]
    assert any("1 failed, 3 passed (cached" in t for t in lens), again


@pytest.mark.slow
@pytest.mark.extended
@pytest.mark.skipif(
    NVIM is None, reason="nvim is not installed (`apt-get install -y neovim`; `make test` does)"
)
def test_readme_recipe_on_a_real_project_first_buffer_and_after_save(
    real_project: Project,
) -> None:
    init = real_project.base / "init.lua"
    init.write_text(recipe("Neovim 0.7", "lua"))
    seen = nvim(real_project, init, REAL_SOURCE, mode="real", ran="passed", second=REAL_TEST)
    assert seen["first_name"].endswith(REAL_SOURCE)
    # the count a person would get from the command line for that file
    cli = subprocess.run(
        [str(Path(sys.executable).parent / "maestro"), "impacted", REAL_SOURCE, "--json"],
        cwd=real_project.root, env=real_project.env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert cli.returncode == 0, cli.stderr
    count = sum(1 for row in json.loads(cli.stdout)["impacted"] if row["kind"] == "test")
    assert count >= 5, cli.stdout  # most of dateutil's test files use relativedelta
    title = f"▶ {count} impacted test files"
    steps = seen["steps"]
    assert [lens["title"] for lens in steps["first"]["lenses"]] == [title], seen
    assert [lens["title"] for lens in steps["edited"]["lenses"]] == [f"{title} (unsaved edit)"]
    saved = steps["saved"]
    assert saved["ok"] and [lens["title"] for lens in saved["lenses"]] == [title], saved
    assert saved["ms"] < 10000, saved
    assert not [m for m in seen["messages"] if "not supported" in m], seen["messages"]
    # one of its test files, run from its lens to the end: the file's lens shows the result
    ran = steps["ran"]
    assert ran["ok"], ran
    result = [lens["title"] for lens in ran["lenses"] if lens["line"] == 0]
    assert any(t.startswith("last: ✓") and " passed" in t for t in result), ran
    # a new Neovim, a new language server: that result shows again, marked cached
    again = nvim(real_project, init, REAL_TEST, mode="restart")
    lens = [lens["title"] for lens in again["steps"]["restarted"]["lenses"] if lens["line"] == 0]
    assert any(" passed" in t and "(cached" in t for t in lens), again


def nvim(
    project: Project,
    init: Path,
    path: str,
    *,
    mode: str,
    ran: str = "failed",
    second: str | None = None,
) -> dict[str, Any]:
    """Run Neovim headless on ``path`` with ``init`` as init.lua and the harness in ``mode``
    (a run from a lens ends when a lens shows ``ran``); what it saw."""
    assert NVIM is not None
    out = project.base / f"seen-{mode}.json"
    proc = subprocess.run(
        [NVIM, "--headless", "-n", "-i", "NONE", "-u", str(init),
         "-c", f"luafile {HARNESS}", path],
        cwd=project.root, env={**project.env, "MAESTRO_OUT": str(out), "MAESTRO_MODE": mode,
             "MAESTRO_RAN": ran, **({"MAESTRO_SECOND": second} if second else {})},
        stdin=subprocess.DEVNULL, capture_output=True, timeout=400,
    )  # fmt: skip
    assert out.exists(), f"nvim wrote nothing (exit {proc.returncode}): {proc.stderr[-2000:]!r}"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / out.name).write_text(out.read_text())  # what the test saw, for a person
    seen: dict[str, Any] = json.loads(out.read_text())
    assert "error" not in seen, seen
    return seen
