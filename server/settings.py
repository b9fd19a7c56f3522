"""The language server's settings: typed initialization options (jedi-language-server style).

Clients send them as ``initializationOptions`` (camelCase keys, unknown keys ignored, every field
optional); a ``workspace/didChangeConfiguration`` with a ``maestro`` section updates them later.
A bad value is a ``SettingsError`` naming the key and how to fix it; the server then keeps the
settings it had. The daemon's share (interpreter, speculation, coordinator URL) travels to each
workspace daemon as ``ClientSettings`` over the daemon connection, never through the environment.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic.alias_generators import to_camel

from maestro.errors import ConfigError
from maestro.server.util import plain
from maestro.wire import ClientSettings, CoordinatorUrl

DOCS_HINT = 'see docs/lsp.md "Initialization options" for every key and its type'


class SettingsError(ConfigError):
    """Invalid editor settings (initializationOptions or workspace/didChangeConfiguration)."""

    code = "settings_error"


class _Options(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="ignore", frozen=True
    )


class CodeLensSettings(_Options):
    enabled: bool = True
    """Lenses on test files/functions (run, last result, cached) and source files (impacted)."""
    impacted_on_source: bool = True
    """The "N impacted test files" lens on source files (one daemon query per source file)."""
    test_functions: bool = True
    """"Run" and the last result above each test function and class (VS Code turns them off by
    default: its Testing gutter is that affordance already)."""


class Settings(_Options):
    interpreter: str | None = None
    """Python that runs the tests, over the workspace's `[tool.maestro] interpreter`."""
    speculation: bool | None = None
    """Speculation on (True) or off (False) over `ml.speculation.enabled`; None: the workspace's."""
    coordinator_url: CoordinatorUrl = None
    """Coordinator base URL over `[tool.maestro.remote] url` (tenant, key: the workspace's)."""
    daemon_autostart: bool = True
    """Start the workspace daemon when none runs (and restart it if it dies)."""
    code_lens: CodeLensSettings = Field(default_factory=CodeLensSettings)
    diagnostics: bool = True
    """Publish test failures as diagnostics."""
    debounce_ms: int = Field(default=300, ge=0, le=60_000)
    """Delay before refreshing lenses after an edit."""
    request_timeout_s: float = Field(default=60.0, gt=0, le=3600)
    """Bound on one daemon query (test runs are not bounded)."""
    run_on_save: bool = False
    """After a save, run the tests the saved file impacts (a newer save cancels that run)."""

    @field_validator("interpreter", "coordinator_url", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: Any) -> Any:
        # editors hand over unset strings as "": they mean "not set", not "the empty path"
        if isinstance(value, str):
            value = os.path.expanduser(os.path.expandvars(value.strip()))
            return value or None
        return value

    @field_validator("code_lens", mode="before")
    @classmethod
    def _lens_shorthand(cls, value: Any) -> Any:
        return {"enabled": value} if isinstance(value, bool) else value

    @classmethod
    def from_options(cls, options: Any, base: Settings | None = None) -> Settings:
        """Settings from initializationOptions or a didChangeConfiguration payload (a dict or
        pygls namedtuples, optionally under a ``maestro`` key), over ``base``. Raises
        SettingsError for a value of the wrong type or out of range."""
        raw = plain(options)
        if isinstance(raw, Mapping) and isinstance(raw.get("maestro"), Mapping):
            raw = raw["maestro"]
        if not isinstance(raw, Mapping):
            return base or cls()
        merged = _merge(base.model_dump(by_alias=True) if base else {}, raw)
        try:
            return cls.model_validate(merged)
        except ValidationError as exc:
            err = exc.errors()[0]
            key = ".".join(str(part) for part in err["loc"])
            message = err["msg"].removeprefix("Value error, ")
            raise SettingsError(
                f"maestro.{key}: {message} (got {err.get('input')!r})",
                where="editor settings",
                hint=f"fix maestro.{key} in the editor's settings; {DOCS_HINT}",
            ) from exc

    def client_settings(self) -> ClientSettings:
        """What the workspace daemons are told (sent on every (re)connect and change)."""
        return ClientSettings(
            interpreter=self.interpreter,
            speculation=self.speculation,
            coordinator_url=self.coordinator_url,
        )

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(by_alias=True)


def _merge(base: Mapping[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    """``update`` over ``base``, nested tables merged key by key (camel or snake keys)."""
    out = dict(base)
    for key, value in update.items():
        name = to_camel(str(key))
        current = out.get(name)
        if isinstance(current, Mapping) and isinstance(value, Mapping):
            out[name] = _merge(current, value)
        else:
            out[name] = value
    return out
