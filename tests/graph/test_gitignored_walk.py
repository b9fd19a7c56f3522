"""pytest reads no .gitignore: a file it collects (or a conftest.py it loads) that .gitignore
hides is a workspace file and a test all the same, in the walk and to the daemon's watcher;
what pytest's walk skips (norecursedirs, outside testpaths, virtual environments) stays out, and
so does a hidden file pytest does not collect."""

from __future__ import annotations

from pathlib import Path

from maestro.daemon.watcher import IgnoreRules
from maestro.graph.build import BuildGraph
from maestro.graph.files import walk
from maestro.graph.pytest_config import load_pytest_config

FILES = {
    "pytest.ini": "[pytest]\ntestpaths = tests\n",
    ".gitignore": "tests/test_local.py\n*.log\ntests/scratch/\ntests/env/\ntests/.cache/\n"
    "other/\ntests/conftest.py\nscripts/\n",
    "pkg/__init__.py": "",
    "tests/test_kept.py": "def test_kept():\n    pass\n",
    "tests/test_local.py": "import pkg\n\ndef test_local():\n    pass\n",
    "tests/conftest.py": "",
    "tests/run.log": "x\n",
    "tests/scratch/test_deep.py": "def test_deep():\n    pass\n",
    "tests/scratch/helper.py": "X = 1\n",
    "tests/scratch/more/test_deeper.py": "def test_deeper():\n    pass\n",
    "tests/env/pyvenv.cfg": "home = /usr\n",
    "tests/env/lib/test_in_venv.py": "def test_venv():\n    pass\n",
    "tests/.cache/test_dot.py": "def test_dot():\n    pass\n",  # norecursedirs '.*'
    "other/test_outside.py": "def test_outside():\n    pass\n",  # outside testpaths
    "scripts/run.py": "print(1)\n",
}


def _write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_the_walk_keeps_the_hidden_files_pytest_collects_and_no_other(tmp_path: Path) -> None:
    _write(tmp_path, FILES)
    files = set(walk(tmp_path, (), load_pytest_config(tmp_path)).files)
    assert {
        "tests/test_local.py",
        "tests/conftest.py",
        "tests/scratch/test_deep.py",
        "tests/scratch/more/test_deeper.py",
    } <= files
    hidden = {
        "tests/run.log", "tests/scratch/helper.py", "tests/env/lib/test_in_venv.py",
        "tests/.cache/test_dot.py", "other/test_outside.py", "scripts/run.py",
    }  # fmt: skip
    assert not hidden & files
    # without pytest's view the walk hides what .gitignore hides, as before
    assert not {"tests/test_local.py", "tests/scratch/test_deep.py"} & set(walk(tmp_path).files)
    graph = BuildGraph.build(tmp_path)
    assert {"tests/test_local.py", "tests/scratch/more/test_deeper.py"} <= graph.tests
    assert "pkg/__init__.py" in graph.closure("tests/test_local.py")
    assert "tests/conftest.py" in graph.closure("tests/test_kept.py")


def test_the_users_exclude_still_wins_over_pytest(tmp_path: Path) -> None:
    _write(tmp_path, {**FILES, "maestro.toml": 'exclude = ["tests/test_local.py"]\n'})
    graph = BuildGraph.build(tmp_path)
    assert "tests/test_local.py" not in graph.all_files
    assert "tests/scratch/test_deep.py" in graph.tests


def test_with_doctest_modules_a_hidden_module_under_testpaths_is_a_test(tmp_path: Path) -> None:
    _write(
        tmp_path,
        {
            "pytest.ini": "[pytest]\naddopts = --doctest-modules\ntestpaths = src tests\n",
            ".gitignore": "src/*/_version.py\n",
            "src/pkg/__init__.py": "from pkg._version import VERSION\n",
            "src/pkg/_version.py": "VERSION = '1'\n",
            "tests/test_a.py": "def test_a():\n    pass\n",
        },
    )
    graph = BuildGraph.build(tmp_path)
    assert "src/pkg/_version.py" in graph.tests
    # an input of the package's importers too, now that it is a workspace file
    assert "src/pkg/_version.py" in graph.closure("src/pkg/__init__.py")


def test_the_watcher_reports_a_hidden_file_pytest_collects(tmp_path: Path) -> None:
    """An edit to a hidden test file must reach the daemon's graph (its digest is remembered
    while no event says it changed); a hidden file pytest does not use still wakes nothing."""
    _write(tmp_path, FILES)
    config = load_pytest_config(tmp_path)
    rules = IgnoreRules(tmp_path, (), lambda: config)
    root = str(tmp_path)
    for rel in (
        "tests/test_local.py", "tests/conftest.py", "tests/scratch/test_deep.py",
        "tests/scratch/test_new.py",
    ):  # fmt: skip
        assert rules.relative(f"{root}/{rel}") == rel
    for rel in (
        "tests/run.log", "tests/scratch/helper.py", "tests/env/lib/test_in_venv.py",
        "tests/.cache/test_dot.py", "other/test_outside.py", "scripts/run.py",
    ):  # fmt: skip
        assert rules.relative(f"{root}/{rel}") is None, rel
    assert rules.relative(f"{root}/tests/scratch", directory=True) == "tests/scratch"
    assert rules.relative(f"{root}/other", directory=True) is None
    # no configuration known (no graph yet): .gitignore alone decides
    assert IgnoreRules(tmp_path).relative(f"{root}/tests/test_local.py") is None
