"""pytest node ids, split as pytest splits them.

A node id is ``path::Class::test[params]``; a parameter id may itself hold ``::`` (an IPv6
address, a C++ name), so only the part before the first ``[`` is split.
"""

from __future__ import annotations


def parts(node_id: str) -> list[str]:
    """``a.py::T::t[x::y]`` -> ``["a.py", "T", "t[x::y]"]``."""
    head, bracket, params = node_id.partition("[")
    names = head.split("::")
    names[-1] += bracket + params
    return names


def file_of(node_id: str) -> str:
    """The test file of a node id, as the graph names it (its target): ``a.py::T::t[x::y]`` ->
    ``a.py``; a path is its own file."""
    return node_id.split("::", 1)[0]


def base(node_id: str) -> str:
    """The node id without its parametrization: ``a.py::T::t[1]`` -> ``a.py::T::t``."""
    return node_id.partition("[")[0]


def params(node_id: str) -> str:
    """``[1]`` of ``a.py::t[1]``; "" for a test without parameters."""
    _, bracket, rest = node_id.partition("[")
    return bracket + rest
