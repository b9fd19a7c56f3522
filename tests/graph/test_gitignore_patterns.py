"""A .gitignore line git cannot read (a lone `!`) is skipped, as git skips it; found on black
26.10.1, whose test data holds two such files (tests/data/invalid_gitignore_tests/.gitignore):
`maestro test` there ended in a pathspec traceback (GitIgnorePatternError) before running
anything. A bad pattern in the workspace's own `exclude` setting is an error that says which."""

from __future__ import annotations

from pathlib import Path

import pytest

from maestro.errors import ConfigError
from maestro.graph.build import BuildGraph
from maestro.graph.files import walk


def test_an_unreadable_gitignore_line_is_skipped_as_git_skips_it(tmp_path: Path) -> None:
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "a.py").write_text("X = 1\n")
    data = tmp_path / "tests" / "data" / "invalid"
    data.mkdir(parents=True)
    (data / ".gitignore").write_text("!\n*.log\n")  # `!` means nothing; `*.log` still holds
    (data / "kept.txt").write_text("x\n")
    (data / "noise.log").write_text("x\n")
    (tmp_path / "tests" / "test_a.py").write_text(
        "from pkg.a import X\n\ndef test_x():\n    assert X\n"
    )
    files = walk(tmp_path).files
    assert "tests/data/invalid/kept.txt" in files
    assert "tests/data/invalid/noise.log" not in files
    graph = BuildGraph.build(tmp_path)
    assert "tests/test_a.py" in graph.tests


def test_a_bad_exclude_pattern_is_a_config_error_naming_it(tmp_path: Path) -> None:
    (tmp_path / "maestro.toml").write_text('exclude = ["build/", "!"]\n')
    (tmp_path / "a.py").write_text("X = 1\n")
    with pytest.raises(ConfigError) as caught:
        BuildGraph.build(tmp_path)
    assert "'!'" in caught.value.message
    assert caught.value.hint is not None and "exclude" in caught.value.hint


def test_the_repositorys_own_exclude_file_hides_files_as_a_gitignore_does(tmp_path: Path) -> None:
    # zipp 4.1.2's sdist has no .gitignore: a user who lists .coverage in .git/info/exclude (git
    # ignores it) still saw pytest-cov's .coverage taken for a workspace file, so every test
    # depending on the whole workspace re-ran after each run rewrote it
    (tmp_path / ".git" / "info").mkdir(parents=True)
    (tmp_path / ".git" / "info" / "exclude").write_text("# git's comment\n.coverage*\nscratch/\n")
    (tmp_path / ".coverage").write_text("x\n")
    (tmp_path / "scratch").mkdir()
    (tmp_path / "scratch" / "out.txt").write_text("x\n")
    (tmp_path / "kept.txt").write_text("x\n")
    assert walk(tmp_path).files == ["kept.txt"]
    # a .gitignore beside it still has the last word, as in git
    (tmp_path / ".gitignore").write_text("!.coverage\n")
    assert walk(tmp_path).files == [".coverage", ".gitignore", "kept.txt"]
