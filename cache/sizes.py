"""Human byte sizes for the CLI: `1GB` (decimal), `1GiB` or `1G` (binary), `512` (bytes)."""

from __future__ import annotations

import re
from typing import Any

from maestro.errors import CacheError

_UNITS = {
    "": 1,
    "b": 1,
    "kb": 10**3,
    "mb": 10**6,
    "gb": 10**9,
    "tb": 10**12,
    "k": 2**10,
    "m": 2**20,
    "g": 2**30,
    "t": 2**40,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
    "tib": 2**40,
}
_SIZE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*")


def parse_size(text: str) -> int:
    """Parse a size; SI suffixes (KB, MB, GB) are powers of 10, IEC and bare letters powers of 2."""
    match = _SIZE.fullmatch(text)
    unit = match.group(2).lower() if match else ""
    if not match or unit not in _UNITS:
        raise CacheError(
            f"not a size: {text!r}", hint="use a number with an optional unit, e.g. 500MB, 2GiB, 1G"
        )
    return int(float(match.group(1)) * _UNITS[unit])


def size_field(value: Any) -> Any:
    """A pydantic before-validator for byte-size fields: `256MiB`-style text becomes bytes;
    integers, digit strings and None pass on to the field's own validation."""
    if isinstance(value, str) and not value.strip().isdigit():
        try:
            return parse_size(value)
        except CacheError as exc:
            raise ValueError(exc.message) from exc
    return value


def format_size(n: int) -> str:
    """Binary units with one decimal: what `du -h` users expect."""
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")
