"""Typed initialization options (jedi-language-server style): every field has a default.

Clients send them as ``initializationOptions`` (camelCase keys, unknown keys ignored); a
``workspace/didChangeConfiguration`` with a ``maestro`` section updates them later.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from maestro.server.util import plain


@dataclass(frozen=True)
class CodeLensSettings:
    enabled: bool = True
    """Lenses on test files/functions (run, last result, cached) and source files (impacted)."""
    impacted_on_source: bool = True
    """The "N impacted tests" lens on source files (one daemon query per source file)."""


@dataclass(frozen=True)
class Settings:
    interpreter: str | None = None
    """Python used to run the tests. Applied to a daemon this server starts (as VIRTUAL_ENV for a
    venv interpreter); otherwise the daemon resolves `[tool.maestro] interpreter`, .venv, PATH."""
    speculation: bool = False
    """Speculative pre-runs of impacted tests (reported to the daemon when it supports it)."""
    coordinator_url: str | None = None
    """Remote cache / coordinator URL, exported as MAESTRO_COORDINATOR_URL to a started daemon."""
    daemon_autostart: bool = True
    """Start the workspace daemon when none runs (and restart it if it dies)."""
    code_lens: CodeLensSettings = field(default_factory=CodeLensSettings)
    diagnostics: bool = True
    """Publish test failures as diagnostics."""
    debounce_ms: int = 300
    """Delay before refreshing lenses after an edit."""
    request_timeout_s: float = 60.0
    """Bound on one daemon query (test runs are not bounded)."""

    @classmethod
    def from_options(cls, options: Any, base: Settings | None = None) -> Settings:
        """Settings from initializationOptions (a dict or pygls namedtuples; camel or snake)."""
        raw = plain(options)
        if not isinstance(raw, Mapping):
            return base or cls()
        if isinstance(raw.get("maestro"), Mapping):
            raw = raw["maestro"]
        result: Settings = _apply(base or cls(), raw)
        return result

    def daemon_env(self) -> dict[str, str]:
        """Environment for a daemon this server spawns."""
        env: dict[str, str] = {}
        if self.interpreter:
            path = Path(self.interpreter).expanduser()
            if path.parent.name == "bin" and (path.parent.parent / "pyvenv.cfg").exists():
                env["VIRTUAL_ENV"] = str(path.parent.parent)
        if self.coordinator_url:
            env["MAESTRO_COORDINATOR_URL"] = self.coordinator_url
        return env

    def to_json(self) -> dict[str, Any]:
        return {
            "interpreter": self.interpreter,
            "speculation": self.speculation,
            "coordinatorUrl": self.coordinator_url,
            "daemonAutostart": self.daemon_autostart,
            "codeLens": {
                "enabled": self.code_lens.enabled,
                "impactedOnSource": self.code_lens.impacted_on_source,
            },
            "diagnostics": self.diagnostics,
            "debounceMs": self.debounce_ms,
            "requestTimeoutS": self.request_timeout_s,
        }


def _snake(name: str) -> str:
    return "".join("_" + c.lower() if c.isupper() else c for c in name)


def _apply(obj: Any, raw: Mapping[str, Any]) -> Any:
    known = {f.name: f for f in fields(obj)}
    changes: dict[str, Any] = {}
    for key, value in raw.items():
        name = _snake(str(key))
        if name not in known:
            continue
        current = getattr(obj, name)
        if hasattr(current, "__dataclass_fields__"):
            if isinstance(value, Mapping):
                changes[name] = _apply(current, value)
            elif isinstance(value, bool) and hasattr(current, "enabled"):
                changes[name] = replace(current, enabled=value)
            continue
        if value is None:
            if name in ("interpreter", "coordinator_url"):
                changes[name] = None
            continue
        default: Any = known[name].default
        expected: type[Any] = type(default) if default is not None else str
        try:
            if expected is bool:
                changes[name] = bool(value)
            elif expected is int:
                changes[name] = int(value)
            elif expected is float:
                changes[name] = float(value)
            else:
                changes[name] = os.path.expandvars(str(value))
        except (TypeError, ValueError):
            continue
    return replace(obj, **changes)
