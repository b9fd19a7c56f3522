"""Global inputs count only through the sections that matter; declared targets; bad config."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from maestro.errors import ConfigError
from maestro.graph.build import BuildGraph, Change

Make = Callable[[dict[str, str | bytes]], Path]
Build = Callable[..., BuildGraph]

PYPROJECT = """\
[project]
name = "demo"
dependencies = ["requests>=2"]

[tool.ruff]
line-length = 100

[tool.pytest.ini_options]
addopts = "-q"
"""


def _impacted(graph: BuildGraph, path: str, old: str, new: str) -> set[str]:
    change = Change(path, "modified", old=old.encode(), new=new.encode(), old_known=True)
    return {i.target for i in graph.impacted([change])}


@pytest.fixture
def ws(make_ws: Make) -> Path:
    return make_ws(
        {
            "pyproject.toml": PYPROJECT,
            "pkg/__init__.py": "",
            "tests/test_a.py": "import pkg\n",
            "tests/test_b.py": "",
            "README.md": "hello",
        }
    )


def test_tool_ruff_change_impacts_nothing(ws: Path, build: Build) -> None:
    graph = build(ws)
    new = PYPROJECT.replace("line-length = 100", "line-length = 88")
    assert _impacted(graph, "pyproject.toml", PYPROJECT, new) == set()


def test_pytest_section_change_impacts_every_test(ws: Path, build: Build) -> None:
    graph = build(ws)
    new = PYPROJECT.replace('addopts = "-q"', 'addopts = "-x"')
    impacts = graph.impacted(
        [Change("pyproject.toml", old=PYPROJECT.encode(), new=new.encode(), old_known=True)]
    )
    assert {i.target for i in impacts} == {"tests/test_a.py", "tests/test_b.py"}
    assert impacts[0].chain[-1].target == "pyproject.toml#tool.pytest"


def test_dependency_change_impacts_every_test(ws: Path, build: Build) -> None:
    graph = build(ws)
    new = PYPROJECT.replace('"requests>=2"', '"requests>=2.31"')
    assert _impacted(graph, "pyproject.toml", PYPROJECT, new) == {
        "tests/test_a.py",
        "tests/test_b.py",
    }


def test_unparsable_pyproject_change_is_conservative(ws: Path, build: Build) -> None:
    graph = build(ws)
    assert _impacted(graph, "pyproject.toml", PYPROJECT, "[broken") == {
        "tests/test_a.py",
        "tests/test_b.py",
    }


def test_readme_and_requirements(ws: Path, build: Build) -> None:
    graph = build(ws)
    assert graph.impacted([Change("README.md")]) == []
    (ws / "requirements-dev.txt").write_text("pytest\n")
    tests = {i.target for i in graph.impacted([Change("requirements-dev.txt", "added")])}
    assert tests == {"tests/test_a.py", "tests/test_b.py"}


def test_declared_targets_srcs_deps_and_critical_path(make_ws: Make, build: Build) -> None:
    root = make_ws(
        {
            "maestro.toml": """
[targets.docs]
srcs = ["docs/**/*.md"]
cmd = "mkdocs build"

[targets.site]
srcs = ["site/*.html"]
deps = ["docs"]

[targets.deploy]
deps = ["site"]
inputs = ["deploy.yaml"]
""",
            "docs/index.md": "",
            "docs/guide/intro.md": "",
            "site/index.html": "",
            "deploy.yaml": "",
            "notes.md": "",
        }
    )
    graph = build(root)
    impacts = {i.target: i for i in graph.impacted([Change("docs/guide/intro.md")])}
    assert set(impacts) == {"//docs", "//site", "//deploy"}
    assert [h.edge.kind for h in impacts["//deploy"].chain] == ["dep", "dep", "src"]
    assert {i.target for i in graph.impacted([Change("notes.md")])} == set()
    # a new file matching a glob is picked up
    assert {i.target for i in graph.impacted([Change("docs/new.md", "added")])} >= {"//docs"}
    assert graph.critical_path() == ["docs", "site", "deploy"]
    assert graph.critical_path({"docs": 5.0}) == ["docs", "site", "deploy"]


@pytest.mark.parametrize(
    ("text", "where", "needle"),
    [
        ("[targets.docs]\nsrcs = 'docs/*.md'\n", "maestro.toml:2", "targets.docs.srcs"),
        ("[targets.docs]\nsrc = ['x']\n", "maestro.toml:2", "targets.docs.src"),
        ("[targets.a]\ndeps = ['missing']\n", "maestro.toml:2", "not declared"),
        ("[targets.docs\nsrcs = []\n", "maestro.toml:1", "malformed TOML"),
        ("roots = 3\n", "maestro.toml:1", "roots"),
    ],
)
def test_malformed_config_names_file_line_and_key(
    make_ws: Make, text: str, where: str, needle: str
) -> None:
    root = make_ws({"maestro.toml": text})
    with pytest.raises(ConfigError) as info:
        BuildGraph.build(root)
    assert info.value.where == where
    assert needle in info.value.message
    assert info.value.hint


def test_pyproject_tool_maestro_error_line(make_ws: Make) -> None:
    root = make_ws(
        {"pyproject.toml": "[project]\nname='x'\n\n[tool.maestro.targets.web]\ncmd = 3\n"}
    )
    with pytest.raises(ConfigError) as info:
        BuildGraph.build(root)
    assert info.value.where == "pyproject.toml:5"
    assert "tool.maestro.targets.web.cmd" in info.value.message


def test_target_cycle_is_a_clear_error(make_ws: Make) -> None:
    root = make_ws({"maestro.toml": "[targets.a]\ndeps=['b']\n[targets.b]\ndeps=['a']\n"})
    with pytest.raises(ConfigError, match="cycle: a -> b -> a"):
        BuildGraph.build(root)
