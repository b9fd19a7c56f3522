"""Redacting many short strings at once: the node ids of a run's results.

A :class:`~maestro.redaction.Redactor` call pays its detectors' trigger searches each time, tens
of microseconds even for a short text: thousands of node ids redacted one by one would cost a
run a noticeable share of its time. Joined by newlines they are scanned once, and split back.

A node id redacted here is what the action results keep: the marker's fingerprint is stable, so
the same test maps to the same stored record run after run.
"""

from __future__ import annotations

from collections.abc import Sequence

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
    # what changed is redacted again alone: a pattern may read across the newline into the
    # next text (`authorization:` then a value), and a stored id must not depend on its
    # neighbours, which differ when only some of a file's tests ran
    return [
        Redacted(t) if p == t else redactor.redact(t) for t, p in zip(texts, parts, strict=True)
    ]
