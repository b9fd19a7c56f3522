"""A bounded, thread-safe memo: the least recently used entries are dropped first."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable, Iterable, Sequence
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class LruCache(Generic[K, V]):
    """At most ``size`` entries (it may be changed; the next write applies it). Thread-safe:
    a daemon's worker thread fills the memo its event loop reads."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: OrderedDict[K, V] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._items)

    def get(self, key: K) -> V | None:
        """The value held for ``key``, now the most recently used; None when there is none."""
        with self._lock:
            found = self._items.get(key)
            if found is not None:
                self._items.move_to_end(key)
            return found

    def get_many(self, keys: Sequence[K]) -> list[V | None]:
        """:meth:`get` of each key, under one lock."""
        with self._lock:
            items = self._items
            out: list[V | None] = []
            for key in keys:
                found = items.get(key)
                if found is not None:
                    items.move_to_end(key)
                out.append(found)
            return out

    def put(self, key: K, value: V) -> None:
        """Hold ``value`` for ``key`` as the most recently used entry."""
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            self._trim()

    def add(self, entries: Iterable[tuple[K, V]]) -> None:
        """Hold the entries whose keys are not held yet, as the most recent ones (in order);
        the held ones keep their value and place."""
        with self._lock:
            for key, value in entries:
                self._items.setdefault(key, value)
            self._trim()

    def items(self) -> list[tuple[K, V]]:
        """The entries, least recently used first."""
        with self._lock:
            return list(self._items.items())

    def _trim(self) -> None:
        while len(self._items) > self.size:
            self._items.popitem(last=False)
