from __future__ import annotations

import random

import pytest
from cache_helpers import action_key, make_result

from maestro.cache import Cache, digest_bytes
from maestro.cache import store as store_mod
from maestro.errors import CacheError


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_000_000

    def __call__(self) -> int:
        return self.now

    def tick(self, seconds: int = 100) -> None:
        self.now += seconds


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(store_mod, "_now", fake)
    return fake


def blob(n: int, size: int = 10_000) -> bytes:
    return n.to_bytes(4, "little") * (size // 4)


def test_automatic_eviction_respects_cap_and_drops_oldest_first(
    cache_root: object, clock: FakeClock
) -> None:
    cap = 100_000
    with Cache.open(max_bytes=cap) as c:
        digests = []
        for n in range(30):
            digests.append(c.put_blob(blob(n)))
            clock.tick()
            assert c.stats().bytes <= cap
        s = c.stats()
        assert s.evictions >= 20
        kept = [d for d in digests if c.has_blob(d)]
        assert kept == digests[-len(kept) :]  # a suffix: the most recently written survive
        assert len(kept) >= 8


def test_reads_keep_blobs_alive(cache_root: object, clock: FakeClock) -> None:
    with Cache.open() as c:
        digests = [c.put_blob(blob(n)) for n in range(5) if not clock.tick()]
        clock.tick(1000)
        assert c.get_blob(digests[0]) is not None  # the oldest write is now the newest read
        report = c.gc(30_000)
        assert report.after_bytes <= 30_000
        assert c.has_blob(digests[0])
        assert not c.has_blob(digests[1]) and not c.has_blob(digests[2])
        assert c.has_blob(digests[3]) and c.has_blob(digests[4])


def test_young_orphans_count_as_in_flight(cache_root: object, clock: FakeClock) -> None:
    with Cache.open() as c:
        c.put_action(action_key(0), make_result(stdout=c.put_blob(blob(100))))
        clock.tick(3600)
        fresh = c.put_blob(blob(1))  # a run's output whose action entry is not written yet
        clock.tick(10)
        c.gc(15_000)
        assert c.has_blob(fresh)
        assert c.get_action(action_key(0)) is None


def test_gc_never_drops_blobs_of_kept_actions(cache_root: object, clock: FakeClock) -> None:
    with Cache.open() as c:
        logs = [c.put_blob(blob(100 + n)) for n in range(3)]
        clock.tick()
        for n, log in enumerate(logs):
            c.put_action(action_key(n), make_result(stdout=log))
        clock.tick()
        orphans = [c.put_blob(blob(n)) for n in range(10)]  # newer than the actions
        clock.tick(3600)  # ...but nothing referenced them for an hour
        report = c.gc(40_000)
        assert report.after_bytes <= 40_000
        for n in range(3):
            assert c.get_action(action_key(n)) is not None
        assert sum(c.has_blob(d) for d in orphans) <= 1
        # below what the actions need: the oldest actions go, with their logs, never half of one
        c.gc(25_000)
        assert c.get_action(action_key(0)) is None
        assert not c.has_blob(logs[0])
        assert c.get_action(action_key(2)) is not None


def test_random_workload_keeps_invariants(cache_root: object, clock: FakeClock) -> None:
    rng = random.Random(1234)
    cap = 200_000
    with Cache.open(max_bytes=cap) as c:
        for step in range(300):
            clock.tick(rng.randint(1, 120))
            op = rng.random()
            if op < 0.5:
                c.put_blob(rng.randbytes(rng.randint(1, 20_000)))
            elif op < 0.8:
                outs = c.put_blobs([rng.randbytes(rng.randint(1, 8_000)) for _ in range(2)])
                c.put_action(action_key(step), make_result(stdout=outs[0], stderr=outs[1]))
            else:
                c.get_action(action_key(rng.randrange(step + 1)))
            assert c.stats().bytes <= cap
        # every action entry that survived eviction is still a hit
        stats = c.stats()
        survivors = [n for n in range(300) if c.get_action(action_key(n)) is not None]
        assert len(survivors) == stats.actions
        report = c.verify()
        assert report.clean and report.dangling_actions == 0 and report.repairs == []


def test_blob_larger_than_the_cap_is_refused(cache_root: object) -> None:
    with Cache.open(max_bytes=1000) as c, pytest.raises(CacheError, match="larger than"):
        c.put_blob(b"x" * 2000)


def test_gc_without_a_cap_is_an_error(cache: Cache) -> None:
    with pytest.raises(CacheError, match="no size cap"):
        cache.gc()
    assert cache.gc(10).evicted_blobs == 0  # nothing stored: nothing to do
    assert cache.has_blob(digest_bytes(b""))
