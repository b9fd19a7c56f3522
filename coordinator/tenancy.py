"""Tenant service levels: priority class, request-rate and concurrency quotas, minimum share.

A tenant's policy comes from, in order: the policy stored on its record (`maestro coordinator
tenant set NAME --priority ci ...`, replicated through the state backend), else its
`[tenants.NAME]` table in the settings file, else `[default_tenant_policy]`. A stored policy
replaces the file's entry as a whole, so what `tenant list` shows is what is enforced.

Priority classes map to APF-style priority levels (admission.py): each level owns a share of the
coordinator's concurrency, so a CI farm in `ci` cannot take the seats of `interactive` readers.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from maestro.cache.sizes import size_field
from maestro.errors import ConfigError

if TYPE_CHECKING:
    from .records import TenantRecord

PriorityClass = Literal["interactive", "ci", "batch", "speculative"]
PRIORITY_CLASSES: tuple[PriorityClass, ...] = ("interactive", "ci", "batch", "speculative")
DEFAULT_SHARES: dict[str, int] = {"interactive": 40, "ci": 30, "batch": 20, "speculative": 10}
"""Assured concurrency shares of the priority levels (relative weights, like APF's)."""


class TenantPolicy(BaseModel):
    """What one tenant may use. None means "no limit of that kind"."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    priority: PriorityClass = "interactive"
    weight: float = Field(default=1.0, gt=0, le=100)
    """Share of its priority level relative to the other tenants queued there (DRR quantum)."""
    rate_per_s: float | None = Field(default=None, gt=0)
    """Sustained requests per second (averaged over 10 s)."""
    burst: int | None = Field(default=None, ge=1)
    """Requests allowed within any one second (a burst above `rate_per_s`)."""
    max_concurrent: int | None = Field(default=None, ge=1)
    """Requests of this tenant in flight at once (across all replicas when they share Redis
    state); more wait in its queue."""
    upload_bytes_per_day: Annotated[int | None, BeforeValidator(size_field)] = Field(
        default=None, ge=1
    )
    min_share: float = Field(default=0.0, ge=0.0, le=1.0)
    """Fraction of its level's seats this tenant gets first whenever it has work waiting."""
    evict: bool = True
    """At the storage quota, evict the tenant's least recently used entries (else 507)."""

    def min_seats(self, level_seats: int) -> int:
        return math.ceil(self.min_share * level_seats) if self.min_share > 0 else 0

    def summary(self) -> str:
        parts = [f"priority={self.priority}", f"weight={self.weight:g}"]
        for name in ("rate_per_s", "burst", "max_concurrent", "upload_bytes_per_day"):
            value = getattr(self, name)
            if value is not None:
                parts.append(f"{name}={value:g}" if isinstance(value, float) else f"{name}={value}")
        if self.min_share:
            parts.append(f"min_share={self.min_share:g}")
        if not self.evict:
            parts.append("evict=off")
        return " ".join(parts)


def _tables(value: Any) -> Any:
    """`{"name": {...}}` JSON from the environment; TOML tables pass through."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except json.JSONDecodeError as exc:
            raise ValueError(f"expected a JSON object: {exc}") from exc
    return value


TenantPolicies = Annotated[dict[str, TenantPolicy], BeforeValidator(_tables)]


def changed_policy(base: TenantPolicy | None, changes: Mapping[str, Any]) -> TenantPolicy:
    """`base` (or the defaults) with `changes` applied, validated as a whole."""
    merged = {**(base or TenantPolicy()).model_dump(), **changes}
    try:
        return TenantPolicy.model_validate(merged)
    except ValidationError as exc:
        detail = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
        )
        raise ConfigError(f"invalid tenant policy: {detail}") from None


class PolicyResolver:
    """The effective policy of a tenant record under the configured defaults."""

    def __init__(self, configured: Mapping[str, TenantPolicy], default: TenantPolicy) -> None:
        self._configured = dict(configured)
        self._default = default

    def __call__(self, tenant: TenantRecord) -> TenantPolicy:
        if tenant.policy is not None:
            return tenant.policy
        return self._configured.get(tenant.name, self._default)
