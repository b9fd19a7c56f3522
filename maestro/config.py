"""Workspace configuration: `[tool.maestro]` in pyproject.toml, or a top-level `maestro.toml`.

Validated by pydantic; every error names the file, the line and the key, and says how to fix it.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from maestro.errors import ConfigError

CONFIG_FILE = "maestro.toml"
PYPROJECT = "pyproject.toml"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class TargetSpec(_Strict):
    """A declared (non-Python) target: what it reads, what it runs, what it writes."""

    srcs: list[str] = Field(default_factory=list, description="globs of source files")
    deps: list[str] = Field(default_factory=list, description="names of other declared targets")
    cmd: str | list[str] | None = Field(default=None, description="command to build or check it")
    outputs: list[str] = Field(default_factory=list, description="globs of files it produces")
    inputs: list[str] = Field(default_factory=list, description="extra input globs (config, data)")

    @field_validator("srcs", "outputs", "inputs")
    @classmethod
    def _globs_are_relative(cls, globs: list[str]) -> list[str]:
        for pattern in globs:
            if not pattern or pattern.startswith("/") or ".." in Path(pattern).parts:
                raise ValueError(
                    f"glob {pattern!r} must be a non-empty path relative to the workspace root"
                )
        return globs


class SpeculationConfig(_Strict):
    """`[tool.maestro.ml.speculation]`: run likely failures after a save (docs/model.md)."""

    enabled: bool = Field(default=False, description="speculate after saves (off by default)")
    max_concurrent: int = Field(
        default=1, alias="max-concurrent", ge=1, le=8,
        description="speculative pytest processes at once",
    )  # fmt: skip
    nice: int = Field(default=10, ge=0, le=19, description="nice level of speculative pytest")
    cpu_seconds_per_minute: float = Field(
        default=60.0, alias="cpu-seconds-per-minute", gt=0,
        description="speculative CPU-seconds allowed per rolling minute",
    )  # fmt: skip
    max_files: int = Field(
        default=20, alias="max-files", ge=0,
        description="most test files one speculation runs (0: every impacted file)",
    )  # fmt: skip
    delay_ms: int = Field(
        default=150, alias="delay-ms", ge=0, le=60_000,
        description="quiet time after a save before speculating (rapid saves coalesce)",
    )  # fmt: skip
    max_waste: float = Field(
        default=0.05, alias="max-waste", ge=0, le=1,
        description="tripwire: unused share of speculative CPU that throttles speculation",
    )  # fmt: skip
    waste_window_s: float = Field(default=3600.0, alias="waste-window-s", gt=0)
    min_events: int = Field(default=20, alias="min-events", ge=1)
    cooldown_s: float = Field(default=600.0, alias="cooldown-s", ge=0)


class PredictiveConfig(_Strict):
    """`[tool.maestro.ml.predictive]`: `maestro test --predictive` (docs/model.md)."""

    threshold: float = Field(
        default=0.05, ge=0, le=1,
        description="run only test files with predicted P(fail) at or above this",
    )  # fmt: skip


class MlConfig(_Strict):
    speculation: SpeculationConfig = Field(default_factory=SpeculationConfig)
    predictive: PredictiveConfig = Field(default_factory=PredictiveConfig)
    fail_first: Literal["tests", "files", "off"] = Field(
        default="tests", alias="fail-first",
        description="order daemon runs most-likely-failure first: test files and, inside each "
        "(classes kept together), their tests; only the files; or not at all",
    )  # fmt: skip


def http_url(url: str) -> str:
    """A coordinator base URL, normalised (no trailing slash); ValueError says the form."""
    if not re.fullmatch(r"https?://[^\s/]+(/\S*)?", url):
        raise ValueError(f"url {url!r} must be http(s)://HOST[:PORT][/PREFIX]")
    return url.rstrip("/")


class RemoteConfig(_Strict):
    """`[tool.maestro.remote]`: the team's coordinator (docs/coordinator.md). The API key itself
    is never configured here: `api_key_env` names the environment variable that holds it."""

    url: str = Field(description="coordinator base URL, e.g. http://127.0.0.1:8980")
    tenant: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$")
    api_key_env: str = Field(
        default="MAESTRO_REMOTE_API_KEY",
        alias="api-key-env",
        pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
        description="NAME of the environment variable holding the API key",
    )
    read_timeout_s: float = Field(default=2.0, alias="read-timeout-s", gt=0, le=60)
    upload: bool = Field(default=True, description="upload results when the key may write")

    @field_validator("url")
    @classmethod
    def _http_url(cls, url: str) -> str:
        return http_url(url)


class RedactionConfig(_Strict):
    """`[tool.maestro.secrets.redaction]` (docs/security.md)."""

    enforce: bool = Field(
        default=True,
        description="block an upload whose last scan finds a secret (false: send it, count it "
        "and log a warning naming the kinds found)",
    )


class SecretsConfig(_Strict):
    redaction: RedactionConfig = Field(default_factory=RedactionConfig)


class MaestroConfig(_Strict):
    """Everything a workspace may configure; all of it optional (zero-config is the default)."""

    roots: list[str] | None = Field(
        default=None, description="source roots; default: the workspace root and src/ if present"
    )
    exclude: list[str] = Field(default_factory=list, description="gitignore-style patterns to skip")
    interpreter: str | None = Field(default=None, description="python used to run the tests")
    max_file_size: int = Field(
        default=32 * 1024 * 1024, alias="max-file-size", gt=0, description="bytes scanned per file"
    )
    env_allowlist: list[str] = Field(default_factory=list, alias="env-allowlist")
    targets: dict[str, TargetSpec] = Field(default_factory=dict)
    ml: MlConfig = Field(default_factory=MlConfig)
    remote: RemoteConfig | None = None
    secrets: SecretsConfig = Field(default_factory=SecretsConfig)
    policy: dict[str, Any] = Field(
        default_factory=dict, description="policy data (docs/policy.md), checked by maestro.policy"
    )

    @field_validator("targets")
    @classmethod
    def _target_names(cls, targets: dict[str, TargetSpec]) -> dict[str, TargetSpec]:
        for name in targets:
            if not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.\-]*", name):
                raise ValueError(f"target name {name!r} may use letters, digits, '_', '-', '.'")
        return targets


class LoadedConfig(BaseModel):
    """The validated configuration plus where it came from (for messages)."""

    config: MaestroConfig
    source: str | None = None  # relative file name, or None when nothing is configured
    table: str = ""  # "tool.maestro" for pyproject.toml, "" for maestro.toml


def read_toml(path: Path, display: str | None = None) -> tuple[dict[str, Any], str]:
    """Parse a TOML file, turning every failure into a ConfigError that names file and line."""
    name = display or str(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read: {exc.strerror}", where=name) from exc
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ConfigError(
            "is not valid UTF-8",
            where=f"{name}:{line}",
            hint="TOML files must be UTF-8; re-save the file as UTF-8",
        ) from exc
    try:
        return tomllib.loads(text), text
    except tomllib.TOMLDecodeError as exc:
        match = re.search(r"at line (\d+)", str(exc))
        where = f"{name}:{match.group(1)}" if match else name
        raise ConfigError(
            f"malformed TOML: {exc}",
            where=where,
            hint="fix the syntax; see https://toml.io for the format",
        ) from exc


def load_config(root: Path) -> LoadedConfig:
    """Read `maestro.toml` if present, else `[tool.maestro]` of pyproject.toml, else defaults."""
    maestro_toml = root / CONFIG_FILE
    if maestro_toml.is_file():
        data, text = read_toml(maestro_toml, CONFIG_FILE)
        return _validate(data, text, CONFIG_FILE, table="")
    pyproject = root / PYPROJECT
    if pyproject.is_file():
        data, text = read_toml(pyproject, PYPROJECT)
        section = data.get("tool", {}).get("maestro")
        if section is not None:
            if not isinstance(section, dict):
                raise ConfigError(
                    "[tool.maestro] must be a table",
                    where=f"{PYPROJECT}:{_line_of(text, 'tool.maestro', ()) or 1}",
                )
            return _validate(section, text, PYPROJECT, table="tool.maestro")
    return LoadedConfig(config=MaestroConfig())


def _validate(data: dict[str, Any], text: str, source: str, *, table: str) -> LoadedConfig:
    try:
        config = MaestroConfig.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = tuple(str(part) for part in err["loc"])
        key = ".".join(filter(None, (table, *loc)))
        line = _line_of(text, table, loc)
        where = f"{source}:{line}" if line else source
        message = err["msg"].removeprefix("Value error, ")
        raise ConfigError(
            f"{key}: {message}", where=where, hint=_hint_for(err["type"], loc)
        ) from exc
    for name, spec in config.targets.items():
        for dep in spec.deps:
            if dep not in config.targets:
                loc = ("targets", name, "deps")
                line = _line_of(text, table, loc)
                raise ConfigError(
                    f"{'.'.join(filter(None, (table, *loc)))}: target {name!r} depends on "
                    f"{dep!r}, which is not declared",
                    where=f"{source}:{line}" if line else source,
                    hint=f"declared targets: {', '.join(sorted(config.targets))}; "
                    "fix the name or declare it",
                )
    return LoadedConfig(config=config, source=source, table=table)


_KNOWN_KEYS = (
    "roots, exclude, interpreter, max-file-size, env-allowlist, targets, ml, remote, secrets"
)


def _hint_for(error_type: str, loc: tuple[str, ...]) -> str:
    if error_type == "extra_forbidden":
        if len(loc) >= 3 and loc[0] == "targets":
            return "a target takes: srcs, deps, cmd, outputs, inputs"
        if loc[:1] == ("remote",):
            return "[tool.maestro.remote] takes: url, tenant, api_key_env, read_timeout_s, upload"
        return f"known keys: {_KNOWN_KEYS}"
    if loc and loc[-1] in {"srcs", "outputs", "inputs", "deps", "roots", "exclude"}:
        return f'{loc[-1]} is a list of strings, e.g. {loc[-1]} = ["docs/**/*.md"]'
    if loc[:1] == ("targets",):
        return 'declare a target as [tool.maestro.targets.NAME] with srcs = ["glob", ...]'
    return "see docs/configuration.md for every key and its type"


def _line_of(text: str, table: str, loc: tuple[str, ...]) -> int | None:
    """Best-effort line number of a key: find the deepest table header, then the key below it."""
    lines = text.splitlines()
    parts = (table.split(".") if table else []) + list(loc)
    # Try the longest table header first: [a.b.c] then [a.b] ...
    for cut in range(len(parts), -1, -1):
        header = ".".join(parts[:cut])
        start = 0
        if header:
            pattern = re.compile(r"^\s*\[+\s*" + re.escape(header) + r"\s*\]+\s*(#.*)?$")
            found = next((i for i, line in enumerate(lines) if pattern.match(line)), None)
            if found is None:
                continue
            start = found
        rest = parts[cut:]
        if not rest:
            return start + 1
        key = re.compile(r"^\s*" + re.escape(rest[0]) + r"(\s*[.=])")
        for i in range(start + (1 if header else 0), len(lines)):
            if header and lines[i].lstrip().startswith("["):
                break
            if key.match(lines[i]):
                return i + 1
        return start + 1 if header else None
    return None
