"""A small workspace for node-level selection tests, and helpers to run `maestro test` on it."""

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
        """,
    "pkg/__init__.py": "",
    "pkg/calc.py": """
        RATE = 2


        def double(x):
            return x * RATE


        def triple(x):
            return x * 3


        def combo(x):
            return double(x) + 1
        """,
    "tests/test_calc.py": """
        from pkg import calc


        def test_double():
            assert calc.double(2) == 2 * calc.RATE


        def test_triple():
            assert calc.triple(2) == 6


        def test_combo():
            assert calc.combo(1) == 1 + calc.RATE
        """,
    "tests/test_other.py": """
        import pkg.calc


        def test_imports_only():
            assert pkg.calc.RATE > 0
        """,
    "tests/test_data.py": """
        import pathlib


        def test_reads():
            assert pathlib.Path("tests/values.txt").read_text().strip() in ("ok", "fine")


        def test_does_not_read():
            assert True
        """,
    "tests/values.txt": "ok\n",
}


class Workspace:
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
        with Cache.open() as cache:
            return testing.run(
                self.graph(), cache, self.interpreter, selection or testing.Selection()
            )

    def plan(self) -> testing.Plan:
        with Cache.open() as cache:
            return testing.plan(self.graph(), cache, self.interpreter, testing.Selection())


def ran_nodes(summary: testing.Summary) -> list[str]:
    """Node ids pytest executed in this run (not served from the cache), sorted."""
    return sorted(summary.report.results) if summary.report is not None else []
