"""Workspace settings as plain dataclasses, loaded without pydantic when nothing is configured.

Validation lives in `maestro.config` (pydantic, the boundary); importing it is a large share of a
warm start, so a workspace with no Maestro configuration (the zero-config case) never pays for
it. Everything inside Maestro reads these dataclasses.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from maestro.config import RemoteConfig

CONFIG_FILE = "maestro.toml"
PYPROJECT = "pyproject.toml"
DEFAULT_MAX_FILE_SIZE = 32 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Target:
    srcs: tuple[str, ...] = ()
    deps: tuple[str, ...] = ()
    cmd: str | tuple[str, ...] | None = None
    outputs: tuple[str, ...] = ()
    inputs: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class RemoteSettings:
    """The team coordinator (`[tool.maestro.remote]`); the key is read from `api_key_env`."""

    url: str
    tenant: str
    api_key_env: str = "MAESTRO_REMOTE_API_KEY"
    read_timeout_s: float = 2.0
    upload: bool = True


@dataclass(frozen=True, slots=True)
class SpeculationSettings:
    """`ml.speculation`: defaults and meaning in docs/model.md ("Speculation")."""

    enabled: bool = False
    max_concurrent: int = 1
    nice: int = 10
    cpu_seconds_per_minute: float = 60.0
    max_files: int = 20
    delay_ms: int = 150
    max_waste: float = 0.05
    waste_window_s: float = 3600.0
    min_events: int = 20
    cooldown_s: float = 600.0


@dataclass(frozen=True, slots=True)
class Settings:
    roots: tuple[str, ...] | None = None
    exclude: tuple[str, ...] = ()
    interpreter: str | None = None
    max_file_size: int = DEFAULT_MAX_FILE_SIZE
    env_allowlist: tuple[str, ...] = ()
    targets: dict[str, Target] = field(default_factory=dict)
    speculation: SpeculationSettings = field(default_factory=SpeculationSettings)
    predictive_threshold: float = 0.05  # ml.predictive.threshold
    fail_first: str = "tests"  # ml.fail-first: "tests", "files" or "off"
    remote: RemoteSettings | None = None
    redaction_enforce: bool = True  # secrets.redaction.enforce: block uploads holding a secret

    @property
    def speculation_enabled(self) -> bool:
        return self.speculation.enabled


@dataclass(frozen=True, slots=True)
class LoadedSettings:
    config: Settings
    source: str | None = None  # the file it came from, relative to the root
    table: str = ""  # "tool.maestro" in pyproject.toml, "" in maestro.toml


def load_settings(root: Path) -> LoadedSettings:
    """The workspace's settings; raises ConfigError (file, line, key, hint) when invalid."""
    pyproject = root / PYPROJECT
    if not (root / CONFIG_FILE).is_file():
        try:
            mentions = b"maestro" in pyproject.read_bytes()
        except OSError:
            mentions = False
        if not mentions:
            return LoadedSettings(Settings())
    from maestro.config import load_config

    loaded = load_config(root)
    cfg = loaded.config
    targets = {
        name: Target(
            srcs=tuple(spec.srcs),
            deps=tuple(spec.deps),
            cmd=tuple(spec.cmd) if isinstance(spec.cmd, list) else spec.cmd,
            outputs=tuple(spec.outputs),
            inputs=tuple(spec.inputs),
        )
        for name, spec in cfg.targets.items()
    }
    return LoadedSettings(
        Settings(
            roots=tuple(cfg.roots) if cfg.roots is not None else None,
            exclude=tuple(cfg.exclude),
            interpreter=cfg.interpreter,
            max_file_size=cfg.max_file_size,
            env_allowlist=tuple(cfg.env_allowlist),
            targets=targets,
            speculation=SpeculationSettings(**cfg.ml.speculation.model_dump()),
            predictive_threshold=cfg.ml.predictive.threshold,
            fail_first=cfg.ml.fail_first,
            remote=_remote(cfg.remote),
            redaction_enforce=cfg.secrets.redaction.enforce,
        ),
        loaded.source,
        loaded.table,
    )


def _remote(cfg: RemoteConfig | None) -> RemoteSettings | None:
    if cfg is None:
        return None
    return RemoteSettings(
        url=cfg.url,
        tenant=cfg.tenant,
        api_key_env=cfg.api_key_env,
        read_timeout_s=cfg.read_timeout_s,
        upload=cfg.upload,
    )
