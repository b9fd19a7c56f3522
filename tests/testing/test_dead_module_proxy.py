"""A module left in ``sys.modules`` as a weak proxy whose module is gone (jinja2's ModuleLoader
puts ``weakref.proxy(module)`` there): reading any attribute of it raises ReferenceError, and the
plugin's end of session read every module's ``__file__``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from project_python import project_python
from testing_helpers import Workspace

MAESTRO = str(Path(sys.executable).with_name("maestro"))


@pytest.fixture
def cli(ws: Workspace) -> Workspace:
    ws.write("maestro.toml", f"interpreter = {str(project_python())!r}\n")
    return ws


def test_a_dead_weak_proxy_in_sys_modules_leaves_the_session_whole(cli: Workspace) -> None:
    """jinja2 3.1.6's TestModuleLoader run alone: 'pytest failed its session with no test
    failing ... (it printed no reason)', and the session's end (files written, reads at import,
    variables read outside the tests, the modules loaded) never reached Maestro."""
    cli.write(
        "tests/test_ghost.py",
        """
        import sys
        import types
        import weakref


        def test_registers_a_proxy():
            module = types.ModuleType("ghost_templates")
            sys.modules["ghost_templates"] = weakref.proxy(module)
            del module  # collected: the proxy in sys.modules is dead
        """,
    )
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    env["MAESTRO_DAEMON"] = "off"
    done = subprocess.run(
        [MAESTRO, "test"], cwd=cli.root, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout
    assert "failed its session" not in done.stdout, done.stdout
    assert " passed" in done.stdout
