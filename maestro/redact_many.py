"""Redacting many short strings at once: node ids, paths, the strings of a JSON value.

A :class:`~maestro.redaction.Redactor` call pays its detectors' trigger searches each time, tens
of microseconds even for a short text: thousands of node ids redacted one by one would cost a
run a noticeable share of its time. Joined by newlines they are scanned once, and split back.

A node id redacted here is what the local stores keep (action results, the decision log): the
marker's fingerprint is stable, so the same test maps to the same stored record run after run.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from maestro.redaction import Redacted, Redactor

MARKER_PREFIX = "[REDACTED:"
"""How every redaction marker starts: a stored node id holding it is not the id pytest knows."""


def is_redacted(text: str) -> bool:
    """Whether ``text`` holds a redaction marker (a stored node id that cannot be passed back
    to pytest as it is)."""
    return MARKER_PREFIX in text


def redact_each(redactor: Redactor, texts: Sequence[str]) -> list[Redacted]:
    """Each of ``texts`` redacted, in order, as if one by one."""
    if not texts:
        return []
    if len(texts) == 1 or any("\n" in t for t in texts):
        return [redactor.redact(t) for t in texts]
    joined = "\n".join(texts)
    found = redactor.redact(joined)
    if found == joined:
        return [Redacted(t) for t in texts]
    parts = found.split("\n")
    if len(parts) != len(texts):  # a finding spanned two texts: scan each alone
        return [redactor.redact(t) for t in texts]
    return [Redacted(p) for p in parts]


def redact_tree(value: Any, redactor: Redactor) -> Any:
    """``value`` (JSON-like: dicts, lists, strings, scalars) with every string, keys included,
    redacted, in one scan of all of them."""
    texts: list[str] = []
    _collect(value, texts)
    if not texts:
        return value
    unique = list(dict.fromkeys(texts))
    table = dict(zip(unique, redact_each(redactor, unique), strict=True))
    return _rebuild(value, table)


def _collect(value: Any, out: list[str]) -> None:
    if isinstance(value, str):
        out.append(value)
    elif isinstance(value, dict):
        for k, v in value.items():
            out.append(str(k))
            _collect(v, out)
    elif isinstance(value, list | tuple):
        for v in value:
            _collect(v, out)


def _rebuild(value: Any, table: dict[str, Redacted]) -> Any:
    if isinstance(value, str):
        return str(table[value])
    if isinstance(value, dict):
        return {str(table[str(k)]): _rebuild(v, table) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_rebuild(v, table) for v in value]
    return value
