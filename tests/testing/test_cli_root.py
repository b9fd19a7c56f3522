"""The root command line: every command is listed and reachable, and invoking one imports only
the module that owns it (the others cost start-up time for nothing)."""

from __future__ import annotations

import subprocess
import sys

from typer.testing import CliRunner

from maestro.cli.app import _COMMANDS, app

PROBE = """
import sys
from maestro.cli.app import app
try:
    app(sys.argv[1:])
except SystemExit:
    pass
print(" ".join(m for m in sys.modules if m.startswith("maestro.cli.")), file=sys.stderr)
"""


def _modules_loaded(*args: str) -> set[str]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *args], capture_output=True, text=True, cwd="/", timeout=60
    )
    return set(done.stderr.strip().splitlines()[-1].split())


def test_help_lists_every_command_with_its_summary() -> None:
    result = CliRunner().invoke(app, ["--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    rows = {line.split()[1] for line in result.output.splitlines() if line.startswith("│ ")}
    assert set(_COMMANDS) <= rows
    assert "Inspect the build graph." in result.output  # a group's summary, not a blank name


def test_a_typo_gets_a_suggestion() -> None:
    result = CliRunner().invoke(app, ["tst"])
    assert result.exit_code == 2
    assert "Did you mean 'test'?" in result.output


def test_a_command_imports_only_its_own_module() -> None:
    loaded = _modules_loaded("cache", "--help")
    assert "maestro.cli.cache_cmd" in loaded
    others = {module for module, *_ in _COMMANDS.values()} - {"maestro.cli.cache_cmd"}
    assert not loaded & others, loaded & others


def test_sub_commands_and_options_reach_their_command() -> None:
    result = CliRunner().invoke(app, ["graph", "stats", "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage: root graph stats [OPTIONS]" in result.output
