"""A plain `maestro test` command line runs without typer (maestro/cli/fast.py `plain_test`), with
the output, exit status and JUnit file of the full CLI: an in-process first run hands pytest its
run before typer and the pydantic adapters it builds for every option are imported."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from project_python import project_python
from testing_helpers import Workspace

MAESTRO = str(Path(sys.executable).with_name("maestro"))

# Loaded into the `maestro` process only (PYTHONPATH is not among the variables its pytest gets).
PROBE = """
import atexit, json, sys

def _at_exit():
    with open({out!r}, "w") as f:
        json.dump(sorted(m for m in ("typer",) if m in sys.modules), f)

atexit.register(_at_exit)
"""


def _run(ws: Workspace, tmp_path: Path, name: str, args: list[str]) -> tuple[int, str, list[str]]:
    """(exit status, stdout without timings, the CLI modules loaded) of one cold run."""
    site = tmp_path / f"site-{name}"
    site.mkdir()
    loaded = tmp_path / f"{name}.json"
    (site / "sitecustomize.py").write_text(PROBE.format(out=str(loaded)))
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    env.update(
        MAESTRO_DAEMON="off",
        PYTHONPATH=str(site),
        MAESTRO_CACHE_DIR=str(tmp_path / f"cache-{name}"),
        MAESTRO_STATE_DIR=str(tmp_path / f"state-{name}"),
    )
    done = subprocess.run(
        [MAESTRO, "test", *args], cwd=ws.root, env=env, capture_output=True, text=True, timeout=120
    )
    out = re.sub(r"\d+\.\d+s", "_s", done.stdout)
    return done.returncode, out, json.loads(loaded.read_text())


def test_a_plain_command_line_runs_without_typer_as_the_full_cli_does(
    ws: Workspace, tmp_path: Path
) -> None:
    ws.write("maestro.toml", f"interpreter = {str(project_python())!r}\n")
    ws.write("tests/test_a.py", "def test_ok():\n    pass\n\ndef test_bad():\n    assert 1 == 2\n")
    plain_xml, full_xml = tmp_path / "plain.xml", tmp_path / "full.xml"
    plain = _run(ws, tmp_path, "plain", ["--no-daemon", "--junit-xml", str(plain_xml)])
    # a path on the command line: the full CLI parses it
    full = _run(ws, tmp_path, "full", ["--no-daemon", "--junit-xml", str(full_xml), "tests"])
    assert plain[2] == [], plain[1]
    assert full[2] == ["typer"]
    assert plain[0] == full[0] == 1, plain[1] + full[1]
    assert plain[1] == full[1]
    assert "1 failed" in plain[1]
    strip = re.compile(rb'(time|timestamp|hostname)="[^"]*"')
    assert strip.sub(b"", plain_xml.read_bytes()) == strip.sub(b"", full_xml.read_bytes())


def test_a_usage_error_is_reported_alike(ws: Workspace, tmp_path: Path) -> None:
    missing = str(tmp_path / "nowhere")
    plain = _run(ws, tmp_path, "plain", ["--no-daemon", "--root", missing])
    full = _run(ws, tmp_path, "full", ["--no-daemon", "--root", missing, "."])
    assert plain[2] == []
    assert plain[0] == full[0] == 4


def test_the_models_of_a_run_are_built_after_its_imports() -> None:
    """The event, result and manifest models build their validators on first use: `maestro
    test` imports them before its pytest process has its run and uses them only after."""
    probe = (
        "import maestro.engine.events as e, maestro.cache.action as a, maestro.cache.files as f\n"
        "from pydantic import BaseModel\n"
        "built = [n for m in (e, a, f) for n, c in vars(m).items() if isinstance(c, type)\n"
        "         and issubclass(c, BaseModel) and c.__dict__.get('__pydantic_complete__')]\n"
        "print(built)\n"
        'print(e.parse_event(b\'{"v": 1, "event": "test_start", "nodeid": "t.py::a"}\'))\n'
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, cwd="/", timeout=60
    )
    lines = out.stdout.splitlines()
    assert lines[:1] == ["[]"], out.stdout + out.stderr
    assert "t.py::a" in lines[1]


# Records, when the waiting pytest process is handed its run, which validators are built.
TAKE_PROBE = """
import json, sys
import maestro.engine.runner as runner

_take = runner.WarmPytest.take

def _recording_take(self, *args, **kwargs):
    built = []
    if "pydantic" in sys.modules:
        from pydantic import BaseModel
        todo = [BaseModel]
        while todo:
            for sub in todo.pop().__subclasses__():
                todo.append(sub)
                if sub.__dict__.get("__pydantic_complete__"):
                    built.append(sub.__qualname__)
    with open({out!r}, "w") as f:
        json.dump({{
            "built": sorted(built),
            "metadata": "importlib.metadata" in sys.modules,
            "pydantic": "pydantic" in sys.modules,
        }}, f)
    return _take(self, *args, **kwargs)

runner.WarmPytest.take = _recording_take
"""


def test_pytest_gets_its_run_before_any_validator_is_built(ws: Workspace, tmp_path: Path) -> None:
    """Building a pydantic validator loads pydantic's plugins, importlib.metadata with them: a
    plain in-process run builds none (and so imports neither) before pytest has its run. It
    imports no model either: importing pydantic and defining the wire's and the cache's models
    cost more CPU than the rest of what the run does before it (the models are imported while
    pytest runs). (A workspace with a Maestro table validates it first: not this one, whose
    venv is active.)"""
    site = tmp_path / "site"
    site.mkdir()
    seen = tmp_path / "seen.json"
    (site / "sitecustomize.py").write_text(TAKE_PROBE.format(out=str(seen)))
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    env.update(MAESTRO_DAEMON="off", PYTHONPATH=str(site), VIRTUAL_ENV=sys.prefix)
    done = subprocess.run(
        [MAESTRO, "test", "--no-daemon"], cwd=ws.root, env=env, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert json.loads(seen.read_text()) == {"built": [], "metadata": False, "pydantic": False}
