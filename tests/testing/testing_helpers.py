"""Workspace builder and helpers shared by the `maestro test` tests."""

from __future__ import annotations

import textwrap
from pathlib import Path

from maestro.cache import Cache
from maestro.engine import testing
from maestro.engine.interpreter import Interpreter
from maestro.graph.build import BuildGraph
from maestro.paths import graph_index_path

FILES = {
    "pyproject.toml": """
        [project]
        name = "demo"
        version = "0"

        [tool.pytest.ini_options]
        testpaths = ["tests"]

        [tool.ruff]
        line-length = 100
        """,
    "README.md": "# demo\n",
    "pkg/__init__.py": "",
    "pkg/a.py": "def add(a, b):\n    return a + b\n",
    "pkg/b.py": "def mul(a, b):\n    return a * b\n",
    "pkg/c.py": "from pkg.b import mul\n\n\ndef square(x):\n    return mul(x, x)\n",
    "tests/test_a.py": "from pkg.a import add\n\n\ndef test_add():\n    assert add(1, 2) == 3\n",
    "tests/test_b.py": "from pkg.b import mul\n\n\ndef test_mul():\n    assert mul(2, 3) == 6\n",
    "tests/test_c.py": (
        "from pkg.c import square\n\n\ndef test_square():\n    assert square(3) == 9\n\n\n"
        "def test_square_zero():\n    assert square(0) == 0\n"
    ),
    "tests/test_data.py": """
        import pathlib

        def test_data():
            assert pathlib.Path("tests/data.txt").read_text().strip() == "ok"
        """,
    "tests/data.txt": "ok\n",
}


class Workspace:
    """A workspace on disk plus helpers to edit it and run `maestro test` on it in-process."""

    def __init__(self, root: Path, interpreter: Interpreter) -> None:
        self.root = root
        self.interpreter = interpreter

    def write(self, rel: str, text: str) -> None:
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"))

    def edit(self, rel: str, old: str, new: str) -> None:
        path = self.root / rel
        text = path.read_text()
        assert old in text, f"{old!r} not in {rel}"
        path.write_text(text.replace(old, new))

    def graph(self) -> BuildGraph:
        return BuildGraph.build(self.root, index_path=graph_index_path(self.root))

    def run(self, selection: testing.Selection | None = None) -> testing.Summary:
        graph = self.graph()
        with Cache.open() as cache:
            return testing.run(graph, cache, self.interpreter, selection or testing.Selection())

    def plan(self, selection: testing.Selection | None = None) -> testing.Plan:
        with Cache.open() as cache:
            return testing.plan(
                self.graph(), cache, self.interpreter, selection or testing.Selection()
            )


def ran(summary: testing.Summary) -> list[str]:
    """Test files the run executed (not served from the cache), sorted."""
    return sorted(f.target for f in summary.files if not f.cached)
