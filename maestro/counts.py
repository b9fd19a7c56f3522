"""pytest's counts line ("1 failed, 2 passed, 3 deselected, 1 error"), one wording for every
client: the CLI's summary and the editor's last progress line say what pytest would say.

Its categories in pytest's order (``_pytest.terminal.KNOWN_TYPES``), each shown only when not 0,
with pytest's words: "warning" and "error" take a plural, the others are adjectives.
"""

from __future__ import annotations

from collections.abc import Mapping

TYPE_CHECKING = False  # the CLI's launch path must not load typing before pytest starts
if TYPE_CHECKING:
    from typing import Any

# (field of a run's counts, pytest's word, the colour pytest gives it)
PYTEST_ORDER: tuple[tuple[str, str, str], ...] = (
    ("failed", "failed", "red"),
    ("passed", "passed", "green"),
    ("skipped", "skipped", "yellow"),
    ("deselected", "deselected", "yellow"),
    ("xfailed", "xfailed", "yellow"),
    ("xpassed", "xpassed", "yellow"),
    ("warnings", "warning", "yellow"),
    ("errors", "error", "red"),
    ("subtests_passed", "subtests passed", "green"),
)
NONE_RAN = "no tests ran"


def plural(n: int, noun: str) -> str:
    """``n`` and ``noun``, in the plural unless ``n`` is 1: "1 file", "2 files", "0 files"."""
    return f"{n} {noun}{'s' * (n != 1)}"


def counts_parts(counts: Mapping[str, Any]) -> list[tuple[str, str]]:
    """``(text, colour)`` of each count pytest's line shows, in its order; the line is
    ``NONE_RAN`` when there is none. ``counts`` is keyed by the fields of PYTEST_ORDER."""
    parts = []
    for field, word, colour in PYTEST_ORDER:
        count = int(counts.get(field) or 0)
        if count:
            plural = "s" if word in ("warning", "error") and count != 1 else ""
            parts.append((f"{count} {word}{plural}", colour))
    return parts


def counts_line(counts: Mapping[str, Any]) -> str:
    """pytest's counts line as plain text."""
    return ", ".join(text for text, _ in counts_parts(counts)) or NONE_RAN
