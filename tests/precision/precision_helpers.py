"""A small workspace for node-level selection tests, and helpers to run `maestro test` on it."""

from __future__ import annotations

from engine_workspace import Workspace as Workspace  # the test files import it from here

from maestro.engine import testing

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


def ran_nodes(summary: testing.Summary) -> list[str]:
    """Node ids pytest executed in this run (not served from the cache), sorted."""
    return sorted(summary.report.results) if summary.report is not None else []
