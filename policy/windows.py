"""Run windows: when background and speculative runs may start, in the window's time zone.

The wall-clock arithmetic happens here, with zoneinfo, because it has to be right across DST
changes (a window opening at 07:00 opens at 07:00 local on the day the clocks move, which is
23 or 25 hours after the previous opening); Rego then decides with the result
(``input.windows``). A window is ``{tz, start, end, days, kinds}``; ``end <= start`` spans
midnight (it belongs to the day it starts on).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any, get_args
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, Field, ValidationError, field_validator

from maestro.errors import ConfigError
from maestro.policy.model import RunKind, WindowState

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def _windowed_kinds() -> list[RunKind]:
    return ["background", "speculative"]


class Window(BaseModel):
    tz: str = "UTC"
    start: time
    end: time
    days: list[str] = Field(default_factory=lambda: list(DAYS))
    kinds: list[RunKind] = Field(default_factory=_windowed_kinds)

    @field_validator("tz")
    @classmethod
    def _zone(cls, tz: str) -> str:
        try:
            ZoneInfo(tz)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {tz!r}") from None
        return tz

    @field_validator("days")
    @classmethod
    def _days(cls, days: list[str]) -> list[str]:
        bad = [d for d in days if d.lower()[:3] not in DAYS]
        if bad:
            raise ValueError(f"days are {', '.join(DAYS)}; got {bad}")
        return [d.lower()[:3] for d in days]

    def _opening(self, day: date, zone: ZoneInfo) -> tuple[datetime, datetime]:
        start = datetime.combine(day, self.start, tzinfo=zone)
        end_day = day + timedelta(days=1) if self.end <= self.start else day
        end = datetime.combine(end_day, self.end, tzinfo=zone)
        # round-trip through UTC: a wall time inside a spring-forward gap becomes a real instant
        return start.astimezone(UTC), end.astimezone(UTC)

    def state(self, now: datetime) -> WindowState:
        zone = ZoneInfo(self.tz)
        local = now.astimezone(zone).date()
        now_ms = int(now.timestamp() * 1000)
        for offset in range(-1, 9):
            day = local + timedelta(days=offset)
            if DAYS[day.weekday()] not in self.days:
                continue
            start, end = self._opening(day, zone)
            if start <= now < end:
                return WindowState(open=True, next_open_ms=now_ms, tz=self.tz, kinds=self.kinds)
            if start > now:
                ms = int(start.timestamp() * 1000)
                return WindowState(open=False, next_open_ms=ms, tz=self.tz, kinds=self.kinds)
        return WindowState(open=False, next_open_ms=now_ms, tz=self.tz, kinds=self.kinds)


def window_states(config: dict[str, Any], now: datetime) -> dict[str, WindowState]:
    """``[tool.maestro.policy.windows.NAME]`` tables evaluated at ``now``."""
    out: dict[str, WindowState] = {}
    for name, spec in (config.get("windows") or {}).items():
        try:
            window = Window.model_validate(spec)
        except ValidationError as exc:
            first = exc.errors()[0]
            raise ConfigError(
                f"policy.windows.{name}.{'.'.join(map(str, first['loc']))}: {first['msg']}",
                where="pyproject.toml",
                hint=f"a window takes tz, start, end, days, kinds ({', '.join(get_args(RunKind))})",
            ) from None
        out[name] = window.state(now)
    return out
