"""File names that are not valid UTF-8.

A POSIX name is bytes. Python decodes the ones it reads (os.scandir, os.listdir, git output
parsed with os.fsdecode) with the file-system encoding and surrogateescape, so a byte that is not
UTF-8 survives as a lone surrogate ('notes_\\xff.txt' -> 'notes_\\udcff.txt'): os.fsencode gives
the exact name back, but a plain ``str.encode()``, msgpack, orjson or a strict log file raise.

Maestro keeps such names out of the graph and reports them instead; everything past the places
that read names (walk, git, watcher, user arguments) holds valid UTF-8 only. ``printable`` is how
such a name is shown or sent where only UTF-8 may go.
"""

from __future__ import annotations

import codecs

PRINTABLE_ERRORS = "maestro.printable"
"""A codec error handler: encodes what UTF-8 cannot as ``printable`` does (for msgpack)."""


def is_utf8(name: str) -> bool:
    """Whether a name (or any str) can be encoded to UTF-8, i.e. holds no lone surrogates."""
    if name.isascii():  # nearly every name: no encoding attempt
        return True
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def printable(name: str) -> str:
    """The name with each byte that is not UTF-8 as a ``\\xNN`` escape (valid UTF-8 itself).

    Lossy on purpose: for people, diagnostics, logs and UTF-8-only channels, never to open the
    file with (``os.fsencode`` gets the real name back)."""
    if is_utf8(name):
        return name
    return name.encode("utf-8", PRINTABLE_ERRORS).decode("utf-8")


def first_undecodable(rel: str) -> str | None:
    """The leading part of a relative posix path up to its first component that is not valid
    UTF-8 (a file, or a directory whose whole content is then concerned), or None."""
    if is_utf8(rel):
        return None
    parts = rel.split("/")
    for i, part in enumerate(parts):
        if not is_utf8(part):
            return "/".join(parts[: i + 1])
    return rel  # unreachable: some component holds the surrogate


def undecodable_message(*, directory: bool) -> str:
    """The diagnostic for a name that is not valid UTF-8: what happens and how to fix it."""
    if directory:
        return (
            "directory name is not valid UTF-8; Maestro leaves it and everything in it out of "
            "the graph — rename it to a UTF-8 name"
        )
    return (
        "file name is not valid UTF-8; Maestro leaves the file out of the graph — rename it to "
        "a UTF-8 name"
    )


def _escape(exc: UnicodeError) -> tuple[str, int]:
    if not isinstance(exc, UnicodeEncodeError):
        raise exc
    # U+DC80..U+DCFF are the bytes surrogateescape kept; any other lone surrogate (from JSON,
    # say) has no byte behind it and is shown as its code point
    escaped = [
        f"\\x{code - 0xDC00:02x}" if 0xDC80 <= code <= 0xDCFF else f"\\u{code:04x}"
        for code in map(ord, exc.object[exc.start : exc.end])
    ]
    return "".join(escaped), exc.end


codecs.register_error(PRINTABLE_ERRORS, _escape)
