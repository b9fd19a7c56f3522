"""The README's Neovim 0.7 recipe as written, in a real headless Neovim (Debian 12's 0.7.2) on a
multi-file project: what a person sees, not what the protocol allows.

- the first buffer opened gets its lens (0.7's codelens.refresh() before the server is ready
  fails, then skips that buffer's later refreshes: the recipe must not depend on it), with no
  "not supported by any of the servers" message;
- right after an edit and `:w`, a source file's lens counts the saved change (Neovim sends
  didSave after the user's BufWritePost autocmds run);
- a second buffer (a test file) gets its run lenses.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from editor_helpers import Project, project, recipe

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
    out = project.base / "seen.json"
    proc = subprocess.run(
        [NVIM, "--headless", "-n", "-i", "NONE", "-u", str(init),
         "-c", f"luafile {HARNESS}", "pkg/calc.py"],
        cwd=project.root, env={**project.env, "MAESTRO_OUT": str(out)},
        stdin=subprocess.DEVNULL, capture_output=True, timeout=400,
    )  # fmt: skip
    assert out.exists(), f"nvim wrote nothing (exit {proc.returncode}): {proc.stderr[-2000:]!r}"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "seen.json").write_text(out.read_text())  # what the test saw, for a person
    seen = json.loads(out.read_text())
    assert "error" not in seen, seen
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
