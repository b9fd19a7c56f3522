"""Module constants copied, merged and updated at import (isort's profiles.py: ``plone =
black.copy()``, ``plone.update({...})``, ``appnexus = {**black, ...}``, ``profiles = {"black":
black, ...}``): a change to one re-runs the tests that read a name whose value changed, not
every test of every importer. Every importer still re-runs when such a statement runs other
code (``P.update(make())``) or calls a method that is not a plain copy or update."""

from __future__ import annotations

from precision_helpers import Workspace, ran_nodes

from maestro.graph.fingerprints import fingerprint_source

PROFILES = """
    BLACK = {"line_length": 88, "trailing_comma": True}
    PLONE = BLACK.copy()
    PLONE.update({"single_line": True})
    WIDE = {**BLACK, "line_length": 120}
    PROFILES = {"black": BLACK, "plone": PLONE, "wide": WIDE}
    OTHER = {"line_length": 79}


    def width(name):
        return PROFILES[name]["line_length"]


    def other():
        return OTHER["line_length"]
    """

TESTS = """
    from pkg import profiles


    def test_plone_width():
        assert profiles.width("plone") == 88


    def test_other():
        assert profiles.other() == 79
    """

IMPORTER = "import pkg.profiles\n\n\ndef test_imports():\n    pass\n"


def _workspace(ws: Workspace, text: str) -> Workspace:
    ws.write("pkg/profiles.py", text)
    ws.write("tests/test_profiles.py", TESTS)
    ws.write("tests/test_imports.py", IMPORTER)
    assert ws.run().failed == 0
    return ws


def test_a_constant_copied_and_merged_at_import_reruns_only_the_readers_of_what_changed(
    ws: Workspace,
) -> None:
    _workspace(ws, PROFILES)
    ws.edit("pkg/profiles.py", '"line_length": 88', '"line_length": 89')
    summary = ws.run()
    # BLACK -> PLONE, WIDE, PROFILES: width() reads PROFILES; other() and the importer do not
    assert ran_nodes(summary) == ["tests/test_profiles.py::test_plone_width"]
    assert summary.failed == 1  # as plain pytest: PLONE is a copy of the new BLACK


def test_an_update_that_runs_other_code_reruns_every_importer(ws: Workspace) -> None:
    # the update's argument is computed by a function: it may keep what it is given
    text = PROFILES.replace(
        'PLONE.update({"single_line": True})', "PLONE.update(_extra(BLACK))"
    ).replace(
        "BLACK = {", 'def _extra(base):\n        return {"single_line": True}\n\n\n    BLACK = {', 1
    )
    _workspace(ws, text)
    ws.edit("pkg/profiles.py", '"line_length": 88', '"line_length": 89')
    summary = ws.run()
    assert ran_nodes(summary) == [
        "tests/test_imports.py::test_imports",
        "tests/test_profiles.py::test_other",
        "tests/test_profiles.py::test_plone_width",
    ]
    assert summary.failed == 1


def test_which_statements_count_as_computed() -> None:
    def computed(text: str) -> list[str]:
        return sorted(fingerprint_source(text.encode()).values)

    assert computed("B = {'a': 1}\nP = B.copy()\nP.update({'x': 2})\nA = {**B}\n") == [
        "A", "B", "P",
    ]  # fmt: skip
    # a call of other code, a keyword, another method, an unpacked non-dict: module-level code
    assert computed("B = {'a': 1}\nP = B.copy()\nP.update(make())\n") == ["B"]
    assert "P" in fingerprint_source(b"B = {'a': 1}\nP = B.copy()\nP.update(x=1)\n").module_loads
    assert computed("B = {'a': 1}\nB.clear()\n") == []
    assert computed("B = [1]\nA = {**B}\n") == ["B"]
    assert computed("B = [1]\nB.append(2)\nC = tuple(B)\n") == ["B", "C"]
