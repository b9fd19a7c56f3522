"""A real editor end to end: headless Neovim (Debian's 0.7.x works: vim.lsp.start_client +
buf_attach_client) runs nvim_e2e.lua against the fixture workspace: lenses, a run, its results
and the failure's diagnostic with pytest's report."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import FAIL_TEST_LINE, Env

NVIM = shutil.which("nvim")
SCRIPT = Path(__file__).with_name("nvim_e2e.lua")


@pytest.mark.slow
@pytest.mark.skipif(
    NVIM is None,
    reason="nvim is not installed (`apt-get install -y neovim`; `make test` installs it)",
)
def test_neovim_lenses_run_and_diagnostics(lsp_env: Env) -> None:
    assert NVIM is not None
    out = lsp_env.base / "nvim.json"
    env = {
        **lsp_env.env,
        "MAESTRO_WS": str(lsp_env.root),
        "MAESTRO_PY": sys.executable,
        "MAESTRO_OUT": str(out),
        "HOME": str(lsp_env.base),  # no user config, no shada in the real home
        "XDG_CONFIG_HOME": str(lsp_env.base / "xdg"),
        "XDG_DATA_HOME": str(lsp_env.base / "xdg"),
        "XDG_STATE_HOME": str(lsp_env.base / "xdg"),
    }
    proc = subprocess.run(
        [NVIM, "--headless", "--clean", "-n", "-c", f"luafile {SCRIPT}", "tests/test_calc.py"],
        cwd=lsp_env.root,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=300,
    )
    assert out.exists(), f"nvim wrote nothing (exit {proc.returncode}): {proc.stderr[-2000:]!r}"
    seen = json.loads(out.read_text())
    assert "error" not in seen, seen
    titles = {(lens["line"], lens["title"]) for lens in seen["lenses"]}
    assert (0, "▶ Run file") in titles and (3, "▶ Run") in titles and (7, "▶ Run") in titles
    assert seen["run"]["passed"] == 2 and seen["run"]["failed"] == 1
    assert seen["progress"] >= 3 and "1 failed" in seen["progress_end"]
    assert seen["test_results"] == {
        "tests/test_calc.py::test_add": "passed",
        "tests/test_calc.py::test_div_zero": "failed",
        "tests/test_calc.py::TestMore::test_div": "passed",
    }
    diags = seen["diagnostics"]
    assert len(diags) == 1
    assert diags[0]["lnum"] == FAIL_TEST_LINE - 1
    assert "ZeroDivisionError" in diags[0]["message"] and diags[0]["source"] == "maestro"
    # Neovim has no test explorer: its diagnostic float shows the end of pytest's report under
    # the one-line message (the test's assert, the line that raised in pkg/calc.py)
    first, *report = diags[0]["message"].splitlines()
    assert first == "test_div_zero failed: ZeroDivisionError: no zero please", first
    shown = "\n".join(report)
    assert ">       assert div(1, 0) == 0" in shown, shown
    assert 'raise ZeroDivisionError("no zero please")' in shown, shown
    assert os.environ.get("MAESTRO_STATE_DIR") != lsp_env.env["MAESTRO_STATE_DIR"]
