"""The workspace settings: one frozen model, read as written in TOML (kebab-case or snake_case),
validated only when something is configured; every error names file, line and key."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from maestro.config import RemoteSettings, Settings, load_settings
from maestro.errors import ConfigError

Make = Callable[[dict[str, str | bytes]], Path]

CONFIGURED = """
env-allowlist = ["FOO"]
[ml]
fail-first = "files"
[ml.speculation]
enabled = true
max-concurrent = 2
[remote]
url = "http://127.0.0.1:8980/"
tenant = "alpha"
api_key_env = "TEAM_KEY"
[secrets.redaction]
enforce = false
[targets.docs]
srcs = ["docs/*.md"]
cmd = ["make", "docs"]
"""


def test_configured_values_arrive_in_the_one_model(make_ws: Make) -> None:
    loaded = load_settings(make_ws({"maestro.toml": CONFIGURED}))
    config = loaded.config
    assert loaded.source == "maestro.toml"
    assert config.env_allowlist == ("FOO",)
    assert config.ml.fail_first == "files"
    assert config.ml.speculation.enabled and config.ml.speculation.max_concurrent == 2
    assert config.remote == RemoteSettings("http://127.0.0.1:8980", "alpha", "TEAM_KEY")
    assert config.secrets.redaction.enforce is False
    assert config.targets["docs"].cmd == ("make", "docs")
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.interpreter = "/usr/bin/python3"  # type: ignore[misc]


def test_zero_config_is_the_defaults_without_pydantic(make_ws: Make) -> None:
    root = make_ws({"pyproject.toml": "[project]\nname = 'x'\n"})
    assert load_settings(root).config == Settings()
    probe = (
        "import sys; from pathlib import Path; from maestro.config import load_settings; "
        f"load_settings(Path({str(root)!r})); print('pydantic' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd="/")
    assert out.stdout.strip() == "False", out.stderr


@pytest.mark.parametrize(
    ("text", "where", "message"),
    [
        ("bogus = 1\n", "maestro.toml:1", "bogus: unknown key"),
        ("[remote]\ntenant = 'a'\nurl = 'ftp://x'\n", "maestro.toml:3", "remote.url: url 'ftp"),
        (
            "[targets.docs]\nsrcs = 'docs/*.md'\n",
            "maestro.toml:2",
            "srcs: Input should be a valid list",
        ),
        ("[targets.x]\nsrcs = ['/abs']\n", "maestro.toml:2", "targets.x.srcs: glob '/abs'"),
        ("[ml.speculation]\nmax-concurrent = 9\n", "maestro.toml:2", "max-concurrent: Input"),
    ],
)
def test_errors_name_file_line_and_key(make_ws: Make, text: str, where: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(make_ws({"maestro.toml": text}))
    assert info.value.where == where
    assert message in info.value.message
    assert info.value.hint


def test_remote_and_key_say_which_is_missing(
    make_ws: Make, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(ConfigError, match="no coordinator configured"):
        Settings().remote_and_key()
    config = load_settings(make_ws({"maestro.toml": CONFIGURED})).config
    monkeypatch.delenv("TEAM_KEY", raising=False)
    with pytest.raises(ConfigError, match=r"\$TEAM_KEY is not set") as info:
        config.remote_and_key(key_hint="export an admin key")
    assert info.value.hint == "export an admin key"
    monkeypatch.setenv("TEAM_KEY", "k1")
    assert config.remote_and_key() == (config.remote, "k1")


def test_the_configuration_reference_is_generated_from_the_model() -> None:
    # docs/configuration.md is what `python -m maestro.config_doc --write` makes: every key of
    # the model, with its type, default and bounds
    from maestro import config_doc

    root = Path(__file__).resolve().parents[2]
    assert (root / config_doc.DOC).read_text(encoding="utf-8") == config_doc.reference(), (
        "docs/configuration.md is stale: run python -m maestro.config_doc --write"
    )
    for key in ("max-file-size", "env-allowlist", "retrace", "fail-first", "cooldown-s"):
        assert f"`{key}`" in config_doc.reference()
