"""What a test that failed in a run of part of its file is confirmed against: every test before
it in its file, wherever the state it needs lives. A test file's own globals are one place
(test_fidelity_trials); these are the others a narrower confirmation would have to keep: a
package module's global an earlier test configures (structlog's `configure`), and an object a
package's instance cache hands to each test that asks for it, which an earlier test changed
(python-dateutil's `tzstr` and `tzoffset` factories). In each, the changed function runs only in
the later test, so node-level selection runs that test alone, where it fails; plain pytest
passes it."""

from __future__ import annotations

import textwrap

import pytest
from test_fidelity_trials import outcomes, pytest_says
from testing_helpers import Workspace, ran

SETTINGS = {
    "pkg/settings.py": """
        MODE = "plain"


        def configure(mode):
            global MODE
            MODE = mode
        """,
    "pkg/render.py": """
        from pkg import settings


        def render(x):
            return f"{settings.MODE}:{x}"
        """,
    "tests/test_shared.py": """
        from pkg import render, settings


        def test_configure():
            settings.configure("fancy")


        def test_other():
            assert True


        def test_uses():
            assert render.render(1) == "fancy:1"
        """,
}

CACHED = {
    "pkg/zones.py": """
        _made = {}


        class Zone:
            def __init__(self, name):
                self.name = name
                self.tags = []


        def get(name):
            if name not in _made:
                _made[name] = Zone(name)
            return _made[name]


        def describe(zone):
            return ",".join(zone.tags)
        """,
    "tests/test_shared.py": """
        from pkg import zones


        def test_configure():
            zones.get("utc").tags.append("fixed")


        def test_other():
            assert True


        def test_uses():
            assert zones.describe(zones.get("utc")) == "fixed"
        """,
}

# an edit of a function only test_uses runs
EDITS = {
    "settings": (
        "pkg/render.py",
        'return f"{settings.MODE}:{x}"',
        'return settings.MODE + ":" + str(x)',
    ),
    "cached": ("pkg/zones.py", 'return ",".join(zone.tags)', 'return ",".join(list(zone.tags))'),
}


@pytest.mark.parametrize("where", ["cached", pytest.param("settings", marks=pytest.mark.extended)])
def test_a_failure_needing_state_an_earlier_test_left_in_a_package_is_confirmed(
    ws: Workspace, where: str
) -> None:
    for rel, text in (SETTINGS if where == "settings" else CACHED).items():
        ws.write(rel, text)
    node = "tests/test_shared.py::test_uses"
    assert pytest_says(ws)[node] == "passed"
    ws.run()
    ws.edit("tests/test_shared.py", "assert True", "assert 1")  # a first run may judge it whole
    ws.run()  # every node has a per-test record now
    path, old, new = EDITS[where]
    ws.edit(path, old, new)
    truth = pytest_says(ws)
    assert truth[node] == "passed"
    summary = ws.run()
    assert {n: outcomes(summary).get(n) for n in truth} == truth
    assert summary.exit_code == 0
    assert summary.confirmed == [
        f"{node} failed when run without the other tests of its file; its file re-ran up to it, "
        "as pytest runs it: passed"
    ]
    again = ws.run()  # the confirmed pass is what was stored
    assert "tests/test_shared.py" not in ran(again) and outcomes(again)[node] == "passed"


def test_several_tests_confirmed_for_one_reason_are_told_in_one_line(ws: Workspace) -> None:
    # docopt-ng: a partial run's failures confirmed by their file's run printed one long line
    # per test
    for rel, text in CACHED.items():
        ws.write(rel, text)
    ws.write(
        "tests/test_shared.py",
        textwrap.dedent(CACHED["tests/test_shared.py"])
        + "\n\ndef test_uses_too():\n    assert zones.describe(zones.get('utc')) == 'fixed'\n",
    )
    ws.run()
    ws.edit("tests/test_shared.py", "assert True", "assert 1")
    ws.run()  # every node has a per-test record now
    path, old, new = EDITS["cached"]
    ws.edit(path, old, new)
    truth = pytest_says(ws)
    summary = ws.run()
    assert {n: outcomes(summary).get(n) for n in truth} == truth
    assert summary.confirmed == [
        "2 tests of tests/test_shared.py (test_uses, test_uses_too) failed when run without the"
        " other tests of their file; the file re-ran up to them, as pytest runs it: all passed"
    ]
