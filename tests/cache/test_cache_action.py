from __future__ import annotations

import contextlib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgpack
import pytest
from cache_helpers import action_key, make_result, raw_put
from hypothesis import given, settings
from hypothesis import strategies as st

from maestro.cache import ActionResult, Cache, Digest, Provenance, TestOutcome, Timing
from maestro.cache import action as action_module
from maestro.cache import layout as L
from maestro.cache.action import SCHEMA_VERSION, NewerSchemaError, decode_action
from maestro.errors import CacheError


def test_action_hit_requires_every_referenced_blob(cache: Cache) -> None:
    out = cache.put_blob(b"stdout text")
    err = cache.put_blob(b"stderr text")
    result = make_result(stdout=out, stderr=err)
    cache.put_action(action_key(1), result)
    assert cache.get_action(action_key(1)) == result
    assert set(result.referenced_digests()) == {out, err}

    missing_junit = Digest("f" * 64, 10)
    cache.put_action(action_key(2), make_result(stdout=out, junit=missing_junit))
    assert cache.get_action(action_key(2)) is None
    cache.put_action(action_key(3), make_result(stdout=Digest(out.hash, out.size + 1)))
    assert cache.get_action(action_key(3)) is None  # size must match too


def test_action_with_a_corrupt_blob_is_a_miss_and_the_blob_is_quarantined(
    cache_root: Path,
) -> None:
    with Cache.open() as c:
        out = c.put_blob(b"stdout text")
        c.put_action(action_key(1), make_result(stdout=out))
        path = c.path
    raw_put(path, b"cas", out.key, b"stdout TEXT")
    with Cache.open() as c:
        assert c.get_action(action_key(1)) is None
        assert c.stats().quarantined == 1
        c.put_blob(b"stdout text")  # the blob comes back (e.g. from a remote): a hit again
        assert c.get_action(action_key(1)) is not None


def test_malformed_action_entry_is_a_miss_not_a_crash(cache_root: Path) -> None:
    with Cache.open() as c:
        c.put_action(action_key(1), make_result())
        path = c.path
    raw_put(path, b"ac", bytes.fromhex(action_key(1)), b"\xc1\xff garbage")
    raw_put(path, b"ac", bytes.fromhex(action_key(2)), msgpack.packb({"exit_code": "nope"}))
    raw_put(path, b"ac", bytes.fromhex(action_key(3)), msgpack.packb([1, 2, 3]))
    with Cache.open() as c:
        for n in (1, 2, 3):
            assert c.get_action(action_key(n)) is None
        s = c.stats()
        assert s.quarantined == 3
        assert s.misses == 3
        assert s.actions == 0
        c.put_action(action_key(1), make_result())
        assert c.get_action(action_key(1)) is not None


def test_entry_from_a_newer_maestro_is_a_miss_but_kept(cache_root: Path) -> None:
    key = bytes.fromhex(action_key(7))
    newer_result = make_result().model_dump(mode="json") | {"schema_version": SCHEMA_VERSION + 1}
    newer_payload = L.seal_action(key, msgpack.packb(newer_result))
    newer_envelope = {"schema_version": L.AC_FORMAT + 1, "whatever": b"comes next"}
    with Cache.open() as c:
        path = c.path
    raw_put(path, b"ac", key, newer_payload)
    raw_put(path, b"ac", bytes.fromhex(action_key(8)), msgpack.packb(newer_envelope))
    with Cache.open() as c:
        assert c.get_action(action_key(7)) is None
        assert c.get_action(action_key(8)) is None
        assert c.stats().quarantined == 0
        report = c.verify()
        assert report.clean and report.newer_schema == 2


def test_an_older_reader_sees_a_sealed_entry_as_newer_not_as_garbage(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A Maestro from before the envelope (ActionResult schema 1) reads a sealed value as a
    newer entry: a miss it leaves alone, not garbage it would quarantine."""
    monkeypatch.setattr(action_module, "SCHEMA_VERSION", 1)
    sealed = L.seal_action(bytes.fromhex(action_key(1)), make_result().encode())
    with pytest.raises(NewerSchemaError):
        decode_action(sealed)


def test_stats_count_hits_misses_and_time_saved(cache: Cache) -> None:
    out = cache.put_blob(b"o" * 1000)
    cache.put_action(action_key(1), make_result(stdout=out, cpu_s=1.5, wall_s=2.0))
    cache.put_action(action_key(2), make_result(cpu_s=0.25, wall_s=0.5))
    for _ in range(3):
        assert cache.get_action(action_key(1)) is not None
    assert cache.get_action(action_key(2)) is not None
    assert cache.get_action(action_key(99)) is None
    s = cache.stats()
    assert (s.hits, s.misses) == (4, 1)
    assert s.hit_rate == pytest.approx(0.8)
    assert s.cpu_seconds_saved == pytest.approx(3 * 1.5 + 0.25)
    assert s.wall_seconds_saved == pytest.approx(3 * 2.0 + 0.5)
    assert (s.blobs, s.actions) == (1, 2)
    assert s.blob_bytes == 1000
    assert s.bytes == 1000 + s.action_bytes and s.action_bytes > 0


def test_stats_are_shared_with_later_processes(cache_root: Path) -> None:
    with Cache.open() as c:
        c.put_action(action_key(1), make_result())
        c.get_action(action_key(1))
        c.get_action(action_key(2))
    # counters were batched in memory and must have been flushed on close
    with Cache.open() as c:
        s = c.stats()
        assert (s.hits, s.misses) == (1, 1)


def test_replacing_an_action_updates_bytes_and_references(cache: Cache) -> None:
    a = cache.put_blob(b"first")
    b = cache.put_blob(b"second")
    cache.put_action(action_key(1), make_result(stdout=a))
    cache.put_action(action_key(1), make_result(stdout=b))
    assert cache.stats().actions == 1
    report = cache.verify()
    assert report.clean and report.repairs == []


def test_bad_action_key_is_rejected(cache: Cache) -> None:
    with pytest.raises(CacheError):
        cache.put_action("not-hex", make_result())
    with pytest.raises(CacheError):
        cache.get_action("ab" * 31)


_text = st.text(max_size=30)
_floats = st.floats(min_value=0, max_value=1e6, allow_nan=False, allow_infinity=False)
_datetimes = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
)
_digests = st.builds(
    Digest, st.binary(min_size=32, max_size=32).map(bytes.hex), st.integers(0, 2**40)
)
_outcomes = st.builds(
    TestOutcome,
    node_id=_text,
    outcome=st.sampled_from(["passed", "failed", "skipped", "error", "xfailed", "xpassed"]),
    duration_s=_floats,
    path=st.none() | _text,
    line=st.none() | st.integers(0, 10**6),
    message=st.none() | _text,
    flaky=st.booleans(),
)
_results = st.builds(
    ActionResult,
    exit_code=st.integers(-255, 255),
    tests=st.lists(_outcomes, max_size=5),
    stdout=st.none() | _digests,
    stderr=st.none() | _digests,
    junit=st.none() | _digests,
    timing=st.builds(Timing, started_at=_datetimes, wall_s=_floats, cpu_s=_floats),
    provenance=st.builds(
        Provenance,
        maestro_version=_text,
        hostname=_text,
        python_version=_text,
        platform=_text,
        created_at=_datetimes,
    ),
    inputs=st.dictionaries(_text, _text, max_size=5),
    dynamic_deps=st.lists(_text, max_size=5),
)


@settings(max_examples=200, deadline=None)
@given(_results)
def test_action_result_serialization_roundtrips(result: ActionResult) -> None:
    assert decode_action(result.encode()) == result


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_decoding_arbitrary_bytes_raises_cache_error_only(data: bytes) -> None:
    with contextlib.suppress(CacheError):
        decode_action(data)


def test_provenance_starts_no_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every stored result carries it: platform.platform() forked `uname -p` after each run."""
    import subprocess

    from maestro.cache.action import Provenance

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"a process was started: {args}")

    monkeypatch.setattr(subprocess.Popen, "__init__", refuse)
    import platform

    monkeypatch.setattr(platform, "_uname_cache", None, raising=False)
    found = Provenance.current()
    assert found.platform.startswith(platform.system())


def test_a_runs_blobs_and_results_are_one_write(
    cache: Cache, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One write transaction (one fsync) per run, and the results find their blobs."""
    writes: list[object] = []
    original = Cache._write

    def counted(self: Cache, body: Any, *, grow: int = 0) -> Any:
        writes.append(body)
        return original(self, body, grow=grow)

    monkeypatch.setattr(Cache, "_write", counted)
    out, err = b"captured stdout " * 20, b"captured stderr " * 20
    digests = cache.put_run([out, err], [])  # no result yet: only the blobs
    assert len(writes) == 1
    result = make_result(stdout=digests[0], stderr=digests[1])
    writes.clear()
    assert cache.put_run([out, err], [(action_key(1), result)]) == digests
    assert len(writes) == 1
    found = cache.get_action(action_key(1))
    assert found is not None and found.stdout == digests[0]
    assert cache.get_blob(digests[1]) == err


def test_more_results_than_the_decoded_memo_holds_are_still_served(
    cache: Cache, monkeypatch: pytest.MonkeyPatch
) -> None:
    # pygments' 5,346 outcomes through a no-change run filled the memo past its 8 MiB and the
    # eviction's unpacking raised ValueError: the plan failed instead of serving the results
    from maestro.cache.store import _DecodedActions

    monkeypatch.setattr(_DecodedActions, "MAX_BYTES", 2_000)
    results = {n: make_result(stdout=cache.put_blob(f"out {n}".encode() * 50)) for n in range(12)}
    for n, result in results.items():
        cache.put_action(action_key(n), result)
    for _ in range(2):
        for n, result in results.items():
            assert cache.get_action(action_key(n)) == result
