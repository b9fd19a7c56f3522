"""Workspace configuration: `[tool.maestro]` in pyproject.toml, or a top-level `maestro.toml`.

One model: frozen dataclasses shaped like the TOML, which everything in Maestro reads. A workspace
that configures nothing gets the defaults without pydantic being imported (the zero-config case;
importing pydantic is a large share of a warm CLI start). A configured one is validated by
pydantic against the same dataclasses (constraints and TOML names live in each field's metadata);
every error names the file, the line and the key, and says how to fix it.
"""

from __future__ import annotations

import os
import re
from dataclasses import FrozenInstanceError, dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

from maestro.errors import ConfigError
from maestro.workspace import CONFIG_FILE as CONFIG_FILE
from maestro.workspace import PYPROJECT as PYPROJECT
from maestro.workspace import unconfigured

DEFAULT_MAX_FILE_SIZE = 32 * 1024 * 1024
FailFirst = Literal["tests", "files", "off"]


def _kebab(name: str) -> str:
    return name.replace("_", "-")


# pydantic's config for every table: TOML names are kebab-case (snake_case accepted too), and
# an unknown key is an error. A plain dict: pydantic is not imported to define it.
_TABLE: dict[str, Any] = {"extra": "forbid", "alias_generator": _kebab, "populate_by_name": True}


class _Frozen:
    """Immutable once built: each field is set once, by ``__init__``. What ``frozen=True`` gives,
    without its generated methods per class, which cost this module several times its other
    import time (and `maestro test` loads it on its fast path)."""

    __slots__ = ()

    def __setattr__(self, name: str, value: Any) -> None:
        if hasattr(self, name):
            raise FrozenInstanceError(f"cannot assign to field {name!r}")
        object.__setattr__(self, name, value)

    def __delattr__(self, name: str) -> None:
        raise FrozenInstanceError(f"cannot delete field {name!r}")


class _FieldError(ValueError):
    """A check in ``__post_init__`` that names its field (pydantic's error then points at the
    table, not at the key)."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key


def _meta(description: str = "", **constraints: Any) -> dict[str, Any]:
    return {"description": description, **constraints} if description else constraints


def _period(default: float, description: str) -> float:
    """A background job's period in seconds: 0 turns the job off, and it runs at least daily."""
    return field(default=default, metadata=_meta(description, ge=0, le=86_400))


@dataclass(slots=True)
class Target(_Frozen):
    """A declared (non-Python) target: what it reads, what it runs, what it writes."""

    __pydantic_config__: ClassVar[dict[str, Any]] = _TABLE

    srcs: tuple[str, ...] = field(default=(), metadata=_meta("globs of source files"))
    deps: tuple[str, ...] = field(default=(), metadata=_meta("names of other declared targets"))
    cmd: str | tuple[str, ...] | None = field(
        default=None, metadata=_meta("command to build or check it")
    )
    outputs: tuple[str, ...] = field(default=(), metadata=_meta("globs of files it produces"))
    inputs: tuple[str, ...] = field(default=(), metadata=_meta("extra input globs (config, data)"))

    def __post_init__(self) -> None:
        for key in ("srcs", "outputs", "inputs"):
            for pattern in getattr(self, key):
                if not pattern or pattern.startswith("/") or ".." in Path(pattern).parts:
                    raise _FieldError(
                        key,
                        f"glob {pattern!r} must be a non-empty path relative to the workspace root",
                    )


@dataclass(slots=True)
class SpeculationSettings(_Frozen):
    """`[tool.maestro.ml.speculation]`: run likely failures after a save (docs/model.md)."""

    __pydantic_config__: ClassVar[dict[str, Any]] = _TABLE

    enabled: bool = field(default=False, metadata=_meta("speculate after saves (off by default)"))
    max_concurrent: int = field(
        default=1, metadata=_meta("speculative pytest processes at once", ge=1, le=8)
    )
    nice: int = field(default=10, metadata=_meta("nice level of speculative pytest", ge=0, le=19))
    cpu_seconds_per_minute: float = field(
        default=60.0, metadata=_meta("speculative CPU-seconds allowed per rolling minute", gt=0)
    )
    max_files: int = field(
        default=20,
        metadata=_meta("most test files one speculation runs (0: every impacted file)", ge=0),
    )
    delay_ms: int = field(
        default=150,
        metadata=_meta(
            "quiet time after a save before speculating (rapid saves coalesce)", ge=0, le=60_000
        ),
    )
    max_waste: float = field(
        default=0.05,
        metadata=_meta(
            "tripwire: unused share of speculative CPU that throttles speculation", ge=0, le=1
        ),
    )
    waste_window_s: float = field(
        default=3600.0, metadata=_meta("the tripwire's window, in seconds", gt=0)
    )
    min_events: int = field(
        default=20, metadata=_meta("events the tripwire needs in its window to trip", ge=1)
    )
    cooldown_s: float = field(
        default=600.0, metadata=_meta("seconds a tripped speculator stays off", ge=0)
    )


@dataclass(slots=True)
class PredictiveSettings(_Frozen):
    """`[tool.maestro.ml.predictive]`: `maestro test --predictive` (docs/model.md)."""

    __pydantic_config__: ClassVar[dict[str, Any]] = _TABLE

    threshold: float = field(
        default=0.05,
        metadata=_meta("run only test files with predicted P(fail) at or above this", ge=0, le=1),
    )


@dataclass(slots=True)
class MlSettings(_Frozen):
    __pydantic_config__: ClassVar[dict[str, Any]] = _TABLE

    speculation: SpeculationSettings = field(default_factory=SpeculationSettings)
    predictive: PredictiveSettings = field(default_factory=PredictiveSettings)
    fail_first: FailFirst = field(
        default="off",
        metadata=_meta(
            "order daemon runs most-likely-failure first: test files and, inside each "
            "(classes kept together), their tests; only the files (their tests in pytest's "
            "order); or not at all"
        ),
    )


def http_url(url: str) -> str:
    """A coordinator base URL, normalised (no trailing slash); ValueError says the form."""
    if not re.fullmatch(r"https?://[^\s/]+(/\S*)?", url):
        raise ValueError(f"url {url!r} must be http(s)://HOST[:PORT][/PREFIX]")
    return url.rstrip("/")


@dataclass(slots=True)
class RemoteSettings(_Frozen):
    """`[tool.maestro.remote]`: the team's coordinator (docs/coordinator.md). The API key itself
    is never configured here: `api_key_env` names the environment variable that holds it."""

    __pydantic_config__: ClassVar[dict[str, Any]] = _TABLE

    url: str = field(metadata=_meta("coordinator base URL, e.g. http://127.0.0.1:8980"))
    tenant: str = field(
        metadata=_meta(
            "the team's tenant on the coordinator", pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$"
        )
    )
    api_key_env: str = field(
        default="MAESTRO_REMOTE_API_KEY",
        metadata=_meta(
            "NAME of the environment variable holding the API key",
            pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
        ),
    )
    read_timeout_s: float = field(
        default=2.0,
        metadata=_meta("seconds a cache read may wait for the coordinator", gt=0, le=60),
    )
    upload: bool = field(default=True, metadata=_meta("upload results when the key may write"))
    telemetry_upload_every_s: float = _period(
        60.0, "seconds between the daemon's telemetry uploads to the coordinator (0: never)"
    )
    team_model_every_s: float = _period(
        600.0,
        "seconds between the daemon's fetches of the team model (0: only maestro model pull)",
    )

    def __post_init__(self) -> None:
        try:
            url = http_url(self.url)
        except ValueError as exc:
            raise _FieldError("url", str(exc)) from None
        object.__setattr__(self, "url", url)


@dataclass(slots=True)
class RedactionSettings(_Frozen):
    """`[tool.maestro.secrets.redaction]`: what a secret found in a result does to its upload
    (docs/security.md)."""

    __pydantic_config__: ClassVar[dict[str, Any]] = _TABLE

    enforce: bool = field(
        default=True,
        metadata=_meta(
            "block an upload whose last scan finds a secret (false: send it, count it "
            "and log a warning naming the kinds found)"
        ),
    )


@dataclass(slots=True)
class SecretsSettings(_Frozen):
    __pydantic_config__: ClassVar[dict[str, Any]] = _TABLE

    redaction: RedactionSettings = field(default_factory=RedactionSettings)


_TARGET_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]*")


@dataclass(slots=True)
class Settings(_Frozen):
    """Everything a workspace may configure; all of it optional (zero-config is the default)."""

    __pydantic_config__: ClassVar[dict[str, Any]] = _TABLE

    roots: tuple[str, ...] | None = field(
        default=None,
        metadata=_meta("source roots; default: the workspace root and src/ if present"),
    )
    exclude: tuple[str, ...] = field(default=(), metadata=_meta("gitignore-style patterns to skip"))
    interpreter: str | None = field(default=None, metadata=_meta("python used to run the tests"))
    max_file_size: int = field(
        default=DEFAULT_MAX_FILE_SIZE, metadata=_meta("bytes scanned per file", gt=0)
    )
    env_allowlist: tuple[str, ...] = field(
        default=(),
        metadata=_meta(
            "environment variables passed to pytest and keyed, besides the defaults "
            "(docs/action-key.md)"
        ),
    )
    retrace: bool = field(
        default=True,
        metadata=_meta(
            "before Python 3.12: the idle daemon re-runs, traced and at low priority, the test "
            "files whose results an untraced first run stored (false: never; a background run, "
            "so the policy's run windows apply)"
        ),
    )
    targets: dict[str, Target] = field(default_factory=dict)
    ml: MlSettings = field(default_factory=MlSettings)
    remote: RemoteSettings | None = None
    secrets: SecretsSettings = field(default_factory=SecretsSettings)
    policy: dict[str, Any] = field(
        default_factory=dict,
        metadata=_meta("policy data (docs/policy.md), checked by maestro.policy"),
    )

    def __post_init__(self) -> None:
        for name in self.targets:
            if not _TARGET_NAME.fullmatch(name):
                raise _FieldError(
                    "targets", f"target name {name!r} may use letters, digits, '_', '-', '.'"
                )

    def remote_and_key(
        self, key_hint: str = "export the tenant's API key"
    ) -> tuple[RemoteSettings, str]:
        """The coordinator and its API key (from the variable `api_key_env` names), for the
        commands that cannot work without them; ConfigError says which one is missing."""
        if self.remote is None:
            raise ConfigError(
                "no coordinator configured for this workspace",
                hint="add [tool.maestro.remote] with url, tenant and api_key_env",
            )
        key = os.environ.get(self.remote.api_key_env)
        if not key:
            raise ConfigError(f"${self.remote.api_key_env} is not set", hint=key_hint)
        return self.remote, key


@dataclass(slots=True)
class LoadedSettings(_Frozen):
    """The workspace's settings plus where they came from (for messages)."""

    config: Settings
    source: str | None = None  # relative file name, or None when nothing is configured
    table: str = ""  # "tool.maestro" for pyproject.toml, "" for maestro.toml


def load_settings(root: Path) -> LoadedSettings:
    """`maestro.toml` if present, else `[tool.maestro]` of pyproject.toml, else the defaults;
    raises ConfigError (file, line, key, hint) when invalid."""
    if unconfigured(root):  # zero-config: nothing to parse or validate
        return LoadedSettings(Settings())
    maestro_toml = root / CONFIG_FILE
    if maestro_toml.is_file():
        data, text = read_toml(maestro_toml, CONFIG_FILE)
        return _validate(data, text, CONFIG_FILE, table="")
    pyproject = root / PYPROJECT
    data, text = read_toml(pyproject, PYPROJECT)
    section = data.get("tool", {}).get("maestro")
    if section is None:
        return LoadedSettings(Settings())
    if not isinstance(section, dict):
        raise ConfigError(
            "[tool.maestro] must be a table",
            where=f"{PYPROJECT}:{_line_of(text, 'tool.maestro', ()) or 1}",
        )
    return _validate(section, text, PYPROJECT, table="tool.maestro")


def read_toml(path: Path, display: str | None = None) -> tuple[dict[str, Any], str]:
    """Parse a TOML file, turning every failure into a ConfigError that names file and line."""
    import tomllib

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


def _validate(data: dict[str, Any], text: str, source: str, *, table: str) -> LoadedSettings:
    from pydantic import TypeAdapter, ValidationError

    try:
        config = TypeAdapter(Settings).validate_python(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = tuple(str(part) for part in err["loc"])
        cause = err.get("ctx", {}).get("error")
        if isinstance(cause, _FieldError):
            loc += (cause.key,)
        key = ".".join(filter(None, (table, *loc)))
        line = _line_of(text, table, loc)
        where = f"{source}:{line}" if line else source
        message = err["msg"].removeprefix("Value error, ")
        if err["type"] == "unexpected_keyword_argument":
            message = "unknown key"
        elif err["type"] == "tuple_type":  # a TOML array, held as a tuple
            message = "Input should be a valid list"
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
    return LoadedSettings(config, source, table)


_KNOWN_KEYS = (
    "roots, exclude, interpreter, max-file-size, env-allowlist, targets, ml, remote, secrets"
)


def _hint_for(error_type: str, loc: tuple[str, ...]) -> str:
    if error_type in ("extra_forbidden", "unexpected_keyword_argument"):
        if len(loc) >= 3 and loc[0] == "targets":
            return "a target takes: srcs, deps, cmd, outputs, inputs"
        if loc[:1] == ("remote",):
            return (
                "[tool.maestro.remote] takes: url, tenant, api_key_env, read_timeout_s, upload, "
                "telemetry_upload_every_s, team_model_every_s"
            )
        return f"known keys: {_KNOWN_KEYS}"
    if loc and loc[-1] in {"srcs", "outputs", "inputs", "deps", "roots", "exclude"}:
        return f'{loc[-1]} is a list of strings, e.g. {loc[-1]} = ["docs/**/*.md"]'
    if loc[:1] == ("targets",):
        return 'declare a target as [tool.maestro.targets.NAME] with srcs = ["glob", ...]'
    return "docs/configuration.md lists every key, its type and its bounds"


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
