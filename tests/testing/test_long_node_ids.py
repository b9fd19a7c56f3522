"""A node id longer than 16 MiB: python-multipart 0.0.34 parametrizes a test with
``b"\\r\\n" * 5_000_000``, whose id (the value's text) is 10 MB; its two such tests put 20 MB of
node ids on the plugin's "collected" line. The runner read event lines of at most 16 MiB and
dropped a longer one: `maestro test` said "3 files did not finish (not cached)" and exited 2
where pytest says "188 passed" (through the daemon: "no tests ran"). Event lines are now read
whole however long. The real console script beside plain pytest on the lean project
interpreter."""

from __future__ import annotations

from pathlib import Path

from console_script import twice_as_pytest

# ids of 9 MB each: the collected line holds both (over 16 MiB). Methods named after their
# value, as python-multipart's parametrizing metaclass names them (pytest's own ids of long
# values are short: value0)
LONG = """import unittest


class TestLong(unittest.TestCase):
    pass


for _value in ("a" * 9_000_000, "b" * 9_000_000):
    setattr(TestLong, "test_" + _value, lambda self: None)


def test_short():
    pass
"""


def test_node_ids_over_16_mib_in_all_are_read_and_served(isolated: Path) -> None:
    said = twice_as_pytest(isolated / "ws", "test_long.py", LONG, isolated, "3 passed")
    assert "1 cached" in said, said
