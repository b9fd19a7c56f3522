"""Changes to one shared record in Redis (a tenant, the token keyring) are read-modify-writes
that start over when another replica writes in between, and write nothing when refused; a real
redis-server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis
from coord_procs import needs_redis, run_redis

from maestro.coordinator.records import TenantUpdate
from maestro.coordinator.state import RedisState
from maestro.errors import CoordinatorError

pytestmark = [needs_redis]


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with run_redis(tmp_path_factory.mktemp("redis")) as server:
        yield server.url


async def test_a_keyring_change_starts_over_from_another_replicas_write(redis_url: str) -> None:
    state = RedisState.from_url(redis_url, "swap-keyring:")
    other = redis.Redis.from_url(redis_url)  # another replica, writing in between
    seen: list[bytes | None] = []

    def change(current: bytes | None) -> bytes:
        seen.append(current)
        if len(seen) == 1:
            other.set("swap-keyring:token-keys", b"theirs")
        return (current or b"") + b"+ours"

    try:
        await state.swap_token_keyring(lambda current: b"base")
        await state.swap_token_keyring(change)
        stored = await state.token_keyring()
    finally:
        other.close()
        await state.close()
    assert seen == [b"base", b"theirs"]
    assert stored == b"theirs+ours"  # their write is kept, ours applied over it


async def test_setting_an_unknown_tenant_fails_and_writes_nothing(redis_url: str) -> None:
    state = RedisState.from_url(redis_url, "swap-tenant:")
    try:
        await state.add_tenant("acme")
        with pytest.raises(CoordinatorError, match="no tenant named 'acmee'"):
            await state.update_tenant("acmee", TenantUpdate(raw_ac=True))
        assert await state.get_tenant("acmee") is None
        updated = await state.update_tenant("acme", TenantUpdate(raw_ac=True))
        assert updated.raw_ac
        stored = await state.get_tenant("acme")
    finally:
        await state.close()
    assert stored is not None and stored.raw_ac
