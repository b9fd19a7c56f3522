"""The bounded memo shared by the fingerprint memo and a policy set's decision memo."""

from __future__ import annotations

import threading

from maestro.lru import LruCache


def test_the_least_recently_used_goes_first() -> None:
    memo: LruCache[str, int] = LruCache(2)
    memo.put("a", 1)
    memo.put("b", 2)
    assert memo.get("a") == 1  # now the most recent
    memo.put("c", 3)
    assert memo.get("b") is None
    assert memo.items() == [("a", 1), ("c", 3)]
    assert memo.get_many(["c", "b", "a"]) == [3, None, 1]
    assert memo.items() == [("c", 3), ("a", 1)]  # in the order asked


def test_add_keeps_what_is_held_and_a_new_size_applies_at_the_next_write() -> None:
    memo: LruCache[str, int] = LruCache(3)
    memo.put("a", 1)
    memo.add([("a", 10), ("b", 2), ("c", 3), ("d", 4)])
    assert memo.items() == [("b", 2), ("c", 3), ("d", 4)]
    memo.size = 1
    memo.put("e", 5)
    assert memo.items() == [("e", 5)] and len(memo) == 1


def test_threads_share_it() -> None:
    memo: LruCache[int, int] = LruCache(100)

    def fill(start: int) -> None:
        for i in range(start, start + 1000):
            memo.put(i % 150, i)
            memo.get((i * 7) % 150)

    threads = [threading.Thread(target=fill, args=(n * 1000,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(memo) == 100
