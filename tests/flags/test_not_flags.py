"""Names that are deliberately not flags: asking for one says where that control lives instead
of "no flag named" with a guess, and nothing can set it."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from maestro.cli.flags_cmd import FlagsCli, flags_app
from maestro.flags import UnknownFlagError, builtin_registry
from maestro.flags.registry import NOT_FLAGS


def _cli(*args: str) -> tuple[int, str, str]:
    app = typer.Typer()
    app.add_typer(flags_app, name="flags")
    result = CliRunner().invoke(app, ["flags", *args], obj=FlagsCli(today=date(2026, 12, 3)))
    return result.exit_code, result.stdout, result.stderr


def test_plugin_signing_is_policy_not_a_flag(tmp_path: Path, state: Path) -> None:
    registry = builtin_registry()
    assert "plugins.signing.enforce" in NOT_FLAGS
    assert "plugins.signing.enforce" not in registry
    with pytest.raises(UnknownFlagError) as caught:
        registry.get("plugins.signing.enforce")
    assert "policy rule plugin.unsigned" in caught.value.message

    root = tmp_path / "ws"
    root.mkdir()
    (root / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    code, _, err = _cli(
        "set", "plugins.signing.enforce", "false", "--root", str(root), "--reason", "r"
    )
    assert code == 2 and "is not a flag" in err and "allow_unsigned_plugins" in err
    assert not list(state.rglob("flags.json"))  # nothing was written


def test_not_flags_do_not_shadow_declared_ones() -> None:
    registry = builtin_registry()
    assert not [name for name in NOT_FLAGS if name in registry]
