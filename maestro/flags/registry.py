"""The flag registry: every feature flag declared once, with its owner, scopes, type and expiry.

A flag is a governed switch, not a free-form setting: it has an owner to ask, a description, the
scopes that may set it, a typed default, an expiry date (after which every surface warns until
the owner removes or renews it) and, when it can be switched off in an emergency, a kill value
that wins over every other setting. Values are checked against the declaration wherever they
enter: the CLI, the local files, the coordinator's API.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Iterator, Mapping
from datetime import date
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from maestro.errors import ConfigError

FlagValue = bool | int | float | str
"""What a flag holds (JSON scalars)."""

FLAG_NAME = r"^[a-z][a-z0-9-]*(\.[a-z][a-z0-9-]*)+$"
FLAGS_DOC = 'docs/flags.md lists every flag ("Flags")'


class FlagError(ConfigError):
    """A flag operation that cannot be done as asked (usage error: exit 2)."""

    code = "flag_error"


class UnknownFlagError(FlagError):
    code = "unknown_flag"


class FlagValueError(FlagError):
    code = "bad_flag_value"


class ExpiredFlagError(FlagError):
    code = "expired_flag"


class Scope(StrEnum):
    """Where a value may be set; resolution order in docs/flags.md ("Precedence")."""

    USER = "user"
    WORKSPACE = "workspace"
    TENANT = "tenant"


class Flag(BaseModel):
    """One declared flag."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(pattern=FLAG_NAME)
    owner: str = Field(min_length=1, description="who decides about it (team or person)")
    description: str = Field(min_length=1)
    kind: Literal["bool", "float", "choice"]
    default: FlagValue
    scopes: frozenset[Scope] = Field(min_length=1)
    expires: date = Field(description="after this day the flag warns until removed or renewed")
    kill_value: FlagValue | None = Field(
        default=None, description="the value an engaged kill-switch forces; None: no kill-switch"
    )
    choices: tuple[str, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    config_key: tuple[str, ...] | None = Field(
        default=None, description="the older workspace configuration key it reads (under ml, ...)"
    )

    @model_validator(mode="after")
    def _typed(self) -> Flag:
        if self.kind == "choice" and not self.choices:
            raise ValueError(f"{self.name}: a choice flag declares its choices")
        self.check(self.default)
        if self.kill_value is not None:
            self.check(self.kill_value)
        return self

    @property
    def has_kill_switch(self) -> bool:
        return self.kill_value is not None

    def type_text(self) -> str:
        """The type as a user reads it in an error."""
        if self.kind == "bool":
            return "a boolean (true or false)"
        if self.kind == "choice":
            return "one of " + ", ".join(self.choices)
        low = "" if self.minimum is None else f" >= {self.minimum:g}"
        high = "" if self.maximum is None else f" <= {self.maximum:g}"
        return "a number" + (low + " and" + high if low and high else low or high)

    def check(self, value: Any) -> FlagValue:
        """``value`` (from JSON or a file) as this flag's type; FlagValueError says the type."""
        ok: FlagValue | None = None
        if self.kind == "bool" and isinstance(value, bool):
            ok = value
        elif (
            self.kind == "float"
            and isinstance(value, int | float)
            and not isinstance(value, bool)
            and (self.minimum is None or value >= self.minimum)
            and (self.maximum is None or value <= self.maximum)
        ):
            ok = float(value)
        elif self.kind == "choice" and isinstance(value, str) and value in self.choices:
            ok = value
        if ok is None:
            raise FlagValueError(
                f"{self.name} takes {self.type_text()}, not {value!r}",
                hint=f"e.g. maestro flags set {self.name} {format_value(self.default)} "
                '--reason "..."',
            )
        return ok

    def parse(self, text: str) -> FlagValue:
        """A value typed on the command line."""
        raw = text.strip()
        value: Any = raw
        if self.kind == "bool":
            lowered = raw.lower()
            if lowered in ("true", "on", "yes", "1"):
                value = True
            elif lowered in ("false", "off", "no", "0"):
                value = False
        elif self.kind == "float":
            try:
                value = float(raw)
            except ValueError:
                value = raw
        return self.check(value)

    def expired(self, today: date) -> bool:
        return today > self.expires


def format_value(value: FlagValue | None) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}"
    return "-" if value is None else str(value)


class Registry:
    """The declared flags, by name (immutable once built)."""

    def __init__(self, flags: Iterable[Flag]) -> None:
        self._flags: dict[str, Flag] = {}
        for flag in flags:
            if flag.name in self._flags:
                raise ValueError(f"flag {flag.name} is declared twice")
            self._flags[flag.name] = flag

    def __iter__(self) -> Iterator[Flag]:
        return iter(sorted(self._flags.values(), key=lambda f: f.name))

    def __contains__(self, name: object) -> bool:
        return name in self._flags

    def get(self, name: str) -> Flag:
        """The flag; UnknownFlagError with the closest names otherwise."""
        flag = self._flags.get(name)
        if flag is not None:
            return flag
        if name in NOT_FLAGS:
            raise UnknownFlagError(f"{name} is not a flag: {NOT_FLAGS[name]}", hint=FLAGS_DOC)
        close = difflib.get_close_matches(name, list(self._flags), n=3, cutoff=0.5)
        hint = (
            f"did you mean {' or '.join(close)}? " if close else ""
        ) + "`maestro flags list` shows every flag"
        raise UnknownFlagError(f"no flag named {name!r}", hint=hint)

    def expired(self, today: date) -> list[Flag]:
        return [f for f in self if f.expired(today)]

    def check_values(self, values: Mapping[str, Any]) -> dict[str, FlagValue]:
        return {name: self.get(name).check(value) for name, value in values.items()}


ALL_SCOPES = frozenset(Scope)

NOT_FLAGS: Mapping[str, str] = {
    # A flag here would be a second, weaker switch beside the policy rule (any scope could
    # turn a team's security control off, outside its signed bundle and decision records).
    "plugins.signing.enforce": "unsigned plugins are refused by the policy rule plugin.unsigned "
    "(exceptions: [tool.maestro.policy] allow_unsigned_plugins, or the team's signed policy); "
    "see docs/policy.md",
}
"""Names people look for that are deliberately not flags, with where that control lives."""

BUILTIN_FLAGS: tuple[Flag, ...] = (
    Flag(
        name="ml.speculation.enabled",
        owner="ml",
        description="run the tests most likely to fail after a save, within a CPU budget",
        kind="bool",
        default=False,
        scopes=ALL_SCOPES,
        expires=date(2027, 6, 30),
        kill_value=False,
        config_key=("ml", "speculation", "enabled"),
    ),
    Flag(
        name="ml.fail-first",
        owner="ml",
        description="order runs most-likely-failure first: test files and their tests, the "
        "files only, or not at all",
        kind="choice",
        choices=("tests", "files", "off"),
        default="off",
        scopes=ALL_SCOPES,
        expires=date(2027, 6, 30),
        kill_value="off",
        config_key=("ml", "fail-first"),
    ),
    Flag(
        name="ml.predictive.threshold",
        owner="ml",
        description="`maestro test --predictive` runs only files with P(fail) at or above this "
        "(the kill value 0 skips nothing)",
        kind="float",
        minimum=0.0,
        maximum=1.0,
        default=0.05,
        scopes=ALL_SCOPES,
        expires=date(2027, 6, 30),
        kill_value=0.0,
        config_key=("ml", "predictive", "threshold"),
    ),
    Flag(
        name="cas.mirror.enabled",
        owner="cache",
        description="read through to and upload to the team coordinator's cache when "
        "[tool.maestro.remote] is configured (off: the local cache only)",
        kind="bool",
        default=True,
        scopes=ALL_SCOPES,
        expires=date(2027, 12, 31),
        kill_value=False,
    ),
    Flag(
        name="secrets.redaction.enforce",
        owner="security",
        description="block an upload whose last scan finds a secret (off: send it, count it and "
        "warn); no kill-switch: turning a guardrail off is a deliberate, audited value",
        kind="bool",
        default=True,
        scopes=ALL_SCOPES,
        expires=date(2027, 12, 31),
        config_key=("secrets", "redaction", "enforce"),
    ),
    Flag(
        name="lsp.enabled",
        owner="editor",
        description="the language server serves this workspace (lenses, diagnostics, runs)",
        kind="bool",
        default=True,
        scopes=ALL_SCOPES,
        expires=date(2027, 12, 31),
        kill_value=False,
    ),
)


def builtin_registry() -> Registry:
    return Registry(BUILTIN_FLAGS)
