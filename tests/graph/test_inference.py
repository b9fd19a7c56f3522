"""Import inference and resolution against fixture workspaces: one rule per test."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from maestro.graph.build import BuildGraph, Change

Make = Callable[[dict[str, str | bytes]], Path]
Build = Callable[..., BuildGraph]


def impacted_tests(graph: BuildGraph, *paths: str) -> set[str]:
    return {i.target for i in graph.impacted([Change(p) for p in paths])}


def test_src_layout_init_chain_and_from_import_submodule(make_ws: Make, build: Build) -> None:
    root = make_ws(
        {
            "pyproject.toml": "[project]\nname = 'pkg'\n",
            "src/pkg/__init__.py": "",
            "src/pkg/sub/__init__.py": "from . import helpers\n",
            "src/pkg/sub/helpers.py": "X = 1\n",
            "src/pkg/sub/core.py": "def f(): ...\n",
            "src/pkg/other.py": "",
            "tests/test_core.py": "from pkg.sub import core\n",
            "tests/test_other.py": "import pkg.other\n",
        }
    )
    graph = build(root)
    deps = graph.deps["tests/test_core.py"]
    assert deps["src/pkg/sub/core.py"].kind == "import"
    assert deps["src/pkg/__init__.py"].kind == "init"
    assert deps["src/pkg/sub/__init__.py"].kind == "import"  # pkg.sub itself is imported
    # the package init imports helpers, so every importer of pkg.sub depends on helpers
    assert impacted_tests(graph, "src/pkg/sub/helpers.py") == {"tests/test_core.py"}
    assert impacted_tests(graph, "src/pkg/__init__.py") == {
        "tests/test_core.py",
        "tests/test_other.py",
    }
    assert impacted_tests(graph, "src/pkg/other.py") == {"tests/test_other.py"}


def test_flat_layout_relative_imports_and_reason_chain(make_ws: Make, build: Build) -> None:
    root = make_ws(
        {
            "app/__init__.py": "",
            "app/models.py": "from .db import engine\n",
            "app/db.py": "from ..app import config\n",
            "app/config.py": "",
            "tests/test_models.py": "\n\nfrom app.models import Model\n",
        }
    )
    graph = build(root)
    [impact] = graph.impacted([Change("app/config.py")])
    assert impact.target == "tests/test_models.py"
    assert [h.target for h in impact.chain] == ["app/models.py", "app/db.py", "app/config.py"]
    assert impact.chain[0].edge.line == 3
    assert impact.chain[0].describe() == "imports app.models (line 3)"


def test_several_changes_each_target_names_its_nearest_change(make_ws: Make, build: Build) -> None:
    root = make_ws(
        {
            "app/__init__.py": "",
            "app/base.py": "",
            "app/mid.py": "import app.base\n",
            "app/top.py": "import app.mid\n",
            "app/other.py": "",
            "tests/test_top.py": "import app.top\n",
            "tests/test_both.py": "import app.other\nimport app.top\n",
            "tests/test_base.py": "import app.base\n",
        }
    )
    graph = build(root)
    impacts = graph.impacted([Change("app/base.py"), Change("app/other.py")])
    by = {i.target: i for i in impacts}
    # nearest first, alphabetical within a distance
    assert [i.target for i in impacts] == ["tests/test_base.py", "tests/test_both.py",
                                           "tests/test_top.py"]  # fmt: skip
    assert (by["tests/test_both.py"].changed, by["tests/test_both.py"].distance) == (
        "app/other.py",
        1,
    )
    top = by["tests/test_top.py"]
    assert (top.changed, top.distance) == ("app/base.py", 3)
    assert [h.target for h in top.chain] == ["app/top.py", "app/mid.py", "app/base.py"]
    assert top.why == " -> ".join(h.describe() for h in top.chain)
    assert (
        top.why
        == "imports app.top (line 1) -> imports app.mid (line 1) -> imports app.base (line 1)"
    )
    # a changed test is impacted at distance 0, with no chain
    [own] = graph.impacted([Change("tests/test_top.py")])
    assert (own.target, own.distance, own.chain, own.why) == ("tests/test_top.py", 0, (), "")


def test_namespace_packages(make_ws: Make, build: Build) -> None:
    root = make_ws(
        {
            "ns/plugins/a.py": "",  # no __init__.py anywhere: PEP 420
            "tests/test_ns.py": "import ns.plugins.a\n",
        }
    )
    graph = build(root)
    assert impacted_tests(graph, "ns/plugins/a.py") == {"tests/test_ns.py"}


def test_dynamic_imports_and_pytest_plugins(make_ws: Make, build: Build) -> None:
    root = make_ws(
        {
            "pkg/__init__.py": "",
            "pkg/loaded.py": "",
            "pkg/fixtures.py": "",
            "tests/conftest.py": "pytest_plugins = ['pkg.fixtures']\n",
            "tests/test_dyn.py": "import importlib\nM = importlib.import_module('pkg.loaded')\n",
            "tests/test_plain.py": "def test(): pass\n",
        }
    )
    graph = build(root)
    assert impacted_tests(graph, "pkg/loaded.py") == {"tests/test_dyn.py"}
    # a conftest plugin reaches every test below the conftest
    assert impacted_tests(graph, "pkg/fixtures.py") == {"tests/test_dyn.py", "tests/test_plain.py"}


def test_conftest_chain_up_to_rootdir(make_ws: Make, build: Build) -> None:
    root = make_ws(
        {
            "conftest.py": "",
            "tests/conftest.py": "",
            "tests/unit/conftest.py": "",
            "tests/unit/test_a.py": "",
            "tests/test_b.py": "",
            "other/test_c.py": "",
        }
    )
    graph = build(root)
    assert impacted_tests(graph, "tests/unit/conftest.py") == {"tests/unit/test_a.py"}
    assert impacted_tests(graph, "tests/conftest.py") == {"tests/unit/test_a.py", "tests/test_b.py"}
    assert impacted_tests(graph, "conftest.py") == {
        "tests/unit/test_a.py",
        "tests/test_b.py",
        "other/test_c.py",
    }


def test_pytest_discovery_rules(make_ws: Make, build: Build) -> None:
    root = make_ws(
        {
            "pyproject.toml": (
                "[tool.pytest.ini_options]\n"
                'testpaths = ["tests"]\n'
                'python_files = ["check_*.py", "test_*.py"]\n'
                'norecursedirs = ["fixtures"]\n'
            ),
            "tests/check_one.py": "",
            "tests/test_two.py": "",
            "tests/helper_test.py": "",  # *_test.py no longer collected: python_files replaced it
            "tests/fixtures/test_data.py": "",
            "scripts/test_outside.py": "",  # outside testpaths
        }
    )
    assert build(root).tests == {"tests/check_one.py", "tests/test_two.py"}


@pytest.mark.parametrize("spelled", ["./tests", "tests/", "./tests/../tests"])
def test_testpaths_and_pythonpath_spelled_with_a_dot_are_the_same_folders(
    make_ws: Make, build: Build, spelled: str
) -> None:
    # docopt-ng: testpaths = ["./tests"]; pytest resolves it against the rootdir, Maestro
    # compared it as text and found no test at all ("0 test files", exit 5)
    root = make_ws(
        {
            "pyproject.toml": (
                f'[tool.pytest.ini_options]\ntestpaths = ["{spelled}"]\npythonpath = ["./lib"]\n'
            ),
            "lib/helper.py": "def h():\n    return 1\n",
            "tests/test_one.py": "from helper import h\n",
            "scripts/test_outside.py": "",
        }
    )
    graph = build(root)
    assert graph.tests == {"tests/test_one.py"}
    assert impacted_tests(graph, "lib/helper.py") == {"tests/test_one.py"}


def test_a_testpath_of_the_root_itself_keeps_every_test(make_ws: Make, build: Build) -> None:
    root = make_ws(
        {
            "pytest.ini": "[pytest]\ntestpaths = .\n",
            "tests/test_one.py": "",
            "test_top.py": "",
        }
    )
    assert build(root).tests == {"tests/test_one.py", "test_top.py"}


def test_a_norecursedirs_pattern_with_a_slash_matches_the_directory_path(
    make_ws: Make, build: Build
) -> None:
    # marshmallow: norecursedirs = "... tests/mypy_test_cases"; pytest matches a pattern that
    # holds a separator against the whole path, not a part of it
    root = make_ws(
        {
            "pyproject.toml": (
                '[tool.pytest.ini_options]\nnorecursedirs = ".git tests/mypy_test_cases"\n'
            ),
            "tests/test_one.py": "",
            "tests/mypy_test_cases/test_typed.py": "",
            "other/mypy_test_cases/test_kept.py": "",
        }
    )
    assert build(root).tests == {"tests/test_one.py", "other/mypy_test_cases/test_kept.py"}


def test_text_files_pytest_collects_as_doctests_are_test_files(make_ws: Make, build: Build) -> None:
    # pytest's doctest plugin (always on) collects test*.txt under the same rules (testpaths,
    # norecursedirs); a file without an example yields no test, so it is no test file
    root = make_ws(
        {
            "pyproject.toml": '[tool.pytest.ini_options]\ntestpaths = ["tests", "docs"]\n',
            "pkg/__init__.py": "",
            "pkg/a.py": "",
            "pkg/b.py": "",
            "tests/test_usage.txt": (
                "Prose.\n\n    >>> from pkg.a import add\n    >>> import pkg.b as b\n"
            ),
            "tests/test_data.txt": "rows of data, no example\n",
            "tests/usage.txt": ">>> import pkg.b\n",  # not test*.txt
            "tests/.hidden/test_h.txt": ">>> 1\n1\n",  # norecursedirs .*
            "other/test_out.txt": ">>> 1\n1\n",  # outside testpaths
            "docs/test_bad.txt": b">>> 1\n\xff\n",  # undecodable: pytest reports an error
        }
    )
    graph = build(root)
    assert graph.tests == {"tests/test_usage.txt", "docs/test_bad.txt"}
    assert impacted_tests(graph, "pkg/a.py") == {"tests/test_usage.txt"}
    assert impacted_tests(graph, "pkg/b.py") == {"tests/test_usage.txt"}


def test_doctest_glob_in_addopts_replaces_the_default(make_ws: Make, build: Build) -> None:
    root = make_ws(
        {
            "setup.cfg": (
                "[tool:pytest]\naddopts = --doctest-glob=*.rst --doctest-glob 'docs/*.md'\n"
            ),
            "README.rst": ">>> 1\n1\n",
            "docs/guide.md": ">>> 1\n1\n",
            "notes.md": ">>> 1\n1\n",
            "tests/test_old.txt": ">>> 1\n1\n",
        }
    )
    assert build(root).tests == {"README.rst", "docs/guide.md"}
    (root / "setup.cfg").write_text("[tool:pytest]\naddopts = -p no:doctest\n")
    assert build(root).tests == set()


def test_prepend_import_mode_basedir(make_ws: Make, build: Build) -> None:
    """Tests in a directory without __init__.py import siblings by bare name (rootdir/basedir)."""
    root = make_ws(
        {
            "tests/helpers.py": "",
            "tests/test_x.py": "import helpers\n",
            "tests/sub/__init__.py": "",
            "tests/sub/test_y.py": "from sub import local\n",
            "tests/sub/local.py": "",
        }
    )
    graph = build(root)
    assert impacted_tests(graph, "tests/helpers.py") == {"tests/test_x.py"}
    assert impacted_tests(graph, "tests/sub/local.py") == {"tests/sub/test_y.py"}


def test_third_party_imports_are_distributions(make_ws: Make, build: Build) -> None:
    root = make_ws({"tests/test_t.py": "import pytest\nimport os\nimport not_installed_xyz\n"})
    graph = build(root)
    deps = graph.deps["tests/test_t.py"]
    assert "dist:pytest" in deps and "dist:os" not in deps
    name, version = graph.distribution_of("dist:pytest") or ("", "")
    assert name.lower() == "pytest" and version
    assert graph.distribution_of("dist:not_installed_xyz") is None
    assert graph.compute_stats().unresolved_imports == 1


def test_unparsable_and_non_utf8_files_join_with_diagnostics(make_ws: Make, build: Build) -> None:
    root = make_ws(
        {
            "pkg/__init__.py": "",
            "pkg/broken.py": "import pkg.dep\ndef broken(:\n",
            "pkg/dep.py": "",
            "pkg/latin.py": b"import pkg.dep\nname = '\xe9t\xe9'\n",
            "tests/test_b.py": "import pkg.broken\nimport pkg.latin\n",
        }
    )
    graph = build(root)
    assert impacted_tests(graph, "pkg/dep.py") == {"tests/test_b.py"}
    problems = {(d.path, d.line): d.message for d in graph.diagnostics()}
    assert ("pkg/broken.py", 2) in problems
    assert "UTF-8" in problems[("pkg/latin.py", 2)]


def test_symlink_loop_is_reported_not_followed(make_ws: Make, build: Build) -> None:
    root = make_ws({"pkg/__init__.py": "", "tests/test_a.py": "import pkg\n"})
    os.symlink("..", root / "pkg" / "loop")
    os.symlink("self", root / "self")  # ELOOP
    graph = build(root)
    messages = " ".join(d.message for d in graph.diagnostics())
    assert "symlink loop" in messages
    assert graph.tests == {"tests/test_a.py"}


def test_huge_file_is_not_read_but_reported(make_ws: Make, build: Build) -> None:
    root = make_ws(
        {
            "pyproject.toml": "[tool.maestro]\nmax-file-size = 1000\n",
            "big.py": "import os\n" + "x = 1\n" * 1000,
            "tests/test_a.py": "import big\n",
        }
    )
    graph = build(root)
    [diag] = [d for d in graph.diagnostics() if d.path == "big.py"]
    assert "max-file-size" in diag.message
    assert impacted_tests(graph, "big.py") == {"tests/test_a.py"}


def test_virtualenvs_are_skipped_and_gitignored_files_only_when_pytest_skips_them(
    make_ws: Make, build: Build
) -> None:
    root = make_ws(
        {
            ".gitignore": "generated/\n*.tmp.py\n",
            "generated/test_gen.py": "",
            "tests/test_keep.py": "",
            "tests/test_skip.tmp.py": "",
            "env/pyvenv.cfg": "",
            "env/lib/test_inside_venv.py": "",
            "node_modules/x/test_js.py": "",
            "generated/helper.py": "",
            "tests/helper.tmp.py": "",
        }
    )
    # pytest reads no .gitignore: it collects the two hidden test files (one fails to import)
    tests = {"tests/test_keep.py", "generated/test_gen.py", "tests/test_skip.tmp.py"}
    graph = build(root)
    assert graph.tests == tests
    assert not {"generated/helper.py", "tests/helper.tmp.py"} & graph.all_files


@pytest.mark.parametrize("deleted", [True, False])
def test_deleted_or_renamed_file_impacts_former_dependents(
    make_ws: Make, build: Build, deleted: bool
) -> None:
    root = make_ws(
        {
            "pkg/__init__.py": "",
            "pkg/old.py": "",
            "tests/test_uses_module.py": "import pkg.old\n",
            "tests/test_uses_from.py": "from pkg import old\n",
            "tests/test_unrelated.py": "import pkg\n",
        }
    )
    if deleted:
        (root / "pkg/old.py").unlink()
    else:
        (root / "pkg/old.py").rename(root / "pkg/new.py")
    graph = build(root)
    changes = [Change("pkg/old.py", "deleted")]
    if not deleted:
        changes.append(Change("pkg/new.py", "added"))
    impacted = {i.target for i in graph.impacted(changes)}
    assert impacted == {"tests/test_uses_module.py", "tests/test_uses_from.py"}


def test_files_and_folders_ignored_in_addopts_are_no_test_files(
    make_ws: Make, build: Build
) -> None:
    # diskcache 5.6.3: addopts = --ignore=tests/test_djangocache.py; pytest collects 8 files,
    # Maestro counted 9 and explained the ignored one as "cached" and "runs as a whole"
    root = make_ws(
        {
            "tox.ini": (
                "[pytest]\ntestpaths = tests README.rst\naddopts = --doctest-glob=*.rst "
                "--ignore=tests/test_djangocache.py --ignore ./tests/legacy/ "
                "--ignore=README.rst --ignore-glob=*_slow.py\n"
            ),
            "README.rst": ">>> 1\n1\n",  # a testpaths entry: pytest starts there, never skips it
            "tests/test_core.py": "",
            "tests/test_djangocache.py": "",
            "tests/test_djangocache_more.py": "",  # not the ignored path itself
            "tests/legacy/conftest.py": "",  # its walk never enters the folder: not run by it
            "tests/legacy/test_old.py": "",
            "tests/legacyx/test_kept.py": "",
            "tests/deep/test_x_slow.py": "",  # the glob's * crosses folders, as fnmatch's
            "tests/deep/test_y.py": "",
        }
    )
    graph = build(root)
    assert graph.tests == {
        "README.rst",
        "tests/test_core.py",
        "tests/test_djangocache_more.py",
        "tests/legacyx/test_kept.py",
        "tests/deep/test_y.py",
    }
    assert graph.pytest.ignored(["--ignore", "tests/deep"])("tests/deep/test_y.py")
    # a path the run starts from is never skipped, nor a folder on the way to it
    named = graph.pytest.ignored(["--ignore=tests/deep"], named=["tests/deep/test_y.py"])
    assert not named("tests/deep/test_y.py")
