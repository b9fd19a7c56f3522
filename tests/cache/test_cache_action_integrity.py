"""Action-cache values carry a digest: an edited entry is quarantined and re-run, never served."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import msgpack
from cache_helpers import action_key, flip_failed_to_passed, make_result, raw_get, raw_put

from maestro.cache import Cache


def test_honest_action_entry_round_trips_and_verifies_clean(cache: Cache) -> None:
    result = make_result(stdout=cache.put_blob(b"captured output"))
    cache.put_action(action_key(1), result)
    assert cache.get_action(action_key(1)) == result
    report = cache.verify()
    assert report.clean and report.actions_checked == 1 and report.repairs == []
    assert cache.stats().quarantined == 0


def test_failure_edited_to_a_pass_in_lmdb_is_quarantined_not_served(cache_root: Path) -> None:
    with Cache.open() as c:
        c.put_action(action_key(1), make_result(exit_code=1))
        path = c.path
    flip_failed_to_passed(path, action_key(1))
    with Cache.open() as c:
        assert c.get_action(action_key(1)) is None
        s = c.stats()
        assert (s.quarantined, s.actions, s.action_bytes, s.misses) == (1, 0, 0, 1)
    quarantined = raw_get(path, b"quarantine", b"a" + bytes.fromhex(action_key(1)))
    assert quarantined is not None
    record = msgpack.unpackb(quarantined)
    assert "digest" in record["reason"] and b"\xa6passed" in record["data"]
    with Cache.open() as c:  # the re-run stores an honest result again
        c.put_action(action_key(1), make_result(exit_code=1))
        assert c.get_action(action_key(1)) is not None


def test_result_rewritten_as_plain_msgpack_is_quarantined_not_served(cache_root: Path) -> None:
    """A valid-looking value without the digest envelope (a downgrade of the format) is no hit."""
    honest = make_result(exit_code=1)
    doctored = honest.model_copy(
        update={
            "exit_code": 0,
            "tests": [t.model_copy(update={"outcome": "passed"}) for t in honest.tests],
        }
    )
    with Cache.open() as c:
        c.put_action(action_key(2), honest)
        path = c.path
    raw_put(path, b"ac", bytes.fromhex(action_key(2)), doctored.encode())
    with Cache.open() as c:
        assert c.get_action(action_key(2)) is None
        assert c.stats().quarantined == 1


def test_value_copied_under_another_action_key_is_refused(cache_root: Path) -> None:
    """The digest covers the key: a passing entry copied over a failing one's key is no hit."""
    with Cache.open() as c:
        c.put_action(action_key(1), make_result(exit_code=0))
        c.put_action(action_key(2), make_result(exit_code=1))
        path = c.path
    passing = raw_get(path, b"ac", bytes.fromhex(action_key(1)))
    assert passing is not None
    raw_put(path, b"ac", bytes.fromhex(action_key(2)), passing)
    with Cache.open() as c:
        assert c.get_action(action_key(2)) is None
        got = c.get_action(action_key(1))
        assert got is not None and got.exit_code == 0


def test_verify_reports_and_quarantines_an_edited_action_entry(cache_root: Path) -> None:
    with Cache.open() as c:
        c.put_action(action_key(1), make_result(exit_code=1))
        c.put_action(action_key(2), make_result(exit_code=1))
        path = c.path
    flip_failed_to_passed(path, action_key(1))
    with Cache.open() as c:
        report = c.verify()
        assert [(p.kind, p.key) for p in report.corrupt] == [("action", action_key(1))]
        assert "digest" in report.corrupt[0].reason
        assert report.actions_checked == 2
        s = c.stats()
        assert (s.quarantined, s.actions) == (1, 1)
        assert c.verify().clean  # quarantined, so the next pass finds nothing
        assert c.get_action(action_key(1)) is None
        assert c.get_action(action_key(2)) is not None


def _in_another_process(code: str, path: Path) -> None:
    """Run `code` (with `path`, the helpers and Cache in scope) in a separate interpreter, as
    another maestro process would write the cache while this one keeps it open."""
    here = Path(__file__).parent
    script = (
        "import sys; from pathlib import Path; "
        f"sys.path.insert(0, {str(here)!r}); "
        "from cache_helpers import *; from maestro.cache import Cache; "
        f"path = Path({str(path)!r}); " + code
    )
    subprocess.run([sys.executable, "-c", script], check=True, cwd=here.root, timeout=60)


def test_an_open_cache_sees_every_rewrite_of_an_entry_it_decoded_before(cache: Cache) -> None:
    """A long-lived process (the daemon) keeps decoded results, yet an entry edited on disk is
    quarantined and an entry another process stored again is read as it is now."""
    cache.put_action(action_key(1), make_result(exit_code=1))
    first = cache.get_action(action_key(1))
    assert first is not None and first.exit_code == 1
    assert cache.get_action(action_key(1)) is first  # the same bytes are not decoded twice
    _in_another_process(f"flip_failed_to_passed(path, {action_key(1)!r})", cache.path)
    assert cache.get_action(action_key(1)) is None
    assert cache.stats().quarantined == 1
    cache.put_action(action_key(2), make_result(exit_code=1))
    assert cache.get_action(action_key(2)) is not None
    _in_another_process(
        f"c = Cache.open(path); c.put_action({action_key(2)!r}, make_result(exit_code=0)); "
        "c.close()",
        cache.path,
    )
    again = cache.get_action(action_key(2))
    assert again is not None and again.exit_code == 0


def test_a_kept_results_json_dump_is_made_once_and_only_for_that_very_result(
    cache: Cache,
) -> None:
    cache.put_action(action_key(3), make_result(exit_code=1))
    kept = cache.get_action(action_key(3))
    assert kept is not None
    dumped = cache.action_json(action_key(3), kept)
    assert dumped == kept.model_dump(mode="json")
    assert cache.action_json(action_key(3), kept) is dumped
    # an equal result that is not the one kept (an update, another key's) is dumped afresh
    other = kept.model_copy(update={"exit_code": 0})
    assert cache.action_json(action_key(3), other)["exit_code"] == 0
    assert cache.action_json(action_key(4), kept) is not dumped
