"""Before the session starts, the recorder (3.12+) sets aside the code no record will name, so
that pytest's start-up costs one callback per code object instead of one per call: what it sets
aside must be exactly code the session's own classification (`_Recorder._name`) names None."""

from __future__ import annotations

import os
import sys
import types
from pathlib import Path
from typing import Any

import pytest
from engine_workspace import load_plugin

from maestro.engine.runner import plugin_dir


@pytest.fixture
def plugin(monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    return load_plugin(monkeypatch)


def _code(path: Path, source: str = "def f():\n    return 1\n") -> Any:
    namespace: dict[str, Any] = {}
    exec(compile(source, str(path), "exec"), namespace)
    return namespace["f"].__code__


def _session_names(plugin: types.ModuleType, root: Path, codes: list[Any]) -> list[bool]:
    """Whether the session's classification names each code object (a record keeps it)."""
    recorder = plugin._Recorder(None, "")
    config = types.SimpleNamespace(rootpath=root, option=types.SimpleNamespace(basetemp=None))
    recorder.pytest_sessionstart(types.SimpleNamespace(config=config))
    return [recorder._name(code) is not None for code in codes]


def test_only_installed_code_outside_the_rootdir_is_set_aside(
    plugin: types.ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "ws"
    (root / "pkg").mkdir(parents=True)
    outside = tmp_path / "elsewhere"  # an editable install or a sys.path entry elsewhere
    outside.mkdir()
    for path in (root / "pkg/mod.py", outside / "lib.py"):
        path.write_text("def f():\n    return 1\n")
    codes = {
        "workspace": _code(root / "pkg/mod.py"),
        "external": _code(outside / "lib.py"),
        "stdlib": os.path.join.__code__,
        "installed": pytest.main.__code__,
        "generated": _code(Path("<string>")),
    }
    monkeypatch.setattr(sys, "argv", ["pytest", "-p", "x", f"--rootdir={root}", "tests"])
    unrecorded = plugin._early_unrecorded()
    assert unrecorded is not None
    early = {name: unrecorded(code) for name, code in codes.items()}
    assert early == {
        "workspace": False,
        "external": False,
        "stdlib": True,
        "installed": True,
        "generated": True,
    }
    named = dict(zip(codes, _session_names(plugin, root, list(codes.values())), strict=True))
    assert all(not named[name] for name, aside in early.items() if aside)


def test_a_venv_inside_the_rootdir_is_set_aside_and_its_workspace_is_not(
    plugin: types.ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The interpreter's prefix inside the rootdir (the usual `.venv`): installed code there is
    # set aside, the rest of the rootdir is not
    prefix = Path(sys.prefix)
    root = prefix.parent
    monkeypatch.setattr(sys, "argv", ["pytest", "--rootdir", str(root)])
    unrecorded = plugin._early_unrecorded()
    assert unrecorded is not None
    installed = pytest.main.__code__
    assert unrecorded(installed)
    assert not _session_names(plugin, root, [installed])[0]
    workspace = _code(root / "not_installed.py")
    assert not unrecorded(workspace)


def test_without_a_rootdir_on_the_command_line_nothing_is_set_aside(
    plugin: types.ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "argv", ["pytest", "tests"])
    assert plugin._early_unrecorded() is None


def test_the_last_rootdir_wins_as_in_pytest(
    plugin: types.ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    args = ["pytest", f"--rootdir={tmp_path / 'a'}", "--rootdir", str(tmp_path / "b")]
    monkeypatch.setattr(sys, "argv", args)
    assert plugin._argv_rootdir() == str(tmp_path / "b")


WORKSPACE = {
    "pytest.ini": "[pytest]\ntestpaths = tests\n",
    "pkg/__init__.py": "",
    "pkg/helper.py": (
        "import json\n\n\ndef used():\n    return json.loads('1')\n\n\n"
        "def at_import():\n    return 2\n\n\nVALUE = at_import()\n"
    ),
    "conftest.py": (
        "import pytest\n\nfrom pkg import helper\n\nhelper.used()\n\n\n"
        "@pytest.fixture(scope='session')\ndef shared():\n    return helper.at_import()\n"
    ),
    "tests/test_a.py": (
        "from pkg.helper import used\n\n\ndef test_a(shared):\n    assert used() == 1\n\n\n"
        "def test_b():\n    assert used() + 1 == 2\n"
    ),
}
_VOLATILE = ("duration", "time", "pid", "start", "stop", "wall", "elapsed")


def _events(python: str, root: Path, args: list[str], out: Path) -> list[dict[str, Any]]:
    import json
    import subprocess

    with out.open("w") as stream:
        env = {
            **os.environ,
            "PYTHONPATH": str(plugin_dir()),
            "MAESTRO_EVENTS_FD": str(stream.fileno()),
        }
        env.pop("MAESTRO_TRACE", None)
        cmd = [python, "-m", "pytest", "-p", "maestro_pytest_plugin", "-q", *args]
        done = subprocess.run(
            cmd, cwd=root, env=env, pass_fds=[stream.fileno()], capture_output=True, timeout=120
        )
    assert done.returncode == 0, done.stdout.decode() + done.stderr.decode()
    events = [json.loads(line) for line in out.read_text().splitlines()]
    return [
        {k: v for k, v in e.items() if not any(word in k for word in _VOLATILE)} for e in events
    ]


def test_a_run_records_the_same_with_the_code_set_aside_as_without(
    interpreter312: Any, tmp_path: Path
) -> None:
    root = tmp_path / "ws"
    for rel, text in WORKSPACE.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    python = str(interpreter312.path)
    # without --rootdir nothing is set aside before the session; pytest finds the same rootdir
    plain = _events(python, root, ["tests/test_a.py"], tmp_path / "plain.jsonl")
    aside = _events(python, root, [f"--rootdir={root}", "tests/test_a.py"], tmp_path / "a.jsonl")
    assert [e["event"] for e in aside] == [e["event"] for e in plain]
    assert aside == plain
    traces = [e for e in aside if e["event"] in ("test_trace", "session_trace", "file_deps")]
    assert any("pkg/helper.py" in json_text for json_text in map(str, traces))
