"""Workspace builder and helpers shared by the `maestro test` tests."""

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


def ran(summary: testing.Summary) -> list[str]:
    """Test files the run executed (not served from the cache), sorted."""
    return sorted(f.target for f in summary.files if not f.cached)


def outcomes(summary: testing.Summary) -> dict[str, str]:
    """Each node's outcome in a run's answer, served or run."""
    return {t.node_id: t.outcome for r, _ in summary.results() for t in r.tests}
