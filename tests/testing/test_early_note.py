"""The note of the code that starts in a run's pytest process before Maestro's plugin is loaded
(engine/plugin/maestro_early.py), in a fresh interpreter of each kind the tests run on."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from maestro.engine.runner import plugin_dir

SCRIPT = """
import sys
import maestro_early

{before}
maestro_early.start()
import early_mod
early_mod.used()
found = maestro_early.stop()
after = sys.monitoring.get_tool(5) if hasattr(sys, "monitoring") else sys.getprofile()
names = None if found is None else sorted(
    c.co_name for c in found if c.co_filename.endswith("early_mod.py")
)
print(names, after)
"""

MODULE = "def used():\n    return 1\n\n\ndef unused():\n    return 2\n"


def note(tmp_path: Path, before: str = "") -> str:
    (tmp_path / "early_mod.py").write_text(MODULE)
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT.format(before=before)],
        cwd=tmp_path, capture_output=True, text=True, check=True,
        env={"PYTHONPATH": f"{plugin_dir()}:{tmp_path}", "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    return done.stdout.strip()


def test_the_workspace_code_that_started_is_noted_and_the_note_ends(tmp_path: Path) -> None:
    # the module's top level and the function called, not the one never called; nothing left on
    assert note(tmp_path) == "['<module>', 'used'] None"


def test_another_profiler_is_left_alone_and_the_note_says_it_knows_nothing(
    tmp_path: Path,
) -> None:
    # what ran before the plugin is then unknown: the plugin counts every function
    taken = (
        "sys.monitoring.use_tool_id(5, 'x'); sys.monitoring.use_tool_id(2, 'y')"
        if sys.version_info >= (3, 12)
        else "sys.setprofile(lambda *a: None)"
    )
    assert note(tmp_path, taken).startswith("None ")


@pytest.mark.parametrize(
    "meanwhile",
    ["sys.setprofile(None)", "sys.setprofile(lambda *a: None); _hidden()"],
    ids=["off", "own-hook"],
)
def test_code_that_puts_the_profile_hook_back_runs_and_the_note_says_it_knows_nothing(
    tmp_path: Path, meanwhile: str
) -> None:
    # before 3.12 sys.getprofile() returns the note's profiler: put back (a capability probe at
    # import), it is called as a Python profile function and notes on, but what started under
    # the other hook went unseen: the plugin counts every function
    restore = f"_p = sys.getprofile(); {meanwhile}; sys.setprofile(_p)"
    hidden = "def _hidden():\n    return 3\n\n\n"
    (tmp_path / "early_mod.py").write_text(f"import sys\n\n\n{hidden}{restore}\n\n\n{MODULE}")
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT.format(before="")],
        cwd=tmp_path, capture_output=True, text=True,
        env={"PYTHONPATH": f"{plugin_dir()}:{tmp_path}", "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    if sys.version_info >= (3, 12):  # sys.monitoring: another profile hook hides nothing
        assert done.stdout.strip().startswith("['<module>', '_hidden', 'used'] ")
    else:
        assert done.stdout.strip() == "None None"


def test_code_that_turns_the_profile_hook_off_makes_the_note_unknown(tmp_path: Path) -> None:
    # what started after it went unseen
    (tmp_path / "early_mod.py").write_text(f"import sys\nsys.setprofile(None)\n\n\n{MODULE}")
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT.format(before="")],
        cwd=tmp_path, capture_output=True, text=True,
        env={"PYTHONPATH": f"{plugin_dir()}:{tmp_path}", "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    if sys.version_info < (3, 12):
        assert done.stdout.strip() == "None None"


def test_code_under_the_interpreters_prefix_is_noted_too(tmp_path: Path) -> None:
    # a workspace may lie under the prefix (/usr/local/src/app with Python in /usr/local): the
    # plugin, knowing the rootdir, tells it from the standard library; the note cannot
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", tmp_path], check=True)
    src = tmp_path / "src"
    src.mkdir()
    (src / "early_mod.py").write_text(MODULE)
    done = subprocess.run(
        [tmp_path / "bin" / "python", "-c", SCRIPT.format(before="")],
        cwd=src, capture_output=True, text=True, check=True,
        env={"PYTHONPATH": f"{plugin_dir()}:{src}", "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert done.stdout.strip() == "['<module>', 'used'] None"


LAZY = """
import sys, threading
import maestro_early

maestro_early.start()
import json, email.utils  # the standard library's code runs unprofiled
json.dumps(email.utils.quote("x"))
before = sys.getprofile()
{workspace}
found = maestro_early.stop()
names = None if found is None else sorted(
    c.co_name for c in found if c.co_filename.endswith("early_mod.py")
)
print(before is None, names, sys.getprofile())
"""


def lazy_note(tmp_path: Path, workspace: str) -> str:
    (tmp_path / "early_mod.py").write_text(MODULE)
    done = subprocess.run(
        [sys.executable, "-c", LAZY.format(workspace=workspace)],
        cwd=tmp_path, capture_output=True, text=True, check=True,
        env={"PYTHONPATH": f"{plugin_dir()}:{tmp_path}", "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    return done.stdout.strip()


before_312 = pytest.mark.skipif(
    sys.version_info >= (3, 12), reason="3.12 notes with sys.monitoring, one event per code"
)


@before_312
def test_the_profile_function_waits_for_the_first_code_outside_the_installation(
    tmp_path: Path,
) -> None:
    # pytest's import and start run at full speed; the workspace's code is noted all the same
    assert lazy_note(tmp_path, "import early_mod; early_mod.used()") == (
        "True ['<module>', 'used'] None"
    )


@before_312
def test_workspace_code_compiled_and_called_without_an_exec_is_noted(tmp_path: Path) -> None:
    made = (
        "import types\n"
        "code = compile(open('early_mod.py').read(), '{}', 'exec')\n"
        "used = next(c for c in code.co_consts if getattr(c, 'co_name', '') == 'used')\n"
        "types.FunctionType(used, {{}})()"
    ).format(tmp_path / "early_mod.py")
    assert lazy_note(tmp_path, made) == "True ['used'] None"


@before_312
def test_workspace_code_first_run_in_another_thread_makes_the_note_unknown(
    tmp_path: Path,
) -> None:
    # a profile function sees its own thread only: the plugin then counts every function
    other = (
        "t = threading.Thread(target=lambda: __import__('early_mod').used())\n"
        "t.start(); t.join()\n"
        "import early_mod; early_mod.unused()"
    )
    assert lazy_note(tmp_path, other) == "True None None"
