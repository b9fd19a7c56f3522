"""The README's Neovim 0.7 recipe as written, in a real headless Neovim (Debian 12's 0.7.2) on a
multi-file project: what a person sees, not what the protocol allows.

- the first buffer opened gets its lens (0.7's codelens.refresh() before the server is ready
  fails, then skips that buffer's later refreshes: the recipe must not depend on it), with no
  "not supported by any of the servers" message;
- right after an edit and `:w`, a source file's lens counts the saved change (Neovim sends
  didSave after the user's BufWritePost autocmds run);
- a second buffer (a test file) gets its run lenses; running it from its lens, the lens shows the
  result when the run ends (0.7 ignores workspace/codeLens/refresh) and the failure is a
  diagnostic at the failing line;
- a new Neovim (a new server) shows the stored result on that file, marked cached.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from editor_helpers import FAIL_LINE, Project, project, recipe

NVIM = shutil.which("nvim")
HARNESS = Path(__file__).with_name("nvim_recipe.lua")
ARTIFACTS = Path(__file__).with_name("artifacts") / "neovim"

__all__ = ["project"]  # the fixture


@pytest.mark.slow
@pytest.mark.skipif(
    NVIM is None, reason="nvim is not installed (`apt-get install -y neovim`; `make test` does)"
)
def test_readme_recipe_lenses_first_buffer_and_after_save(project: Project) -> None:
    assert NVIM is not None
    init = project.base / "init.lua"
    init.write_text(recipe("Neovim 0.7", "lua"))
    seen = nvim(project, init, "pkg/calc.py", mode="session")
    assert seen["first_name"].endswith("pkg/calc.py")
    steps = seen["steps"]
    # tests/test_calc.py and tests/test_geometry.py (through pkg.geometry) import pkg.calc
    assert [lens["title"] for lens in steps["first"]["lenses"]] == ["▶ 2 impacted tests"], seen
    edited = [lens["title"] for lens in steps["edited"]["lenses"]]
    assert edited == ["▶ 2 impacted tests (unsaved edit)"], seen
    saved = steps["saved"]
    assert saved["ok"] and [lens["title"] for lens in saved["lenses"]] == ["▶ 2 impacted tests"]
    assert saved["ms"] < 10000, saved  # right after :w, not after a later trigger
    second = {(lens["line"], lens["title"]) for lens in seen["steps"]["second"]["lenses"]}
    assert (0, "▶ Run file") in second and (3, "▶ Run") in second and (7, "▶ Run") in second
    assert not [m for m in seen["messages"] if "not supported" in m], seen["messages"]
    # run from the lens: the lens shows the result once the run finished, the failure is a
    # diagnostic at the failing line
    ran = [lens["title"] for lens in seen["steps"]["ran"]["lenses"] if lens["line"] == 0]
    assert any(t.startswith("last: ✗ 1 failed, 2 passed") for t in ran), seen["steps"]["ran"]
    assert [d["lnum"] for d in seen["diagnostics"]] == [FAIL_LINE - 1], seen["diagnostics"]

    # a new Neovim, a new language server: the stored result shows, marked cached
    again = nvim(project, init, "tests/test_calc.py", mode="restart")
    lens = [lens["title"] for lens in again["steps"]["restarted"]["lenses"] if lens["line"] == 0]
    assert any("1 failed, 2 passed (cached" in t for t in lens), again


def nvim(project: Project, init: Path, path: str, *, mode: str) -> dict[str, Any]:
    """Run Neovim headless on ``path`` with ``init`` as init.lua and the harness in ``mode``;
    what it saw."""
    assert NVIM is not None
    out = project.base / f"seen-{mode}.json"
    proc = subprocess.run(
        [NVIM, "--headless", "-n", "-i", "NONE", "-u", str(init),
         "-c", f"luafile {HARNESS}", path],
        cwd=project.root, env={**project.env, "MAESTRO_OUT": str(out), "MAESTRO_MODE": mode},
        stdin=subprocess.DEVNULL, capture_output=True, timeout=400,
    )  # fmt: skip
    assert out.exists(), f"nvim wrote nothing (exit {proc.returncode}): {proc.stderr[-2000:]!r}"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / out.name).write_text(out.read_text())  # what the test saw, for a person
    seen: dict[str, Any] = json.loads(out.read_text())
    assert "error" not in seen, seen
    return seen
