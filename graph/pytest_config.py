"""pytest's view of a workspace: the ini options that decide which files are tests, and sys.path.

Read from the same places pytest reads them (pytest.ini, pyproject.toml `[tool.pytest.ini_options]`
or `[tool.pytest]`, tox.ini `[pytest]`, setup.cfg `[tool:pytest]`), first found wins, like pytest.
"""

from __future__ import annotations

import configparser
import fnmatch
import os
import posixpath
import re
import shlex
import tomllib
from collections.abc import Callable, Container, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_PYTHON_FILES = ("test_*.py", "*_test.py")
DEFAULT_DOCTEST_GLOBS = ("test*.txt",)
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
    # `--doctest-modules` in addopts: pytest collects every module (but setup.py and
    # __main__.py; conftest.py too, imported as the conftest it is) as doctests too
    doctest_modules: bool = False
    # text files pytest's doctest plugin collects: `--doctest-glob` in addopts, else test*.txt;
    # empty when the plugin is disabled (`-p no:doctest`)
    doctest_globs: tuple[str, ...] = DEFAULT_DOCTEST_GLOBS
    doctest_encoding: str = "utf-8"
    # `--import-mode` in addopts: under prepend and append two test files of one module name
    # collide (the second fails to import)
    import_mode: str = "prepend"
    # files a conftest's own `pytest_collect_file` takes (graph/collectors.py): tests whatever
    # their name, found by asking that hook; sorted, so that the graph's key is stable
    collected_files: tuple[str, ...] = ()
    collected_files_key: str = ""  # the question they answer (CollectRequest.key)
    addopts: list[str] = field(default_factory=list)
    verbosity_subtests: str = "auto"  # the ini value: a level, or "auto" (pytest's -v/-q)
    # `--ignore` and `--ignore-glob` in addopts, as pytest resolves them (against the folder it
    # runs in, the rootdir for Maestro): paths relative to the rootdir, globs absolute
    ignore: tuple[str, ...] = ()
    ignore_globs: tuple[str, ...] = ()
    root: str = ""  # the rootdir, absolute: what an ignore glob is matched under
    # paths (files or folders, relative to the rootdir) a conftest's collect_ignore,
    # collect_ignore_glob or pytest_ignore_collect leaves out of the walk, as last asked
    # (graph/collectors.py): skipped as --ignore'd paths are; sorted for a stable key
    ignored_files: tuple[str, ...] = ()
    diagnostics: list[tuple[str, str]] = field(default_factory=list)

    def matcher(self) -> Callable[[str], bool]:
        """A fast predicate: would pytest collect `rel` (posix, relative to rootdir) as a test?"""
        norecursed = self._norecursed()
        names = _any_of(tuple(p for p in self.python_files if "/" not in p))
        paths = _any_of(tuple(p for p in self.python_files if "/" in p))
        testpaths = self._testpath_folders()
        tp_globs = _any_of(tuple(self.testpaths))
        # as fnmatch_ex: a glob without a separator matches the name, else the path's end
        text_names = _any_of(tuple(p for p in self.doctest_globs if "/" not in p))
        text_paths = _any_of(tuple("*/" + p for p in self.doctest_globs if "/" in p))
        dir_ok: dict[str, bool] = {}
        collected = frozenset(self.collected_files)
        ignored = self.ignored()

        def is_test_file(rel: str) -> bool:
            if rel in collected:
                return True
            directory, _, name = rel.rpartition("/")
            if not name.endswith(".py"):
                if not (text_names(name) or text_paths("/" + rel)):
                    return False
            elif name == "conftest.py" and not self.doctest_modules:
                # pytest's walk offers it to the doctest plugin like any module; without
                # --doctest-modules only a conftest's or plugin's collector may take it
                return False
            doctests = self.doctest_modules and name not in ("setup.py", "__main__.py")
            ok = dir_ok.get(directory)
            if ok is None:
                ok = dir_ok[directory] = not norecursed(directory)
            if not ok or ignored(rel):
                return False
            if testpaths and not (
                any(rel == tp or rel.startswith(tp + "/") for tp in testpaths) or tp_globs(rel)
            ):
                return False
            return doctests or not name.endswith(".py") or names(name) or paths(rel)

        return is_test_file

    def is_test_file(self, rel: str) -> bool:
        return self.matcher()(rel)

    def walked(self) -> Callable[[str], bool]:
        """A predicate: does pytest's walk of ``testpaths`` (else the rootdir) enter the folder
        ``rel`` (posix, relative to rootdir), below a path it starts from? (Such a folder's
        conftest.py is imported by the walk, not as an initial conftest.)"""
        norecursed = self._norecursed()
        testpaths = self._testpath_folders()
        tp_globs = _any_of(tuple(self.testpaths))
        ignored = self.ignored()

        def walked(rel: str) -> bool:
            if not rel or norecursed(rel) or ignored(rel):
                return False
            if not testpaths:
                return True
            parts = rel.split("/")
            above = ["/".join(parts[:i]) for i in range(1, len(parts))]
            return any(a in testpaths or tp_globs(a) for a in above)

        return walked

    def may_hold_tests(self) -> Callable[[str], bool]:
        """A predicate: may a file pytest collects lie in the folder ``rel`` (posix, relative
        to rootdir, "" for the rootdir)? Not when ``norecursedirs`` names it or a folder above
        it, nor when it is neither inside a ``testpaths`` entry nor on the way to one. (A
        virtual environment pytest skips is known from its listing, not its name.)"""
        norecursed = self._norecursed()
        testpaths = self._testpath_folders()
        # a glob entry's fixed start: a folder on the way to its matches or inside one
        starts = [
            _GLOB.split(tp, maxsplit=1)[0] if _GLOB.search(tp) else tp + "/" for tp in testpaths
        ]

        def may_hold_tests(rel: str) -> bool:
            if not rel:
                return True
            if norecursed(rel):
                return False
            here = rel + "/"
            return not starts or any(here.startswith(s) or s.startswith(here) for s in starts)

        return may_hold_tests

    def ignored(self, args: Sequence[str] = (), named: Sequence[str] = ()) -> Callable[[str], bool]:
        """A predicate: does pytest's walk skip ``rel`` (posix, relative to rootdir; a file or a
        folder) by ``--ignore``/``--ignore-glob`` (addopts', then those of ``args``, a run's
        arguments) or a conftest's ``collect_ignore`` and the like (``ignored_files``), itself
        or a folder above it? As pytest's ``pytest_ignore_collect``: an
        ignore path is the exact file or folder, a glob is matched (``*`` crossing ``/``) against
        the absolute path; a path pytest starts from (``named``, else ``testpaths``) is never
        skipped, nor a folder on the way to one."""
        given, globs = _ignore_options(args, self.root)
        paths = {*self.ignore, *given, *self.ignored_files}
        if not paths and not (self.ignore_globs or globs):
            return lambda _: False
        pattern = _any_of((*self.ignore_globs, *globs))
        starts = [n.strip("/") for n in named] if named else self._testpath_folders()
        start_globs = _any_of(tuple(() if named else self.testpaths))
        base = self.root.rstrip("/") + "/"

        def skipped(rel: str) -> bool:
            if rel in starts or start_globs(rel) or any(s.startswith(rel + "/") for s in starts):
                return False
            return rel in paths or pattern(base + rel)

        def ignored(rel: str) -> bool:
            parts = rel.split("/")
            return any(skipped("/".join(parts[: i + 1])) for i in range(len(parts)))

        return ignored

    def _norecursed(self) -> Callable[[str], bool]:
        """A predicate: does ``norecursedirs`` name the folder ``rel`` (posix, relative to
        rootdir, "" for the rootdir) or a folder above it? As pytest's fnmatch_ex: a pattern
        with a separator matches the folder's whole path, one without it the folder's name."""
        norecurse = _any_of(tuple(p for p in self.norecursedirs if "/" not in p))
        norecurse_path = _any_of(tuple("*/" + p for p in self.norecursedirs if "/" in p))

        def norecursed(rel: str) -> bool:
            parts = rel.split("/") if rel else []
            return any(
                norecurse(part) or norecurse_path("/" + "/".join(parts[: i + 1]))
                for i, part in enumerate(parts)
            )

        return norecursed

    def _testpath_folders(self) -> list[str]:
        """``testpaths`` as folders; none when one is the rootdir itself (every folder is in)."""
        return [] if "." in self.testpaths else [tp.rstrip("/") for tp in self.testpaths]


def walk_folder(target: str, config: PytestConfig | None = None) -> str | None:
    """The folder a conftest-only target stands for, else None: Maestro runs a folder that
    holds no test file by its conftest.py (graph/linker.py's ``walk_conftests``), which pytest's
    walk imports (a collection error or a skip of the folder). With ``config``, a conftest.py
    pytest collects itself (``--doctest-modules``, a collector) is no such target."""
    if target == "conftest.py" or not target.endswith("/conftest.py"):
        return None
    if config is not None and config.is_test_file(target):
        return None
    return target.removesuffix("/conftest.py")


_GLOB = re.compile(r"[*?\[]")
_PROMPT = re.compile(rb"^[ \t]*(?:>>>|\.\.\.)(?: |$)(.*)$", re.MULTILINE)


def doctest_source(data: bytes, encoding: str = "utf-8") -> bytes | None:
    """The Python code of a text file's doctest examples (the lines after `>>> ` and `... `),
    one per line, as UTF-8: what its imports are read from. None when pytest collects no test
    from it: no example (a data file named test_*.txt); a file pytest cannot decode has one,
    its collection error."""
    try:
        text = data.decode(encoding).encode("utf-8", "surrogateescape")
    except (LookupError, UnicodeDecodeError):
        return b""
    found = [m.group(1).rstrip(b"\r") for m in _PROMPT.finditer(text)]
    return b"\n".join(found) if found else None


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


def _rootdir_relative(path: str) -> str:
    """An ini path option's folder as the graph spells paths (posix, relative to the rootdir,
    "." for the rootdir itself): pytest resolves "./tests" and "tests/" to the same folder."""
    return posixpath.normpath(path).strip("/") or "."


def _ignore_options(args: Sequence[str], root: str) -> tuple[list[str], list[str]]:
    """The ``--ignore`` paths (relative to ``root``, where pytest runs) and ``--ignore-glob``
    patterns (absolute, as pytest's ``absolutepath`` makes them) that ``args`` give."""
    paths: list[str] = []
    globs: list[str] = []
    i = 0
    while i < len(args):
        name, eq, value = args[i].partition("=")
        if name in ("--ignore", "--ignore-glob") and not eq and i + 1 < len(args):
            i, value = i + 1, args[i + 1]
        elif args[i] == "--":
            break
        i += 1
        if name == "--ignore":
            paths.append(os.path.relpath(os.path.abspath(os.path.join(root, value)), root))
        elif name == "--ignore-glob":
            globs.append(os.path.abspath(os.path.join(root, value)))
    return [p.replace(os.sep, "/") for p in paths], globs


def _doctest_disabled(addopts: list[str]) -> bool:
    return any(
        a == "-pno:doctest" or (a == "-p" and addopts[i + 1 : i + 2] == ["no:doctest"])
        for i, a in enumerate(addopts)
    )


def _doctest_modules(addopts: list[str]) -> bool:
    """Whether pytest, given `addopts`, collects modules' doctests."""
    return "--doctest-modules" in addopts and not _doctest_disabled(addopts)


def import_mode(args: list[str], default: str = "prepend") -> str:
    """The ``--import-mode`` that `args` (addopts, or a run's arguments) set, the last one."""
    mode = default
    for i, a in enumerate(args):
        if a.startswith("--import-mode="):
            mode = a.partition("=")[2]
        elif a == "--import-mode" and i + 1 < len(args):
            mode = args[i + 1]
    return mode


def _doctest_globs(addopts: list[str]) -> tuple[str, ...]:
    """The text files pytest, given `addopts`, collects as doctests (`--doctest-glob`, which
    may repeat, replaces the default test*.txt)."""
    if _doctest_disabled(addopts):
        return ()
    globs: list[str] = []
    for i, a in enumerate(addopts):
        if a == "--doctest-glob" and i + 1 < len(addopts):
            globs.append(addopts[i + 1])
        elif a.startswith("--doctest-glob="):
            globs.append(a.removeprefix("--doctest-glob="))
    return tuple(globs) or DEFAULT_DOCTEST_GLOBS


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
                        # pytest.ini always wins, even empty
                        return PytestConfig(inifile=name, root=str(root))
                    continue
                options = dict(parser.items(section))
        except (OSError, ValueError, configparser.Error) as exc:
            # pytest itself will refuse this file; keep defaults and say why.
            cfg = PytestConfig(inifile=name, root=str(root))
            cfg.diagnostics.append((name, f"cannot read pytest configuration: {exc}"))
            return cfg
        cfg = PytestConfig(inifile=name, root=str(root))
        if "testpaths" in options:
            cfg.testpaths = [_rootdir_relative(p) for p in _as_list(options["testpaths"])]
        if "python_files" in options:
            cfg.python_files = tuple(_as_list(options["python_files"]))
        if "norecursedirs" in options:
            cfg.norecursedirs = tuple(_as_list(options["norecursedirs"]))
        if "pythonpath" in options:
            cfg.pythonpath = [_rootdir_relative(p) for p in _as_list(options["pythonpath"])]
        if isinstance(options.get("doctest_encoding"), str):
            cfg.doctest_encoding = str(options["doctest_encoding"]).strip()
        if isinstance(options.get("verbosity_subtests"), str | int):
            cfg.verbosity_subtests = str(options["verbosity_subtests"]).strip()
        if "addopts" in options:
            addopts = cfg.addopts = _as_list(options["addopts"])
            cfg.doctest_modules = _doctest_modules(addopts)
            cfg.import_mode = import_mode(addopts)
            cfg.doctest_globs = _doctest_globs(addopts)
            ignore, ignore_globs = _ignore_options(addopts, str(root))
            cfg.ignore, cfg.ignore_globs = tuple(ignore), tuple(ignore_globs)
        return cfg
    return PytestConfig(root=str(root))


# ini options that decide which files are tests, or where the rootdir and configuration are
_DISCOVERY_INI = frozenset(
    {"python_files", "testpaths", "norecursedirs", "pythonpath", "addopts", "doctest_encoding"}
)
_WITH_VALUE = ("--doctest-glob", "-o", "--override-ini", "-p", "-c", "--config-file", "--rootdir",
               "--confcutdir")  # fmt: skip


def unfollowed_args(config: PytestConfig, args: Sequence[str]) -> list[str]:
    """The pytest arguments of one run that would change which files pytest collects (or its
    rootdir) from what ``config`` says: the graph's test files come from the configuration, so
    a run given these would miss tests pytest runs (or run some it would not)."""
    found: list[str] = []
    i = 0
    while i < len(args):
        arg, name, value = args[i], args[i], ""
        if arg in _WITH_VALUE and i + 1 < len(args):
            i += 1
            value, arg = args[i], f"{arg} {args[i]}"
        elif arg.startswith("--") and "=" in arg:
            name, _, value = arg.partition("=")
        elif arg[:2] in ("-o", "-p", "-c") and len(arg) > 2:
            name, value = arg[:2], arg[2:]
        if _changes_discovery(config, name, value):
            found.append(arg)
        i += 1
    return found


def _changes_discovery(config: PytestConfig, name: str, value: str) -> bool:
    doctests = config.doctest_modules or bool(config.doctest_globs)
    return (
        (name == "--doctest-modules" and not config.doctest_modules)
        or (name == "--doctest-glob" and value not in config.doctest_globs)
        or (name in ("-o", "--override-ini") and value.partition("=")[0] in _DISCOVERY_INI)
        or (name == "-p" and value == "no:doctest" and doctests)
        or name in ("-c", "--config-file", "--rootdir", "--confcutdir")
    )


def shows_passed_subtests(
    config: PytestConfig, args: Sequence[str], pytest_version: str, environ: Mapping[str, str]
) -> bool:
    """Whether pytest's summary line, given `args`, counts passed subtests ("3 subtests
    passed"): pytest 9's own subtests only when their verbosity is not 0 (-v or -q, or the
    ``verbosity_subtests`` ini option), the pytest-subtests plugin before it always."""
    major = pytest_version.split(".")[0]
    if not major.isdigit() or int(major) < 9:
        return True
    # pytest's order: the ini file's addopts, then PYTEST_ADDOPTS, then the command line
    every = [*config.addopts, *shlex.split(environ.get("PYTEST_ADDOPTS", "")), *args]
    verbose, level = _verbosity(every, config.verbosity_subtests)
    return (verbose if level == "auto" else _int(level, verbose)) != 0


# pytest's own short options (its plugins' parser): those that take a value, and the flags
_SHORT_WITH_VALUE = frozenset("Wckmopr")
_SHORT_FLAGS = frozenset("Vhlqsvx")


def _verbosity(args: Sequence[str], level: str) -> tuple[int, str]:
    """pytest's verbosity (``config.option.verbose``) and subtest verbosity ini value from its
    arguments, read as its argparse parser reads them: short options clustered (``-vx``,
    ``-qq``, ``-vvrA``, ``-kv`` is ``-k v``), a value attached or the next argument, counts
    added in order and ``--verbosity=N`` setting the count, nothing after ``--``."""
    verbose = 0
    i = 0
    while i < len(args):
        arg = args[i]
        i += 1
        if arg == "--":
            break
        if arg.startswith("--"):
            name, eq, value = arg.partition("=")
            if name in ("--verbose", "--quiet") and not eq:
                verbose += 1 if name == "--verbose" else -1
            elif name in ("--verbosity", "--override-ini"):
                if not eq and i < len(args):
                    value, i = args[i], i + 1
                if name == "--verbosity":
                    verbose = _int(value, verbose)
                else:
                    level = _override(value, level)
            continue
        if arg[:1] != "-" or len(arg) < 2:
            continue  # a path, or an option's value
        for j, short in enumerate(arg[1:], 2):
            if short in "vq":
                verbose += 1 if short == "v" else -1
            elif short in _SHORT_WITH_VALUE:
                value = arg[j + 1 :] if arg[j : j + 1] == "=" and j == 2 else arg[j:]
                if not value and i < len(args):
                    value, i = args[i], i + 1
                if short == "o":
                    level = _override(value, level)
                break
            elif short not in _SHORT_FLAGS:
                break  # a plugin's option (xdist's -n4): the rest is its value, if any
    return verbose, level


def _override(value: str, level: str) -> str:
    """``level`` after ``-o value``: the subtest verbosity when it names that ini option."""
    name, _, setting = value.partition("=")
    return setting.strip() if name.strip() == "verbosity_subtests" else level


def _int(text: str, default: int) -> int:
    try:
        return int(text)
    except ValueError:
        return default


WALK_OPTION = "--maestro-walk"  # the plugin's option: a folder its run walks as pytest's walk
NAMED_OPTION = "--maestro-named"  # the plugin's option: a file the user named, no test file


def walk_args(
    names: Sequence[str],
    config: PytestConfig,
    tests: Container[str] | None = None,
    args: Sequence[str] = (),
) -> list[str]:
    """pytest's arguments for the targets Maestro names: a conftest-only folder's as the
    plugin's walk option (named on the command line, pytest would import its conftest as an
    initial one, and a broken one would stop the run where the walk reports the folder).
    The plugin collects a named file as pytest's walk would (it skips what ``--ignore`` and
    ``collect_ignore`` skip); a file that is none of the graph's ``tests`` was named by the
    user, and pytest collects a file it is given whatever those say: said so to the plugin. So
    was one the run's own ``--ignore`` (``args``) skips: the selection keeps only those the user
    named."""
    out: list[str] = []
    ignored = config.ignored(args) if any(a.startswith("--ignore") for a in args) else None
    for name in names:
        folder = walk_folder(name, config) if name.endswith("conftest.py") else None
        out.append(name if folder is None else f"{WALK_OPTION}={folder}")
        file = name.partition("::")[0]
        named = tests is not None and (file not in tests or (ignored and ignored(file)))
        if folder is None and named:
            out.append(f"{NAMED_OPTION}={file}")
    return out
