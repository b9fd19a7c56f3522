"""Tenants' policy bundles shared by the coordinator's replicas through Redis.

With ``state_backend = "redis"`` a bundle published at one replica is served by every replica
and decides the tenant's refusals everywhere; its rollback floor (the version held) and its
incident are the same everywhere too. Keys, under ``<redis_prefix>policy:``:

- ``tenants``: the set of tenants that published a bundle;
- ``<tenant>:bundle``: the bytes daemons are served (for a tenant with trusted keys: the last
  good bundle);
- ``<tenant>:version``: the version of that bundle (tenants with trusted keys);
- ``<tenant>:incident``: the open incident (JSON), absent when none.

Publishing is one script: bundle, version and the incident's removal are written only when the
version is not older than the one held, so two replicas racing cannot roll a tenant back.
Each replica follows the shared state (before answering a bundle's status, before a publish,
and every :data:`FOLLOW_S` seconds for every tenant): a newer version is verified again and put
in force locally (a replica trusts its own keys, not the other replicas), and the incident is
mirrored into the local store (its gauge and status).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from maestro.policy.bundle import Incident

if TYPE_CHECKING:
    from redis.asyncio import Redis

log = logging.getLogger(__name__)

FOLLOW_S = 2.0
"""How often a replica looks for bundles published at another replica."""

_PUBLISH = """
local held = redis.call('GET', KEYS[2])
if ARGV[2] ~= '' and held and tonumber(ARGV[2]) < tonumber(held) then
  return 0
end
redis.call('SET', KEYS[1], ARGV[1])
if ARGV[2] ~= '' then
  redis.call('SET', KEYS[2], ARGV[2])
  redis.call('DEL', KEYS[3])
end
redis.call('SADD', KEYS[4], ARGV[3])
return 1
"""


class SharedBundles:
    """The shared half of the tenants' bundles: Redis reads and writes, no verification (the
    replica's :class:`~maestro.policy.bundle.BundleStore` verifies)."""

    def __init__(self, redis: Redis, prefix: str) -> None:
        self.redis = redis
        self.prefix = prefix + "policy:"
        self._publish = redis.register_script(_PUBLISH)

    @classmethod
    def from_url(cls, url: str, prefix: str) -> SharedBundles:
        from redis.asyncio import Redis

        return cls(Redis.from_url(url), prefix)

    def _key(self, tenant: str, name: str) -> str:
        return f"{self.prefix}{tenant}:{name}"

    async def tenants(self) -> list[str]:
        members = await self.redis.smembers(self.prefix + "tenants")
        return sorted(m.decode() if isinstance(m, bytes) else str(m) for m in members)

    async def head(self, tenant: str) -> tuple[int | None, Incident | None]:
        """The version held and the open incident, in one round trip."""
        version, incident = await self.redis.mget(
            self._key(tenant, "version"), self._key(tenant, "incident")
        )
        return _int(version), _incident(incident)

    async def published(self, tenant: str) -> bool:
        return bool(await self.redis.exists(self._key(tenant, "bundle")))

    async def bundle(self, tenant: str) -> bytes | None:
        data = await self.redis.get(self._key(tenant, "bundle"))
        return data.encode() if isinstance(data, str) else data

    async def publish(self, tenant: str, data: bytes, version: int | None) -> bool:
        """Share ``data`` (``version``: verified, clears the incident); False when a newer
        version is held (another replica published one meanwhile)."""
        keys = [self._key(tenant, n) for n in ("bundle", "version", "incident")]
        done = await self._publish(
            keys=[*keys, self.prefix + "tenants"],
            args=[data, "" if version is None else str(version), tenant],
        )
        return bool(done)

    async def raise_incident(self, tenant: str, incident: Incident) -> None:
        await self.redis.set(self._key(tenant, "incident"), incident.model_dump_json())

    async def close(self) -> None:
        await self.redis.aclose()


def _int(raw: Any) -> int | None:
    try:
        return int(raw) if raw is not None else None
    except ValueError:
        return None


def _incident(raw: Any) -> Incident | None:
    if raw is None:
        return None
    try:
        return Incident.model_validate_json(raw)
    except ValidationError:
        log.warning("an unreadable policy incident in Redis is ignored")
        return None
