"""A node id's test file is read one way everywhere (model, policy, engine, editor, CLI): the
path before the first ``::``, whatever a parameter id holds."""

from __future__ import annotations

import pytest

from maestro.nodeids import base, file_of, params, parts


@pytest.mark.parametrize(
    ("node_id", "file"),
    [
        ("a.py::T::t[x::y]", "a.py"),
        ("tests/sub/test_x.py::test_y", "tests/sub/test_x.py"),
        ("tests/test_v6.py::test_addr[::1]", "tests/test_v6.py"),
        ("tests/test_x.py", "tests/test_x.py"),
        ("tests/", "tests/"),
    ],
)
def test_file_of(node_id: str, file: str) -> None:
    assert file_of(node_id) == file


def test_file_of_agrees_with_parts_for_plain_paths() -> None:
    node = "pkg/test_a.py::TestA::test_b[1-a::b]"
    assert file_of(node) == parts(node)[0]
    assert base(node) == "pkg/test_a.py::TestA::test_b" and params(node) == "[1-a::b]"
