"""The arguments a run gives pytest keep its files' import order, and the plugin keeps the
tests they name of a file named whole for that (engine/testing.py `imported_in_order`, the
plugin's `only`)."""

from __future__ import annotations

import types

import pytest
from engine_workspace import load_plugin

from maestro.engine.testing import imported_in_order


@pytest.fixture
def plugin(monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    return load_plugin(monkeypatch)


def test_a_file_named_by_ids_after_one_named_whole_is_named_whole() -> None:
    args, only = imported_in_order(
        [
            ("t/a.py", ["t/a.py::test_1"]),  # ids before any whole file: pytest keeps them
            ("t/b.py", ["t/b.py"]),
            ("t/c.py", ["t/c.py::test_2", "t/c.py::K::test_3"]),
            ("t/d.py", ["t/d.py"]),
        ]
    )
    assert args == ["t/a.py::test_1", "t/b.py", "t/c.py", "t/d.py"]
    assert only == ["t/c.py::test_2", "t/c.py::K::test_3"]


def test_only_ids_or_only_whole_files_are_left_as_they_are() -> None:
    ids = [("t/a.py", ["t/a.py::x"]), ("t/b.py", ["t/b.py::y"])]
    assert imported_in_order(ids) == (["t/a.py::x", "t/b.py::y"], [])
    whole = [("t/a.py", ["t/a.py"]), ("t/b.py", ["t/b.py"])]
    assert imported_in_order(whole) == (["t/a.py", "t/b.py"], [])


def test_the_plugin_keeps_what_pytest_would_take_for_each_id(plugin: types.ModuleType) -> None:
    nodes = [
        "t/c.py::test_2",
        "t/c.py::test_20",
        "t/c.py::test_p[1]",
        "t/c.py::test_p[2]",
        "t/c.py::K::test_3",
        "t/c.py::K::test_4",
        "t/c.py::L::test_3",
        "t/d.py::test_9",
    ]
    items = [types.SimpleNamespace(nodeid=n) for n in nodes]
    only = frozenset({"t/c.py::test_2", "t/c.py::test_p", "t/c.py::K"})
    dropped = plugin.not_kept(items, only, lambda item: item.nodeid.split("::")[0])
    # test_20 is not test_2's; a file no id names keeps every test
    assert dropped == {"t/c.py::test_20", "t/c.py::L::test_3"}
