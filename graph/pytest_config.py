"""pytest's view of a workspace: the ini options that decide which files are tests, and sys.path.

Read from the same places pytest reads them (pytest.ini, pyproject.toml `[tool.pytest.ini_options]`
or `[tool.pytest]`, tox.ini `[pytest]`, setup.cfg `[tool:pytest]`), first found wins, like pytest.
"""

from __future__ import annotations

import configparser
import fnmatch
import re
import shlex
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_PYTHON_FILES = ("test_*.py", "*_test.py")
DEFAULT_NORECURSE = (
    "*.egg",
    ".*",
    "_darcs",
    "build",
    "CVS",
    "dist",
    "node_modules",
    "venv",
    "{arch}",
)


@dataclass(slots=True)
class PytestConfig:
    inifile: str | None = None
    testpaths: list[str] = field(default_factory=list)
    python_files: tuple[str, ...] = DEFAULT_PYTHON_FILES
    norecursedirs: tuple[str, ...] = DEFAULT_NORECURSE
    pythonpath: list[str] = field(default_factory=list)
    # `--doctest-modules` in addopts: pytest collects every module (but setup.py, __main__.py
    # and conftest.py, whose doctests pytest imports differently) as doctests too
    doctest_modules: bool = False
    diagnostics: list[tuple[str, str]] = field(default_factory=list)

    def matcher(self) -> Callable[[str], bool]:
        """A fast predicate: would pytest collect `rel` (posix, relative to rootdir) as a test?"""
        # as pytest's fnmatch_ex: a pattern with a separator matches the directory's whole path
        norecurse = _any_of(tuple(p for p in self.norecursedirs if "/" not in p))
        norecurse_path = _any_of(tuple("*/" + p for p in self.norecursedirs if "/" in p))
        names = _any_of(tuple(p for p in self.python_files if "/" not in p))
        paths = _any_of(tuple(p for p in self.python_files if "/" in p))
        testpaths = [tp.rstrip("/") for tp in self.testpaths]
        tp_globs = _any_of(tuple(self.testpaths))
        dir_ok: dict[str, bool] = {}

        def is_test_file(rel: str) -> bool:
            directory, _, name = rel.rpartition("/")
            if not name.endswith(".py") or name == "conftest.py":
                return False
            doctests = self.doctest_modules and name not in ("setup.py", "__main__.py")
            ok = dir_ok.get(directory)
            if ok is None:
                parts = directory.split("/") if directory else []
                ok = not any(
                    norecurse(part) or norecurse_path("/" + "/".join(parts[: i + 1]))
                    for i, part in enumerate(parts)
                )
                dir_ok[directory] = ok
            if not ok:
                return False
            if testpaths and not (
                any(rel == tp or rel.startswith(tp + "/") for tp in testpaths) or tp_globs(rel)
            ):
                return False
            return doctests or names(name) or paths(rel)

        return is_test_file

    def is_test_file(self, rel: str) -> bool:
        return self.matcher()(rel)


def _any_of(patterns: tuple[str, ...]) -> Callable[[str], bool]:
    if not patterns:
        return lambda _: False
    regex = re.compile("|".join(f"(?:{fnmatch.translate(p)})" for p in patterns))
    return lambda text: regex.match(text) is not None


def _as_list(value: object) -> list[str]:
    if isinstance(value, str):
        return shlex.split(value)
    if isinstance(value, list):
        return [str(v) for v in value]
    return []


def _doctest_modules(addopts: list[str]) -> bool:
    """Whether pytest, given `addopts`, collects modules' doctests."""
    disabled = any(
        a == "-pno:doctest" or (a == "-p" and addopts[i + 1 : i + 2] == ["no:doctest"])
        for i, a in enumerate(addopts)
    )
    return "--doctest-modules" in addopts and not disabled


def load_pytest_config(root: Path) -> PytestConfig:
    candidates: list[tuple[str, str]] = [
        ("pytest.ini", "pytest"),
        (".pytest.ini", "pytest"),
        ("pyproject.toml", ""),
        ("tox.ini", "pytest"),
        ("setup.cfg", "tool:pytest"),
    ]
    for name, section in candidates:
        path = root / name
        if not path.is_file():
            continue
        options: dict[str, object] | None
        try:
            if name == "pyproject.toml":
                data = tomllib.loads(path.read_text(encoding="utf-8"))
                tool = data.get("tool", {}).get("pytest")
                if not isinstance(tool, dict):
                    continue
                ini = tool.get("ini_options")
                options = ini if isinstance(ini, dict) else tool
            else:
                parser = configparser.ConfigParser(interpolation=None)
                parser.read_string(path.read_text(encoding="utf-8", errors="replace"))
                if not parser.has_section(section):
                    if name.endswith("pytest.ini"):
                        return PytestConfig(inifile=name)  # pytest.ini always wins, even empty
                    continue
                options = dict(parser.items(section))
        except (OSError, ValueError, configparser.Error) as exc:
            # pytest itself will refuse this file; keep defaults and say why.
            cfg = PytestConfig(inifile=name)
            cfg.diagnostics.append((name, f"cannot read pytest configuration: {exc}"))
            return cfg
        cfg = PytestConfig(inifile=name)
        if "testpaths" in options:
            cfg.testpaths = [p.strip("/") for p in _as_list(options["testpaths"])]
        if "python_files" in options:
            cfg.python_files = tuple(_as_list(options["python_files"]))
        if "norecursedirs" in options:
            cfg.norecursedirs = tuple(_as_list(options["norecursedirs"]))
        if "pythonpath" in options:
            cfg.pythonpath = [p.strip("/") or "." for p in _as_list(options["pythonpath"])]
        if "addopts" in options:
            cfg.doctest_modules = _doctest_modules(_as_list(options["addopts"]))
        return cfg
    return PytestConfig()
