"""Cached, impact-selected test runs: graph + cache + runner composed behind `maestro test`.

One test *file* is one action. `plan` computes each selected file's action key and looks it up;
`Engine.execute` (engine/core.py) runs every file that has no usable result in ONE pytest
process; `store_results` splits the report per file into ActionResults and stores them.

Two keys per executed file (docs/action-key.md, "Dynamic dependencies"):

- the *lookup* key uses the dynamic deps recorded by earlier runs (all we know before running);
- the *store* key is recomputed after the run, with the deps this run just recorded.

A file that reads a new data file therefore gets stored under a key that covers it, and the next
run's lookup key (built from the same recorded deps) is that store key. Input digests are pinned
before the run and every file input is re-hashed after it: if one changed while the tests ran, the
result is not stored (it might describe either version), as Bazel does for inputs modified during
a build.

Node-level selection: a stored result carries, per test node, the functions it executed
(`ActionResult.trace`). When a file's key misses only because workspace files changed, the
previous result and the AST fingerprints of both versions of each changed file decide per node:
a node re-runs iff it executed a changed or deleted function, a changed module has changed
module-level code (every node of a file whose closure holds it), it read a changed data file, it
failed last time, or it has no record (engine/node_level.py decides). The others are served from
the previous result, and the merged result is stored under the new key. Anything else
(interpreter, environment, pytest args, global sections, distributions, a missing record or
fingerprint) keeps the file-level behaviour.
"""

from __future__ import annotations

import contextlib
import fnmatch
import hashlib
import json
import logging
import os
import posixpath
import re
import shlex
import time
from collections import Counter
from collections.abc import Callable, Collection, Container, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import msgpack

from maestro.cache.digest import digest_bytes
from maestro.cache.keys import (
    ABSENT,
    ENV,
    KEY_SCHEMA,
    WORKSPACE,
    ActionKey,
    KeyContext,
    action_key,
    allowlisted_env,
    changed_inputs,
    environment_digest,
    input_value,
    key_hex,
    lookup_pointer,
    outcome_args,
    site_dirs,
    target_inputs,
)
from maestro.cache.store import Cache
from maestro.counts import plural
from maestro.engine.collect_probe import ensure_collected
from maestro.engine.core import ALL_CACHED, Engine
from maestro.engine.fixture_params import regroup
from maestro.engine.interpreter import Interpreter
from maestro.engine.node_level import (
    FAILING,
    IMPORT_EDGES,
    imported_elsewhere,
    is_file_input,
    node_reasons,
)
from maestro.engine.order import FileOrder, full_run, named, reordered
from maestro.engine.pollution import (
    AFTER,
    PREFIXES,
    RAN,
    WITH,
    Polluters,
    module_clashes,
    namespace_providers,
)
from maestro.engine.runner import (
    TRACE_ENV,
    RunReport,
    WarmPytest,
    run_sync,
)
from maestro.envvars import (
    KEYED_WHEN_READ,
    STEERING,
    allowlist_with,
    env_names_file,
    keyed_when_read,
    learned_env_file,
    passes,
    read_env_names,
    read_learned_env,
    withheld_names,
)
from maestro.errors import CacheError, ConfigError, UnknownTargetError
from maestro.graph.build import BuildGraph, Change
from maestro.graph.env_refs import referenced as referenced_env
from maestro.graph.files import listing_digest
from maestro.graph.fingerprints import (
    FileFingerprints,
    FingerprintStore,
    StoreUsage,
    diff,
    map_lines,
)
from maestro.graph.pytest_config import import_mode, unfollowed_args, walk_folder
from maestro.graph.records import DIST, LISTING
from maestro.nodeids import file_of
from maestro.paths import read_msgpack, replace_file, workspace_state_dir
from maestro.redact_many import is_redacted, redact_each
from maestro.redaction import Redactor

# The models (pydantic) are imported where a result is built: not before pytest has its run.
if TYPE_CHECKING:
    from maestro.cache.action import ActionResult, TestOutcome, TraceRecord
    from maestro.engine.events import CollectError, Event, FileDeps, TestResult
    from maestro.engine.summary import Summary as Summary
    from maestro.wire import PlannedFileInfo, RunCounts, RunTestsResult

log = logging.getLogger(__name__)

Reason = Literal[
    "no cached result",
    "inputs changed",
    "failed last time",
    "--no-cache",
    "cached result unusable",
    "collected before a file that runs",
    "runs before a file that runs (its tests change state it reads)",
]
COLLECTED_BEFORE: Reason = "collected before a file that runs"
RUNS_BEFORE: Reason = "runs before a file that runs (its tests change state it reads)"
LAST_RUNS_FILE = "test-last-keys.msgpack"
LAST_KEYS_KEPT = 3  # per test file: the keys a change is judged against (an undone edit's too)
# per test file, beyond those: earlier keys served again when every input they recorded holds
# (kept as what their inputs map differs in from the last key's; not judged against)
EARLIER_KEPT = 32
_EARLIER_DIFFER = 256  # an earlier key differing in more inputs from the last one is not kept
# In the last keys: test file -> the inputs that changed while its last run ran (not stored)
_UNSTORED = "\x00unstored"
# the key definition the kept keys were made under: an earlier result is served again by its
# recorded inputs (`earlier_result`), so keys of another definition are not kept across it
_SCHEMA = "\x00schema"
_SEEN = "\x00seen"  # test file -> the key of the result its last run showed (run or served)
# ... or this, when it ran in another order than the full run's (`reordered`)
_REORDERED = "@order"
# ... or this, when a named file's collection imported a module its tests reached (`_borrowed`)
_BORROWED = "@borrowed"
_BACKGROUND = "@background"  # with the inputs that changed: while the daemon's own run ran
# Passed to pytest but keyed only through what they resolve to: the interpreter (@python) and
# the programs the tests ran (recorded as inputs by content). Activating a venv changes PATH.
_RESOLVED_ENV = frozenset({"PATH"})
FINGERPRINTS_DIR = "fingerprints"
# A run drops the kept versions no key of the workspace names at most this often, and keeps
# those written in as long (a run still going in another process names them later)
PRUNE_EVERY_S = 3600.0
GC_GRACE_S = 600.0  # `maestro cache gc`: the same, for the runs going on as it collects
_PRUNED_STAMP = "pruned"


# ------------------------------------------------------------------------------ selection


@dataclass(frozen=True, slots=True)
class Selection:
    """Which test files to consider. `paths` are test files, directories or node ids (relative to
    the workspace root); with `impacted`, they are *changed* files instead, and when there are
    none the changes come from git (`since` REF, or the working tree)."""

    paths: tuple[str, ...] = ()
    impacted: bool = False
    since: str | None = None
    changes: tuple[Change, ...] | None = None  # explicit changes (editor buffers, callers)
    no_cache: bool = False
    pytest_args: tuple[str, ...] = ()
    # the paths are no user's `pytest PATHS` but files whose full-run answer is wanted (the
    # daemon's re-recording of cached results): keyed with the full run's polluters
    full_run_answer: bool = False

    @property
    def named_run(self) -> bool:
        """A run of the paths as `pytest PATHS` runs them: only the files they name are
        collected, so only those count as polluters of one another (engine/pollution.py).
        ``-k``/``-m`` and ``--impacted`` are not: pytest still collects every file."""
        return bool(self.paths) and not (self.impacted or self.since or self.full_run_answer)


# pytest options that pick the tests from pytest's last runs (its cacheprovider)
_FROM_PYTEST_CACHE = frozenset(
    {"--lf", "--last-failed", "--lfnf", "--last-failed-no-failures", "--sw", "--stepwise",
     "--sw-skip", "--stepwise-skip"}
)  # fmt: skip
# options after which pytest runs no test (it lists, plans or answers and exits 0): no result of
# a test run to keep, and "no tests ran" / an error for every node is not what pytest says
_RUNS_NO_TEST = frozenset(
    {"--co", "--collect-only", "--collectonly", "--setup-only", "--setup-plan", "--fixtures",
     "--funcargs", "--fixtures-per-test", "--markers", "--version", "-V", "--help", "-h"}
)  # fmt: skip


def _addopts_line(inifile: str, args: Sequence[str]) -> str:
    """Where and how `args` go in the pytest configuration file `inifile`, as a person writes
    them there: ``addopts = ["--x"] under [tool.pytest.ini_options] in pyproject.toml``. An
    ``-o name=value`` becomes that ini line itself (pytest reads no `-o` given as one list item
    ``"-o name=value"``, nor ``"-p no:doctest"``: each word is its own item)."""
    lines: list[str] = []
    words: list[str] = []
    toml = inifile.endswith("pyproject.toml")
    for arg in args:  # as unfollowed_args gives them: an option and its value joined by " "
        name, _, value = arg.partition(" ")
        parts = [name, value] if value else [name]
        if name.startswith("--override-ini="):
            name, value = "-o", arg.partition("=")[2]
        elif name.startswith("-o") and len(name) > 2:
            name, value = "-o", arg[2:]
        if name in ("-o", "--override-ini") and "=" in value:
            key, _, setting = value.partition("=")
            shown = json.dumps(shlex.split(setting) if key != "addopts" else setting)
            lines.append(f"{key} = {shown if toml else setting}")
        else:
            words += parts
    if words:
        lines.append(f"addopts = {json.dumps(words) if toml else shlex.join(words)}")
    section = (
        "[tool.pytest.ini_options]"
        if toml
        else "[tool:pytest]"
        if inifile.endswith("setup.cfg")
        else "[pytest]"
    )
    return f"{'; '.join(lines)} under {section} in {inifile}"


def _addopts_paths(graph: BuildGraph) -> list[str]:
    """The test paths the configuration's addopts names (``addopts = -q tests/unit``), read as
    pytest reads them: it prepends them to every run's arguments. The argument after an
    option not known here is read as its value (no workspace scan at every plan)."""
    if not graph.pytest.addopts:
        return []
    from maestro.cli.fast import paths_of

    return paths_of(graph.pytest.addopts)[0]


def select(
    graph: BuildGraph, selection: Selection, notes: list[str] | None = None
) -> dict[str, tuple[str, ...] | None]:
    """Test file -> node ids to run (None = the whole file), in a stable order. ``notes``
    receives, for an impact selection, the changes it reaches no test from and why (as
    ``maestro impacted`` says them)."""
    if stateful := [a for a in selection.pytest_args if a.partition("=")[0] in _FROM_PYTEST_CACHE]:
        raise ConfigError(
            f"{' '.join(stateful)} would choose the tests from pytest's own cache "
            "(.pytest_cache), which is no input of Maestro's results",
            hint="`maestro test` already re-runs what failed last time and what changed; "
            "run plain pytest for its own last-failed or stepwise runs",
        )
    if listing := [a for a in selection.pytest_args if a.partition("=")[0] in _RUNS_NO_TEST]:
        raise ConfigError(
            f"{' '.join(listing)}: pytest runs no test with it (it lists, plans or answers), "
            "and Maestro keeps and reports the results of test runs",
            hint="run plain pytest with it (`python -m pytest "
            f"{' '.join(listing)}`); `maestro stale` lists the test files `maestro test` would run",
        )
    if in_addopts := _addopts_paths(graph):
        where = graph.pytest.inifile or "pyproject.toml"
        raise ConfigError(
            f"addopts in {where} names {' '.join(in_addopts)}: pytest adds these paths to every "
            "run's own, so it collects other files than those Maestro takes from the "
            "configuration (testpaths, or the whole project)",
            hint=f"list them as testpaths in {where} instead (pytest collects them when no "
            "path is given), or run plain pytest",
        )
    if unfollowed := unfollowed_args(graph.pytest, selection.pytest_args):
        where = graph.pytest.inifile or "pyproject.toml"
        raise ConfigError(
            f"{' '.join(unfollowed)} would change which files pytest collects, and Maestro "
            f"takes its test files from the pytest configuration ({where})",
            hint=f"set it in the configuration ({_addopts_line(where, unfollowed)}), or run "
            "plain pytest this once",
        )
    if selection.impacted or selection.since:
        from maestro.engine import changes as sources

        if selection.changes is not None:
            changes = list(selection.changes)
        elif selection.paths:
            # root-relative (the CLI's) or absolute (the editor's): never read against the cwd,
            # which in the daemon is its state directory, where a deleted file is not either
            changes = sources.from_paths(graph.root, [str(graph.root / p) for p in selection.paths])
        else:
            changes = sources.from_git(graph.root, selection.since) + sources.from_hidden(graph)
        impacts = graph.impacted(changes)
        if notes is not None:
            from maestro.graph.extensions import extension_notes

            notes += extension_notes(graph, changes, impacts)
        whole = full_run(graph.pytest, graph.root)
        impacted = {i.target for i in impacts if i.kind == "test"}
        return dict.fromkeys(whole.sorted(_not_ignored(graph, selection, impacted)))
    if not selection.paths:
        tests = _not_ignored(graph, selection, graph.tests)
        return dict.fromkeys(full_run(graph.pytest, graph.root).sorted(tests))
    chosen: dict[str, set[str] | None] = {}
    for raw in selection.paths:
        path, sep, _ = raw.partition("::")
        path = path.strip("/") if path not in ("", ".", "./") else ""
        known = path in graph.py or path in graph.tests  # a module, or a text file of doctests
        if sep:
            if not known:
                raise _unknown(raw)
            nodes = chosen.setdefault(path, set())
            if nodes is not None:
                nodes.add(f"{path}::{raw.partition('::')[2]}")
        elif known:
            chosen[path] = None
        elif path == "" or (graph.root / path).is_dir():
            prefix = path + "/" if path else ""
            found = [t for t in graph.tests if t.startswith(prefix)]
            found = sorted(_not_ignored(graph, selection, found))
            if not found and path:
                raise _no_tests_in(raw)
            for test in found:
                chosen[test] = None
        else:
            raise _unknown(raw)
    order = run_order_of(graph, selection)
    return {
        t: (tuple(sorted(n)) if n is not None else None)
        for t, n in sorted(chosen.items(), key=lambda item: order.key(item[0]))
    }


def _not_ignored(graph: BuildGraph, selection: Selection, tests: Iterable[str]) -> set[str]:
    """``tests`` but those the run's own ``--ignore``/``--ignore-glob`` skip in pytest's walk
    (the configuration's are no test files already). Maestro names each file to pytest, which
    never skips a file it is given: a file the user names stays, as in plain pytest."""
    if not any(a.startswith("--ignore") for a in selection.pytest_args):
        return set(tests)
    named = [p.partition("::")[0] for p in selection.paths]
    ignored = graph.pytest.ignored(selection.pytest_args, named=named)
    return {t for t in tests if not ignored(t)}


def run_order_of(graph: BuildGraph, selection: Selection) -> FileOrder:
    """The order plain pytest runs the selection's files in: the paths the user named, in
    the order named (`impacted`'s are changed files, not arguments), else the full run's."""
    if selection.paths and not (selection.impacted or selection.since):
        return named(selection.paths)
    return full_run(graph.pytest, graph.root)


def _no_tests_in(folder: str) -> UnknownTargetError:
    return UnknownTargetError(
        f"{folder} holds no file pytest collects as a test (python_files, testpaths, "
        "norecursedirs and the doctest options decide)",
        hint=f"name the files themselves (pytest runs a file named on its command line "
        f"whatever its name), e.g. maestro test {folder.rstrip('/')}/test.py",
    )


def _unknown(path: str) -> UnknownTargetError:
    return UnknownTargetError(
        f"{path} is not a test file, directory or node id of this workspace",
        hint="pass paths relative to the workspace root (or the current directory), e.g. "
        "tests/test_api.py or tests/test_api.py::test_get",
    )


# ------------------------------------------------------------------------------ keys


def key_context(
    interpreter: Interpreter,
    pytest_args: Sequence[str],
    env_allowlist: Iterable[str],
    environ: Mapping[str, str] | None = None,
    *,
    read_keyed: Iterable[str] = KEYED_WHEN_READ,
    edited: str = "",
) -> KeyContext:
    """The run-wide part of every key (runner, interpreter, environment, args, env vars).
    ``read_keyed``: the variables keyed only for the files that read them (`keyed_when_read_of`);
    ``edited``: the installed code edited in place (`BuildGraph.installed_edited`)."""
    dirs = site_dirs(interpreter.prefix, interpreter.version, is_venv=interpreter.is_venv)
    return KeyContext(
        pytest_version=interpreter.pytest_version or "missing",
        implementation=interpreter.implementation,
        python_version=interpreter.version_string,
        platform=interpreter.platform,
        environment=environment_digest(dirs),
        pytest_args=outcome_args(pytest_args),
        env=tuple(
            (name, value)
            for name, value in allowlisted_env(env_allowlist, environ or os.environ)
            if name not in _RESOLVED_ENV
        ),
        keyed_when_read=frozenset(read_keyed),
        edited=edited,
    )


def keyed_when_read_of(graph: BuildGraph) -> frozenset[str]:
    """The user's own variables (``HOME``, ``USER`` ...) keyed only for the files that read
    them: those the workspace's ``env-allowlist`` does not name (it keys those for every file)."""
    return keyed_when_read(graph.loaded.config.env_allowlist)


class Digests:
    """Memoised input digests, pinned for the lifetime of one plan + run (see module docstring)."""

    def __init__(self, graph: BuildGraph) -> None:
        self.graph = graph
        graph.forget_installed()  # a dependency may have been edited in place since
        self.known: dict[str, str | None] = {}
        self.frozen_at: int | None = None  # the run's start (wall clock, ns)
        self.late: set[str] = set()  # first hashed after the run started: not pinned before

    def __call__(self, rel: str) -> str | None:
        if rel not in self.known:
            self.known[rel] = self.graph.file_digest(rel)
            if self.frozen_at is not None:
                self.late.add(rel)
        return self.known[rel]

    def freeze(self) -> None:
        """The run starts: a digest taken from now on may already see a change made during it.
        File times may lag the clock by a tick (Linux stamps from a coarse clock): a write in
        the first tick of the run may read as before it, but no test has read anything yet."""
        self.frozen_at = time.time_ns()

    def modified_during_run(self, names: Iterable[str]) -> set[str]:
        """Those of ``names`` first hashed after the run started whose file was modified since
        it started: their digest may not be the content the tests read."""
        if self.frozen_at is None:
            return set()
        found: set[str] = set()
        for rel in self.late.intersection(names):
            if rel.startswith(LISTING):
                continue  # a directory's time moves with its __pycache__: no evidence here
            try:
                if os.stat(self.graph.root / rel).st_mtime_ns >= self.frozen_at:
                    found.add(rel)
            except OSError:
                continue  # absent now: keyed as absent, and a re-created file changes the key
        return found

    def fresh(self, rel: str) -> str | None:
        """Hash the file (or list the directory) on disk now (never the index)."""
        if rel.startswith(LISTING):
            return listing_digest(self.graph.root, rel.removeprefix(LISTING))
        try:
            with open(self.graph.root / rel, "rb") as f:
                return hashlib.file_digest(f, "sha256").hexdigest()
        except OSError:
            return None


# ------------------------------------------------------------------------------ last keys


class LastKeys:
    """Per workspace: each test file's last stored key and inputs map, to tell *why* a file
    re-runs ("inputs changed: src/pkg/api.py") and to tell an evicted entry from a new one."""

    def __init__(self, path: Path, data: dict[str, Any]) -> None:
        self.path = path
        self.data = data
        self.dirty = False

    @classmethod
    def load(cls, root: Path) -> LastKeys:
        path = workspace_state_dir(root) / LAST_RUNS_FILE
        data = read_msgpack(path)
        if not isinstance(data, dict) or data.get(_SCHEMA) != KEY_SCHEMA:
            data = {_SCHEMA: KEY_SCHEMA}
        return cls(path, data)

    def get(self, target: str) -> tuple[str, dict[str, str]] | None:
        entry = self.data.get(target)
        if isinstance(entry, list) and len(entry) >= 2:
            return str(entry[0]), dict(entry[1])
        return None

    def history(self, target: str) -> list[tuple[str, dict[str, str]]]:
        """The last stored key and inputs, then up to LAST_KEYS_KEPT - 1 earlier ones."""
        newest = self.get(target)
        if newest is None:
            return []
        entry = self.data[target]
        older = entry[2] if len(entry) > 2 and isinstance(entry[2], list) else []
        kept = [(str(e[0]), dict(e[1])) for e in older if isinstance(e, list) and len(e) == 2]
        return [newest, *kept]

    def nearest(
        self, cache: Cache, target: str, inputs: Mapping[str, str]
    ) -> tuple[str, dict[str, str]] | None:
        """The kept key whose inputs differ least from ``inputs`` and whose result the cache
        still holds; the last one on a tie or when none is closer. After an edit is undone and
        another made, the undone file is not a change from the result it was undone to."""
        entries = self.history(target)
        if not entries:
            return None
        newest = entries[0]
        best, fewest = newest, len(changed_inputs(newest[1], inputs))
        for entry in entries[1:]:
            count = len(changed_inputs(entry[1], inputs))
            if count < fewest and cache.get_action(entry[0], count=False) is not None:
                best, fewest = entry, count
        return best

    def earlier(self, target: str) -> list[tuple[str, dict[str, str | None]]]:
        """The keys kept beyond the history, newest first, each with what its inputs map
        differs in from the last key's (None: an input it does not have)."""
        entry = self.data.get(target)
        if not isinstance(entry, list) or len(entry) < 4 or not isinstance(entry[3], list):
            return []
        return [
            (str(e[0]), e[1])
            for e in entry[3]
            if isinstance(e, list) and len(e) == 2 and _differences(e[1])
        ]

    def keep(self, key: ActionKey) -> None:
        """Keep ``key``, served again but not made the last (an untraced result), as the first
        of the earlier keys: the edits judged against the last keys must not push out the
        result an undone edit returns to."""
        self._seen(key)
        history = self.history(key.target)
        if not history or key.hex in (k for k, _ in history[:2]):
            return  # the last key, or already the first kept
        newest, *older = history
        kept = [[key.hex, key.inputs], *([k, i] for k, i in older if k != key.hex)]
        self._put(key.target, newest, kept, newest[1])

    def set(self, key: ActionKey) -> None:
        # the same key set again (a file's run confirmed by another) keeps every earlier one
        history = self.history(key.target)
        kept = [[k, i] for k, i in history if k != key.hex]
        self._put(key.target, (key.hex, key.inputs), kept, history[0][1] if history else None)
        unstored = self.data.get(_UNSTORED)
        if isinstance(unstored, dict):
            unstored.pop(key.target, None)
        self._seen(key)
        self.dirty = True

    def _seen(self, key: ActionKey) -> None:
        seen = self.data.setdefault(_SEEN, {})
        if isinstance(seen, dict) and seen.get(key.target) != key.hex:
            seen[key.target] = key.hex
            self.dirty = True

    def seen(self, target: str) -> str | None:
        """The key of the result the last run showed for ``target`` (run, or served: an edit
        undone serves an earlier result, which need not be the last key, the baseline)."""
        seen = self.data.get(_SEEN)
        found = seen.get(target) if isinstance(seen, dict) else None
        return found if isinstance(found, str) else None

    def _put(
        self,
        target: str,
        newest: tuple[str, dict[str, str]],
        kept: list[list[Any]],
        before: Mapping[str, str] | None,
    ) -> None:
        """``newest`` the last key, the first of ``kept`` its history, the rest and the earlier
        keys (which differed from ``before``, the last inputs until now) kept beyond it."""
        last = newest[1]
        names = {newest[0], *(k for k, _ in kept[: LAST_KEYS_KEPT - 1])}
        earlier: list[list[Any]] = []
        for hex_, inputs in kept[LAST_KEYS_KEPT - 1 :]:
            if hex_ not in names:
                names.add(hex_)
                earlier.append([hex_, _differ(inputs.get, inputs.keys() | last.keys(), last)])
        if before is not None:
            moved = changed_inputs(before, last)
            for hex_, differ in self.earlier(target):
                if hex_ not in names:
                    names.add(hex_)
                    value = _differing(differ, before)
                    earlier.append([hex_, _differ(value, differ.keys() | set(moved), last)])
        earlier = [e for e in earlier if len(e[1]) <= _EARLIER_DIFFER][:EARLIER_KEPT]
        self.data[target] = [newest[0], last, kept[: LAST_KEYS_KEPT - 1], earlier]
        self.dirty = True

    def not_stored(self, target: str, changed: Iterable[str]) -> None:
        """The last run of ``target`` was not stored: ``changed`` changed while it ran."""
        unstored = self.data.setdefault(_UNSTORED, {})
        if isinstance(unstored, dict):
            unstored[target] = sorted(changed)
            self.dirty = True

    def unstored(self, target: str) -> tuple[str, ...]:
        """The inputs that changed while the last run of ``target`` ran, when that kept its
        result out of the cache (it then runs again with no edit: this tells why)."""
        unstored = self.data.get(_UNSTORED)
        found = unstored.get(target) if isinstance(unstored, dict) else None
        return tuple(str(n) for n in found) if isinstance(found, list) else ()

    def save(self) -> None:
        if not self.dirty:
            return
        replace_file(self.path, msgpack.packb(self.data, use_bin_type=True))
        self.dirty = False


def _differences(kept: object) -> bool:
    """Whether ``kept`` is an earlier key's differences as `_differ` makes them (names, each a
    digest's head or None): a file written otherwise gives no earlier key, never a failed run."""
    return isinstance(kept, dict) and all(
        isinstance(n, str) and (v is None or isinstance(v, str)) for n, v in kept.items()
    )


def _differ(
    value: Callable[[str], str | None], names: Iterable[str], last: Mapping[str, str]
) -> dict[str, str | None]:
    """What an inputs map (``value`` of a name, None: not in it) differs in from ``last``,
    among ``names`` (every name either has, or every name it may differ in), each value by
    its `_short` form. Not a name one of them does not have that the other has as absent (a
    scratch folder's path, new at each run): read as absent, see `_may_hold`."""
    found: dict[str, str | None] = {}
    for name in set(names):
        had, now = value(name), last.get(name)
        if _short(had) != _short(now) and not (had in _NOT_THERE and now in _NOT_THERE):
            found[name] = _short(had)
    return found


_NOT_THERE = (None, ABSENT)


def _short(value: str | None) -> str | None:
    """A value as an earlier key's differences keep it: the head of a digest. Two equal ones
    may still differ; two that differ do."""
    return value[:16] if value is not None else None


def _differing(
    differ: Mapping[str, str | None], before: Mapping[str, str]
) -> Callable[[str], str | None]:
    """The value of each name in the inputs map that differed in ``differ`` from ``before``."""
    return lambda n: differ[n] if n in differ else before.get(n)


# ------------------------------------------------------------------------------ plan


_STATE_OF = "{}'s import changes state these tests read"
_RAN_STATE_OF = "{}'s tests, run before, change state these tests read"


@dataclass(slots=True)
class PlannedFile:
    target: str
    nodes: tuple[str, ...] | None  # None = the whole file
    key: ActionKey
    cached: ActionResult | None  # the stored result for `key` (also when failed: for display)
    reason: Reason | None  # why it runs; None = served from the cache
    changed: list[str] = field(default_factory=list)  # inputs that differ from the last run
    run_nodes: tuple[str, ...] | None = None  # node-level: only these run, the rest is carried
    carried: ActionResult | None = None  # node-level: the previous result serving the others
    node_reasons: dict[str, str] = field(default_factory=dict)  # node id -> why it (re-)runs
    promote: bool = False  # node-level: nothing to run; store `carried` under `key`
    # not selected: runs only before the files that read what its tests change (not shown)
    companion: bool = False
    deselect: tuple[str, ...] = ()  # predictive mode skipped these: the result is not stored
    served: tuple[str, ...] = ()  # node-level: deselected from functions given whole; carried
    symbols: tuple[str, ...] = ()  # qualnames changed in its Python inputs since its last run
    untraced: bool = False  # its last result has no per-test record: a change re-runs it whole
    every_node: bool = False  # node_reasons has a reason for every test of the file
    earlier: bool = False  # served from an earlier key whose inputs all hold again (undone edit)
    unstored: tuple[str, ...] = ()  # inputs that changed while its last run ran: not stored
    # a polluter's key entry (collected-with:, ran-after:) that changed -> the files edited
    # behind it
    through: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # those of `changed` back at the version an earlier run of the file had (an edit undone
    # since its last run): told after the others, and said so
    back: tuple[str, ...] = ()
    # with no per-test record: the files whose collection imports modules its tests may
    # reach through their packages, collected with it (`_untraced_importers`)
    importers: tuple[str, ...] = ()

    @property
    def runs(self) -> bool:
        return self.reason is not None

    def describe(self) -> str:
        if self.reason is None:
            if self.promote:
                return "cached (no executed code changed)"
            return "cached"
        if self.companion:
            return (
                "not selected; runs first, not shown: its tests change state a selected file reads"
            )
        return f"{self._why()}{self._unstored()}"

    def _why(self) -> str:
        assert self.reason is not None
        if self.run_nodes is not None and self.carried is not None:
            # tests as pytest counts them: a node id several tests share counts each
            total = self.carried.test_count()
            first = self.run_nodes[0] if self.run_nodes else ""
            why = self.node_reasons.get(first, self.reason)
            if self.served or first not in {t.node_id for t in self.carried.tests}:
                # test functions given whole (engine/fixture_params.py): their count is unknown
                return f"{len(self.run_nodes)} given to pytest, {total} served: {first} {why}"
            running = set(self.run_nodes)
            count = sum(t.test_count() for t in self.carried.tests if t.node_id in running)
            return f"{count} of {plural(total, 'test')}: {first} {why}"
        if self.reason == "inputs changed" and self.changed:
            more = f" (+{len(self.changed) - 3} more)" if len(self.changed) > 3 else ""
            named = ", ".join(self._label(n) for n in self.changed[:3])
            changed = f"inputs changed: {named}{more}"
            if self.node_reasons:
                node, why = next(iter(self.node_reasons.items()))
                shared = len(self.node_reasons) > 1 or self.every_node
                one = shared and len(set(self.node_reasons.values())) == 1
                if one or node == self.target:
                    # one reason for every node is said of the file: shown after a node's id it
                    # reads as a claim about that node; a file whose only result is the file
                    # (a module-level skip) has no node to name
                    return f"{changed}: the whole file: {why}"
                return f"{changed}: {node} {why}"
            traced_would_narrow = self.untraced and any(map(is_file_input, self.changed))
            whole = "; no per-test record yet, so the whole file" if traced_would_narrow else ""
            return f"{changed}{whole}"
        return self.reason

    def _label(self, name: str) -> str:
        """An input as a reason names it: a polluter whose import changed, by the files edited
        (its key entry covers them: it may be unedited itself)."""
        if " edited:" in self.key.inputs.get(name, "") and name.startswith(("@environment", DIST)):
            # an installed dependency debugged in place: said so, not as a version change
            what = name.removeprefix(DIST) if name.startswith(DIST) else "installed packages"
            files = self.key.inputs[name].rpartition(" (")[2].rstrip(")")
            return f"{what} ({'one ' if name == '@environment' else ''}edited in place: {files})"
        if name in self.back:
            return f"{input_label(name)} (back as an earlier run had it)"
        if name.startswith(PREFIXES) and name not in self.key.inputs:
            # in the last run's key, not in this one's: a file named alone (`pytest F` runs no
            # other file), or a polluter no more
            polluter = name.removeprefix(WITH).removeprefix(RAN).removeprefix(AFTER)
            how = "its tests ran" if name.startswith(RAN) else "collected"
            where = "with" if name.startswith(WITH) else "before"
            return f"{polluter} ({how} {where} it last time, not in this run)"
        edited = self.through.get(name)
        if not edited:
            return input_label(name)
        polluter = name.removeprefix(WITH).removeprefix(RAN)
        others = [n for n in edited if n != polluter]
        if not others:
            return input_label(name)
        files = ", ".join(others)
        state = (_RAN_STATE_OF if name.startswith(RAN) else _STATE_OF).format(polluter)
        if polluter in edited:
            return f"{polluter} and {files}, which it imports ({state})"
        return f"{files}, which {polluter} imports ({state})"

    def _unstored(self) -> str:
        if not self.unstored or self.reason not in ("no cached result", "inputs changed"):
            return ""
        if _BORROWED in self.unstored:
            return (
                " (its last run's result was not stored: its tests used a module that another"
                " named file's collection imported, which pytest given this file alone does not)"
            )
        if _REORDERED in self.unstored:
            return (
                " (its last run's result was not stored: the named files ran in another order"
                " than the full run's, and a file's outcome may depend on the files run before"
                " it; name them in pytest's collection order, or run them all)"
            )
        env = [n for n in self.unstored if n.startswith("env:")]
        if env:  # read while withheld (`withheld_reads`): learned, passed from then on
            read = ", ".join(map(input_label, env))
            return (
                f" (its last run's result was not stored: it read {read}, which your environment"
                " sets but Maestro did not pass to pytest then)"
            )
        changed = [n for n in self.unstored if n != _BACKGROUND]
        names = ", ".join(map(input_label, changed[:3]))
        more = f" (+{len(changed) - 3} more)" if len(changed) > 3 else ""
        if _BACKGROUND in self.unstored:
            # nobody waited for that run: a change meanwhile is most likely the user's edit
            verb = "were" if len(changed) > 1 else "was"
            return (
                f" (the daemon's background run of it was not stored: {names}{more} {verb}"
                " edited while that run was under way)"
            )
        return (
            f" (its last run's result was not stored: {names}{more} changed while the tests"
            " ran, written by the tests or another program)"
        )


_NAMED = "@named"  # a file pytest's walk does not collect, run because the user named it
_INPUT_LABELS = {
    _NAMED: "named on the command line, no test file of pytest's walk",
    "@args": "pytest arguments",
    "@select": "the tests asked for",
    "@runner": "pytest version",
    "@python": "Python interpreter",
    "@environment": "installed packages",
    WORKSPACE: "the workspace (a program it ran could not be recorded)",
}


_NEW_OR_VERSION = "a new import, version or edit"


def input_label(name: str) -> str:
    """An inputs map's name as a person reads it in a reason ("dir:tests" -> "names in tests/")."""
    if label := _INPUT_LABELS.get(name):
        return label
    if name.startswith("env:"):
        return f"${name[4:]}"
    if name.startswith(LISTING):
        return f"names in {name[len(LISTING) :] or '.'}/"
    if name.startswith(AFTER):
        return f"{name[len(AFTER) :]} (collected before it)"
    if name.startswith(WITH):
        return f"{name[len(WITH) :]} (its import changes state these tests read)"
    if name.startswith(RAN):
        return f"{name[len(RAN) :]} (its tests, run before, change state these tests read)"
    if name.startswith(DIST):
        # an import of a name from outside the workspace: new to this file, or installed anew
        return f"{name[len(DIST) :]} (imported from outside the workspace: {_NEW_OR_VERSION})"
    path, hashed, section = name.partition("#")
    if hashed and not name.startswith(("@", "//", "dist:")):
        # a configuration file's section that pytest reads, or the whole file ("#*")
        return path if section == "*" else f"{path} [{section}]"
    return name


@dataclass(frozen=True, slots=True)
class RunOrder:
    """Fail-first for one run: test files most likely to fail first, and P(fail) of the tests
    the history knows (the plugin runs them highest first inside their file and class; equal
    scores keep pytest's order, so an uninformative ranking changes nothing)."""

    files: tuple[str, ...] = ()
    tests: Mapping[str, float] = field(default_factory=dict)


@dataclass(slots=True)
class Plan:
    files: list[PlannedFile]
    context: KeyContext
    pytest_args: tuple[str, ...]
    env_allowlist: tuple[str, ...]
    digests: Digests
    last: LastKeys
    fingerprints: FingerprintStore | None = None
    polluters: Polluters | None = None
    new_polluters: set[str] = field(default_factory=set)  # found by this plan's runs
    # files that ran without a run polluter whose state their tests turned out to read
    late: set[str] = field(default_factory=set)
    order: FileOrder = field(default_factory=FileOrder)  # the order pytest runs the files in
    # variables the environment the run is for sets that pytest does not get (names only)
    withheld: frozenset[str] = frozenset()
    background: bool = False  # the daemon's own run (speculative, re-recording): nobody asked
    notes: list[str] = field(default_factory=list)  # changes the selection reaches no test from
    # inputs of the files run that changed while their tests ran (their results not stored)
    changed_during_run: set[str] = field(default_factory=set)

    @property
    def to_run(self) -> list[PlannedFile]:
        return [f for f in self.files if f.runs]

    @property
    def collect_only(self) -> list[str]:
        """The state polluters of the files that run, not running themselves: collected with
        them, their tests deselected (engine/pollution.py)."""
        return collect_only(self.files)

    @property
    def cached(self) -> list[PlannedFile]:
        return [f for f in self.files if not f.runs]


def env_allowlist_of(graph: BuildGraph) -> tuple[str, ...]:
    """The default allowlist, the workspace's `env-allowlist`, then every variable its code
    reads by name (graph/env_refs.py) or its tests read while withheld: plain pytest would see
    those. The names are kept for the CLI's fast path, which sends the daemon what pytest may
    see."""
    refs = referenced_env(graph.root, graph.py, graph.index)
    state = workspace_state_dir(graph.root)
    # and those its tests were seen reading and finding unset (`learn_env`)
    names = sorted(refs.names.union(read_learned_env(state)))
    if refs.changed:  # files were read: keep what they name
        with contextlib.suppress(OSError):
            graph.save()
    if read_env_names(state) != names:
        with contextlib.suppress(OSError):  # a memo: the next plan writes it again
            replace_file(env_names_file(state), json.dumps(names).encode())
    return allowlist_with([*graph.loaded.config.env_allowlist, *names])


def withheld_reads(
    report: RunReport, targets: Iterable[str], withheld: frozenset[str]
) -> dict[str, list[str]]:
    """Test file -> the withheld variables (`Plan.withheld`) its tests or collection read, or
    anything read outside every file (conftest, a session fixture, pytest itself): unset in
    this run, set for plain pytest, its outcome may not be pytest's."""
    if not withheld:
        return {}
    end = report.session_end
    session = set(end.env if end is not None else ()) & withheld
    out: dict[str, list[str]] = {}
    for target in targets:
        deps = report.file_deps.get(target)
        names = session.union(deps.env if deps is not None else ()) & withheld
        if names:
            out[target] = sorted(names)
    return out


def learn_env(root: Path, report: RunReport, allowlist: tuple[str, ...]) -> None:
    """Keep the variables the run's tests read by name and found unset, which the allowlist
    does not pass, in the workspace state: every plan from now on passes them to pytest and
    keys them when set (`env_allowlist_of`). One withheld (set for the user) changes every
    file's key once; one unset for the user too changes none until it is set."""
    end = report.session_end
    read = {n for deps in report.file_deps.values() for n in deps.env}
    read.update(end.env if end is not None else ())
    new = {
        n
        for n in read
        if n.isidentifier() and not n.startswith(STEERING) and not passes(n, allowlist)
    }
    if not new:
        return
    state = workspace_state_dir(root)
    known = read_learned_env(state)
    if new <= set(known):
        return
    names = sorted({*known, *new})
    try:
        replace_file(learned_env_file(state), json.dumps(names).encode())
        # the CLI's fast path sends the daemon these names' values from its next request
        sent = read_env_names(state)
        replace_file(env_names_file(state), json.dumps(sorted({*sent, *names})).encode())
    except OSError:
        log.warning("could not keep the variables the tests read in the workspace state")


def withheld_notes(reads: Mapping[str, Sequence[str]], *, ran_again: bool) -> list[str]:
    """What the run says of the files that read withheld variables (those that read the same
    ones in one sentence), and once of the names learned: every file's key changes once."""

    def then(names: Sequence[str], files: int) -> str:
        one, it = len(names) == 1, "it" if files == 1 else "they"
        if ran_again:
            return f"{it} ran again with {'it' if one else 'them'} passed, and that run counts"
        outcomes = "its outcome" if files == 1 else "their outcomes"
        may = "may not be plain pytest's and is" if files == 1 else "may not be pytest's and are"
        return (
            f"{outcomes} {may} not stored; {'it is' if one else 'they are'} passed from the next"
            " run on"
        )

    by_names: dict[tuple[str, ...], list[str]] = {}
    for target, names in sorted(reads.items()):
        by_names.setdefault(tuple(names), []).append(target)
    notes = []
    for names, targets in by_names.items():
        files = ", ".join(targets[:3]) + (
            f" and {len(targets) - 3} more" if len(targets) > 3 else ""
        )
        notes.append(
            f"{files} read {', '.join(names)}, which your environment sets but Maestro did not"
            f" pass to pytest: {then(names, len(targets))}"
        )
    learned = sorted({n for names in reads.values() for n in names})
    if learned:
        others = "every other test file's" if ran_again else "every test file's"
        notes.append(
            f"{', '.join(learned)} will be passed to pytest and keyed from now on (kept in the"
            f" workspace state): {others} key changes once, so it runs once more"
        )
    return notes


def plan(
    graph: BuildGraph,
    cache: Cache,
    interpreter: Interpreter,
    selection: Selection,
    *,
    environ: Mapping[str, str] | None = None,
    fingerprints: FingerprintStore | None = None,
    count: bool = True,
) -> Plan:
    """Key every selected test file and decide whether it runs, and why. A long-lived caller
    (the daemon) passes its own `fingerprints` store so that its memory memo outlives the plan.
    ``count``: the plan is a run's, its cached files are hits and the others misses (a question
    about the cache, such as `stale`, counts nothing)."""
    allowlist = env_allowlist_of(graph)
    # the files conftests collect themselves are tests too (asked of them once per change)
    ensure_collected(graph, interpreter, allowlist=allowlist, environ=environ)
    digests = Digests(graph)  # first: it has the installed code's edits read anew
    context = key_context(
        interpreter,
        selection.pytest_args,
        allowlist,
        environ,
        read_keyed=keyed_when_read_of(graph),
        edited=graph.installed_edited(),
    )
    last = LastKeys.load(graph.root)
    fps = fingerprints if fingerprints is not None else fingerprint_store(graph.root)
    notes: list[str] = []
    selected = select(graph, selection, notes)
    order = run_order_of(graph, selection)
    full = full_run(graph.pytest, graph.root)
    if not reordered(order, full, selected):
        # the named files keep the full run's relative order: then so do the files run with
        # them (polluters, companions), as in the full run
        order = full
    # named paths answer as `pytest PATHS`: the polluters among them alone, in their order
    scope = (frozenset(selected), order) if selection.named_run else None
    polluters = polluters_for(
        graph, selection.pytest_args, ReadNames(graph.root, cache, last, fps), scope
    )
    files: list[PlannedFile] = []

    def decide(target: str, nodes: tuple[str, ...] | None) -> PlannedFile:
        key = file_key(graph, target, context, digests, polluters, nodes)
        decided = _decide(
            cache, last, target, nodes, key, no_cache=selection.no_cache, graph=graph, fps=fps,
            holds=holding(graph, key, digests, polluters, context),
        )  # fmt: skip
        return _unstored_noted(last, decided)

    restored = False
    for target, nodes in selected.items():
        decided = decide(target, nodes)
        if count and not selection.no_cache:  # a hit: a file served without running
            cache.count_lookup(None if decided.runs else decided.cached)
        served = decided.cached if not decided.runs and not decided.promote else None
        if decided.earlier and served is not None:
            # what that run recorded is what the file reads again: its next key is that
            # result's own, and the next change is judged against it (not the undone edit's)
            graph.record_dynamic(target, served.dynamic_deps)
            restored = True
            if decided.key.hex not in (k for k, _ in last.history(target)):
                # an earlier key than those kept to judge changes by: the versions it names may
                # be gone from the store (what it holds is on disk, as it was)
                keep_versions(fps, graph.root, [decided.key])
        key = decided.key
        current = (key.hex, key.inputs)
        if served is not None and served.trace is not None and last.get(target) != current:
            # The result just served is the baseline of the next change (an edit undone, then
            # another made, is diffed against what is on disk, not against the undone edit);
            # unless it has no per-node record and the last one has (an untraced cold run).
            last.set(key)
        elif served is not None:
            last.keep(key)  # what a later undone edit returns to, baseline or not
        files.append(decided)
    _untraced_importers(graph, cache, last, polluters, files, fps, digests)
    files = _with_polluters(files, polluters, graph.tests, decide, order)
    if restored:
        with contextlib.suppress(OSError):  # a memo: the next plan restores it again
            graph.save()
    if last.dirty:
        try:
            last.save()
        except OSError:
            log.warning("could not save the last keys of this workspace", exc_info=True)
    _changed_symbols(graph, cache, fps, last, files)
    _edited_through_polluters(graph, last, digests, files)
    withheld = withheld_names(allowlist, os.environ if environ is None else environ)
    return Plan(
        files, context, tuple(selection.pytest_args), allowlist, digests, last, fps, polluters,
        order=order, withheld=withheld, notes=notes,
    )  # fmt: skip


@dataclass(frozen=True, slots=True)
class Reads:
    """What the code a result's tests, collection and imports ran reads by name: the names its
    functions' `refs` and module-level code's `module_loads` spell; the modules whose names
    some of it may read without spelling them: any (``sys.modules[name]``, text compiled in
    a module's namespace: `escapes`), those it reaches (``getattr(module, name)``) or hands on
    to other code (a call, a container: `reached`, by their last name), the files whose own
    names it may (``globals()``, a module ``__getattr__``: `unnamed`); and how it reads
    attributes it does not spell (``getattr(obj, name)``: `*`; a literal prefix ``^P``:
    `dynamic`), which a class's attributes are."""

    names: frozenset[str]
    escapes: bool = False
    reached: frozenset[str] = frozenset()  # last names of the modules handed on or reached
    unnamed: frozenset[str] = frozenset()
    dynamic: frozenset[str] = frozenset()

    def may_read(self, module: str, names: Collection[str]) -> bool:
        if self.escapes or module in self.unnamed:
            return True
        if any(n in self.reached for n in _module_names(module)):
            return True
        for name in names:
            owner, _, bare = name.rpartition(".")
            if bare in self.names:
                return True
            if owner and any(d == "*" or bare.startswith(d[1:]) for d in self.dynamic):
                return True  # a class's attribute, read by a computed name
        return False


def names_read(result: ActionResult | None, fps: FingerprintStore, root: Path) -> Reads | None:
    """`Reads` of a result's record; None when not known: no per-node record, a version of a
    file with no fingerprints."""
    if result is None or result.trace is None:
        return None
    found: set[str] = set()
    escapes = False
    reached: set[str] = set()
    unnamed: set[str] = set()
    dynamic: set[str] = set()
    files: dict[str, FileFingerprints | None] = {}
    spelled: dict[str, frozenset[str]] = {}
    by_tests = {i for t in result.tests for i in t.executed or ()}
    elsewhere = set(result.trace.import_time) - by_tests
    for index, name in enumerate(result.trace.functions):
        path, _, qualname = name.partition("::")
        if index in elsewhere and path not in result.inputs:
            # another file's import, at collection: before any test ran, and no input of it
            continue
        if path not in files:
            digest = result.inputs.get(path)
            # in memory only: a version is kept as sealed source, fingerprinted when a change
            # needs it
            fp = None
            if digest is not None and digest != ABSENT:
                fp = fps.of_file(root / path, digest, keep=False)
            files[path] = None if fp is None or fp.parse_error else fp
            if fp is not None and fp.own_escapes:
                unnamed.add(path)
            escapes = escapes or (fp is not None and fp.code_namespace)
        fp = files[path]
        if fp is None:
            return None
        if qualname in fp.escaping:  # reaching the names of modules its code has unnamed
            targets = fp.escape_targets.get(qualname, ("*",))
            escapes = escapes or "*" in targets
            reached.update(_last_name(t) for t in targets)
        # a module handed on (to a call, a container) may have its names read unnamed there
        reached.update(_last_name(h) for h in fp.handed.get(qualname, ()))
        dynamic.update(fp.dynamic.get(qualname, ()))
        if (refs := fp.refs.get(qualname)) is not None:
            found.update(refs)
        elif qualname == "<module>" or "<locals>" not in qualname:
            found.update(fp.module_loads)  # module-level code, class bodies included
        else:  # a class body run in a function: what the file spells anywhere
            if path not in spelled:
                spelled[path] = frozenset(fp.module_refs).union(*fp.refs.values())
            found.update(spelled[path])
    return Reads(
        frozenset(found), escapes, frozenset(reached), frozenset(unnamed), frozenset(dynamic)
    )


def _last_name(spelled: str) -> str:
    """The last name of a module as code spells it (``pkg.sub``, ``.sub``, ``pkg:sub.attr``)."""
    return spelled.replace(":", ".").rstrip(".").rpartition(".")[2]


def _module_names(path: str) -> list[str]:
    """The names of the module a workspace file is and of its packages (``pkg/sub/mod.py``:
    ``pkg``, ``sub``, ``mod``): one handed on may lead to the module."""
    return path.removesuffix(".py").removesuffix("/__init__").split("/")


class ReadNames:
    """Per test file: the names the code its tests ran reads (`names_read`) in its last stored
    result, or in the result a run just made (`ran`). Which run polluters a file runs after
    follows them (`Polluters.read_by`)."""

    def __init__(self, root: Path, cache: Cache, last: LastKeys, fps: FingerprintStore) -> None:
        self.root, self.cache, self.last, self.fps = root, cache, last, fps
        self.memo: dict[str, Reads | None] = {}
        self.made: dict[str, ActionResult] = {}  # by a run of this plan

    def __call__(self, target: str) -> Reads | None:
        # asked only of files with a run polluter: most results are never read this way
        if target not in self.memo:
            result = self.made.get(target)
            if result is None and (entry := self.last.get(target)) is not None:
                result = self.cache.get_action(entry[0], count=False)
            self.memo[target] = names_read(result, self.fps, self.root)
        return self.memo[target]

    def ran(self, target: str, result: ActionResult) -> None:
        self.made[target] = result
        self.memo.pop(target, None)


def polluters_for(
    graph: BuildGraph,
    pytest_args: Sequence[str] = (),
    reads: ReadNames | None = None,
    scope: tuple[frozenset[str], FileOrder] | None = None,
) -> Polluters:
    """The workspace's known polluters, and the test files whose module name an earlier one
    has (unless the import mode is importlib): what the keys and runs of its files follow.
    `reads`: the names each file's tests read (without: every run polluter of a module a file
    reads counts). `scope`: a run of named paths, its files and their order (`pytest PATHS`
    collects no other file: only those count)."""
    polluters = Polluters.load(graph.root, full_run(graph.pytest, graph.root))
    polluters.reads = reads
    tests: Collection[str] = graph.tests
    if scope is not None:
        polluters.among, polluters.scope = scope
        tests = [t for t in graph.tests if t in scope[0]]
    order = polluters.run_order
    if import_mode(list(pytest_args), graph.pytest.import_mode) != "importlib":
        polluters.clashes = module_clashes(tests, graph.py, order)
    conftests = [p for p in graph.py if _is_conftest(p)]
    polluters.namespace = namespace_providers(
        conftests, tests, lambda p: _source(graph.root / p), order,
        lambda rel: _named_as_tests(rel, graph.pytest.python_files),
    )  # fmt: skip
    return polluters


def _is_conftest(rel: str) -> bool:
    return rel.rpartition("/")[2] == "conftest.py"


def _named_as_tests(rel: str, patterns: Sequence[str]) -> bool:
    """Whether pytest's `python_files` takes `rel` for a test module (fnmatch_ex's way)."""
    name = rel.rpartition("/")[2]
    return any(
        fnmatch.fnmatch("/" + rel, "*/" + p) if "/" in p else fnmatch.fnmatch(name, p)
        for p in patterns
    )


def file_key(
    graph: BuildGraph,
    target: str,
    context: KeyContext,
    digests: Callable[[str], str | None],
    polluters: Polluters,
    nodes: tuple[str, ...] | None = None,
) -> ActionKey:
    """A test file's key: its inputs, the polluters a full run collects before it and those
    whose import changes a module among its inputs; a variable its tests read (``env:NAME``,
    recorded) has this run's value."""
    inputs = target_inputs(graph, target, file_digest=digests)
    for name in [n for n in inputs if n.startswith(ENV)]:
        inputs[name] = context.read_entry(name)
    inputs |= _polluter_inputs(graph, target, digests, polluters, inputs)
    args = context.pytest_args
    if target not in graph.tests or (
        any(a.startswith("--ignore") for a in args) and graph.pytest.ignored(args)(target)
    ):
        # only the user names it (graph/pytest_config.py's walk_args): pytest collects it as
        # given, whatever --ignore or collect_ignore say; the walk's collection is another result
        inputs[_NAMED] = "named"
    return action_key(target, context, inputs, selection=nodes)


def _polluter_inputs(
    graph: BuildGraph,
    target: str,
    digests: Callable[[str], str | None],
    polluters: Polluters,
    inputs: Mapping[str, str],
) -> dict[str, str]:
    return polluters.inputs(
        target, graph.tests, digests, inputs,
        lambda p: target_inputs(graph, p, file_digest=digests),
        lambda p: _source(graph.root / p),
        lambda p: _own_imports(graph, p),
    )  # fmt: skip


def _untraced_importers(
    graph: BuildGraph,
    cache: Cache,
    last: LastKeys,
    polluters: Polluters,
    files: list[PlannedFile],
    fps: FingerprintStore,
    digests: Callable[[str], str | None],
) -> None:
    """A file that runs with no per-test record yet (never run here, or run untraced) cannot
    say which modules its tests reach through the packages it imports: it is collected with
    the importer of each of them whose name the code it reaches spells
    (`Polluters.package_importers`); not keyed by them, which a traced run decides from the
    code its tests ran."""
    if not polluters.loaders:
        return
    names: dict[str, frozenset[str]] = {}

    def spelled_in(rel: str) -> frozenset[str]:
        found = names.get(rel)
        if found is None:
            digest = digests(rel) if rel.endswith(".py") else None
            fp = fps.of_file(graph.root / rel, digest) if digest is not None else None
            found = (
                frozenset() if fp is None else frozenset(fp.module_refs).union(*fp.refs.values())
            )
            names[rel] = found
        return found

    def spelled(files: Collection[str]) -> set[str]:
        return set().union(*map(spelled_in, files))

    for f in files:
        if not f.runs or any(
            (r := cache.get_action(k, count=False)) is not None and r.trace is not None
            for k, _ in last.history(f.target)
        ):
            continue
        f.importers = tuple(
            polluters.package_importers(
                f.target, graph.tests, lambda p: _own_imports(graph, p), spelled
            )
        )


def _own_imports(graph: BuildGraph, target: str) -> set[str]:
    """What a test file's own imports reach (its conftests' and plugins' too): the graph's
    edges but those a run recorded, which may be another file's import."""
    return graph.closure(target, skip=("recorded",))


# Inputs that are settings of the run, not content it read: an earlier result holds only where
# they are all the same (an unset allowlisted variable has no entry at all)
_RUN_SETTINGS = ("@", ENV)
_SETTINGS = (*_RUN_SETTINGS, *PREFIXES)


def holding(
    graph: BuildGraph,
    key: ActionKey,
    digests: Callable[[str], str | None],
    polluters: Polluters,
    context: KeyContext,
) -> Callable[[Mapping[str, str], ActionResult], bool]:
    """Whether an earlier run of `key.target` (its recorded inputs map, its result) would run
    the same now: every file it read has the content it had, and every variable it read
    keyed only where read (``HOME`` ...) the value it had; the files `key` names that it
    did not read are absent or were already there, unchanged, when it ran on this host (a
    conftest or module added since may change it); its settings (interpreter, arguments,
    the other environment variables) are `key`'s, and so are the files collected before or
    with it (which of them count, and what they add, follows the files it read)."""
    read_keyed = {ENV + n for n in context.keyed_when_read}

    def holds(recorded: Mapping[str, str], result: ActionResult) -> bool:
        def settings(inputs: Mapping[str, str], kinds: tuple[str, ...]) -> dict[str, str]:
            return {
                n: v
                for n, v in inputs.items()
                if n.startswith(kinds) and n != WORKSPACE and n not in read_keyed
            }

        if settings(recorded, _RUN_SETTINGS) != settings(key.inputs, _RUN_SETTINGS):
            return False  # the cheap check first: most misses are a new interpreter or argument
        # The whole workspace is what that run read (a program it ran could not be recorded),
        # not a setting: the last run (a collection error) may not have run that program.
        read = {
            n: v
            for n, v in recorded.items()
            if n == WORKSPACE or n in read_keyed or not n.startswith(_SETTINGS)
        }
        if WORKSPACE in key.inputs and WORKSPACE not in read:
            return False  # the program the last run ran may read what that run never did
        for name, value in read.items():
            now: str | None
            if name in key.inputs:
                now = key.inputs[name]
            elif name.startswith(ENV):
                now = context.read_entry(name)
            else:
                now = input_value(graph, name, digests)
            if now != value:
                return False
        from maestro.cache.action import this_host

        here = result.provenance.hostname == this_host()
        for name, now in key.inputs.items():
            if name in read or name.startswith((*_SETTINGS, "dist:")) or now == ABSENT:
                continue  # a distribution: the same, as the installed packages are
            if not here or not _untouched_since(graph.root, name, result.timing.started_at):
                return False
        collected = _polluter_inputs(graph, key.target, digests, polluters, read)
        return settings(recorded, PREFIXES) == collected

    return holds


def _source(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except OSError:
        return None


def collect_only(files: Iterable[PlannedFile]) -> list[str]:
    """The polluters in the keys of the files that run (``collected-with:``, state polluters;
    ``collected-after:``, those collected before them) that do not run themselves: collected
    with them, for what their import does."""
    files = list(files)
    running = {f.target for f in files if f.runs}
    return sorted(
        {
            name.removeprefix(WITH).removeprefix(AFTER)
            for f in files
            if f.runs
            for name in (*f.key.inputs, *(WITH + p for p in f.importers))
            if name.startswith((WITH, AFTER))
        }
        - running
    )


def with_companions(
    to_run: list[PlannedFile],
    companions: list[str],
    order: FileOrder,
    ran: Collection[str] = (),
) -> tuple[list[str], list[str], list[str]]:
    """pytest's arguments for `to_run` with the state polluters `companions` collected too
    and the run polluters `ran` run before them (all in the run's `order`, pytest's), the
    companions again: the files whose tests are deselected, and the tests to keep of the files
    named whole to be imported in that order (`imported_in_order`)."""
    # A file Maestro runs some tests of is named whole and the tests it serves are deselected,
    # not the others named: an id made at collection time (a parametrize value of
    # datetime.now()) is another at each collection; pytest refuses a whole run for an id it
    # does not collect, and runs the new one
    picked = [f for f in to_run if f.run_nodes is not None and f.nodes is None]
    entries = [
        (f.target, [f.target] if f in picked else list(f.run_nodes or f.nodes or [f.target]))
        for f in to_run
    ]
    named = {f.target for f in to_run}
    extra = [p for p in (*companions, *ran) if p not in named]
    if extra:
        entries += [(p, [p]) for p in dict.fromkeys(extra)]
        entries.sort(key=lambda t: order.key(t[0]))
    args, only = imported_in_order(entries)
    # the served nodes of test functions given whole (engine/fixture_params.py)
    served = [n for f in to_run if f.run_nodes is not None for n in f.served]
    served += [n for f in picked for n in _served_of(f) if n not in served]
    return args, list(companions) + served, only


def _served_of(f: PlannedFile) -> list[str]:
    """The carried nodes of a file Maestro runs some tests of that it does not run."""
    running = set(f.run_nodes or ())
    return [t.node_id for t in f.carried.tests if t.node_id not in running] if f.carried else []


def imported_in_order(entries: list[tuple[str, list[str]]]) -> tuple[list[str], list[str]]:
    """pytest's arguments for `entries` (each file and the ids of its tests that run, or its
    path alone), imported in their order, and the test ids to keep (the plugin's `only`).

    pytest imports the files named by a test id while it resolves its arguments, and the
    files named whole after that: a file named by ids after one named whole would be imported
    first (before a polluter whose warnings filters its collection must see). Such a file is
    named whole, and its ids select its tests instead."""
    args: list[str] = []
    only: list[str] = []
    whole_before = False
    for target, names in entries:
        by_id = names != [target]
        if by_id and whole_before:
            args.append(target)
            only += names
        else:
            args += names
        whole_before = whole_before or not by_id
    return args, only


def ran_polluters(
    keys: Iterable[PlannedFile | ActionKey], polluters: Polluters | None = None
) -> list[str]:
    """The run polluters named by the keys of files that run (``ran-after:``): their tests
    run before them, as in the full run; with `polluters`, only those whose changes the
    code each file's tests ran may read (`Polluters.read_by`)."""
    found: set[str] = set()
    for k in keys:
        if isinstance(k, PlannedFile) and not k.runs:
            continue
        key = k.key if isinstance(k, PlannedFile) else k
        found.update(
            p
            for name in key.inputs
            if name.startswith(RAN)
            and (p := name.removeprefix(RAN)) not in found
            and (polluters is None or polluters.read_by(key.target, p))
        )
    return sorted(found)


def repollute(graph: BuildGraph, cache: Cache, planned: Plan, found: set[str]) -> list[PlannedFile]:
    """After a run found new state polluters (`found`: a new test file registering a class),
    the files of the plan served from the cache whose key they change, decided again (a hit
    under the new key is served; the rest must run); and the files whose tests turned out to
    read what a run polluter they ran without leaves changed (`Plan.late`)."""
    late = planned.late
    if not (found or late) or planned.polluters is None:
        return []
    fps = planned.fingerprints
    again: list[PlannedFile] = []
    for f in planned.files:
        if f.runs and f.target not in late:
            continue
        key = file_key(
            graph, f.target, planned.context, planned.digests, planned.polluters, f.nodes
        )
        if key.hex == f.key.hex and f.target not in late:
            continue
        decided = _unstored_noted(
            planned.last,
            _decide(
                cache, planned.last, f.target, f.nodes, key, no_cache=False, graph=graph, fps=fps,
                holds=holding(graph, key, planned.digests, planned.polluters, planned.context),
            ),
        )  # fmt: skip
        if decided.runs:  # whole: what changed is a file collected with it
            decided.reason = "inputs changed"
            decided.run_nodes = decided.carried = None
            decided.node_reasons = {}
            decided.promote = False
        again.append(decided)
    return again


def _with_polluters(
    files: list[PlannedFile],
    polluters: Polluters,
    tests: Container[str],
    decide: Callable[[str, tuple[str, ...] | None], PlannedFile],
    order: FileOrder,
) -> list[PlannedFile]:
    """Each file that runs has the polluters a full run collects before it with it: it is
    collected as in the full run. One not selected is only collected, its tests deselected
    (`collect_only`: what it does at import is what matters; pytest, given the selection,
    would not show its tests), unless its tests fill the doctest namespace of one that runs;
    one selected and cached runs whole. The run polluters in their keys run before them,
    whole (their tests change what the file's tests see). The files in the run's `order`."""
    if not (polluters.files or polluters.clashes or polluters.namespace or polluters.ran):
        return files
    by_target = {f.target: f for f in files}
    selected = set(by_target)
    todo = [f for f in files if f.runs]
    while todo:
        wanted = {p for f in todo for p in polluters.before(f.target, tests)}
        filling = {p for f in todo for p in polluters.namespace.get(f.target, ())}
        ran = set(ran_polluters(todo, polluters))
        todo = []
        for target in order.sorted(wanted | ran):
            if target not in by_target and target not in filling and target not in ran:
                continue  # collected only, named by the `collected-after:` of the keys
            known = by_target.get(target)
            f = known or decide(target, None)
            if target in ran:
                f.companion = target not in selected
                if f.runs and f.run_nodes is not None:  # what all its tests leave: whole
                    f.run_nodes = f.carried = None
                    f.node_reasons = {}
            if not f.runs:
                # importing it is what matters (any of its tests will do); or all its tests
                f.reason = RUNS_BEFORE if target in ran else COLLECTED_BEFORE
                f.promote = False
                f.run_nodes = f.carried = None
                f.node_reasons = {}
                todo.append(f)
            elif known is None:
                todo.append(f)  # it runs anyway: with the polluters before it too
            by_target[target] = f
    return sorted(by_target.values(), key=lambda f: order.key(f.target))


def _changed_symbols(
    graph: BuildGraph,
    cache: Cache,
    fps: FingerprintStore,
    last: LastKeys,
    files: list[PlannedFile],
) -> None:
    """Set each running file's `symbols`: the functions and classes changed in its Python
    inputs since its last run, from their fingerprints (the model's change symbols, which it
    otherwise only gets by diffing texts the daemon does not keep)."""
    found: dict[tuple[str, str, str], tuple[str, ...]] = {}
    for f in files:
        previous = last.nearest(cache, f.target, f.key.inputs) if f.runs and f.changed else None
        if previous is None:
            continue
        symbols: set[str] = set()
        for name in f.changed:
            old, new = previous[1].get(name), f.key.inputs.get(name)
            if not name.endswith(".py") or old in (None, ABSENT) or new in (None, ABSENT):
                continue
            assert old is not None and new is not None
            if (name, old, new) not in found:
                before, after = fps.get(old), fps.of_file(graph.root / name, new)
                delta = diff(before, after) if before and after else None
                found[name, old, new] = (
                    (*delta.changed, *delta.added, *delta.deleted) if delta else ()
                )
            symbols.update(found[name, old, new])
        # the model names nested functions outer.inner (model.features.changed_symbols)
        f.symbols = tuple(sorted(s.replace(".<locals>.", ".") for s in symbols))


def fingerprint_store(root: Path) -> FingerprintStore:
    return FingerprintStore(workspace_state_dir(root) / FINGERPRINTS_DIR)


def needed_versions(state: Path) -> set[str] | None:
    """The digests of the file versions a change can still be judged against in the workspace
    whose state directory is ``state``: every input of every key its last keys hold (the last
    one and the earlier ones of each test file). None when those cannot be read."""
    path = state / LAST_RUNS_FILE
    data = read_msgpack(path)
    if not isinstance(data, dict):
        return set() if not path.exists() else None
    found: set[str] = set()
    for entry in data.values():
        if not isinstance(entry, list) or len(entry) < 2:
            continue  # the unstored notes
        older = entry[2] if len(entry) > 2 and isinstance(entry[2], list) else []
        maps = [entry[1], *(e[1] for e in older if isinstance(e, list) and len(e) == 2)]
        found.update(v for m in maps if isinstance(m, dict) for v in m.values() if v != ABSENT)
    return found


def prune_versions(state: Path, *, grace_s: float) -> tuple[StoreUsage, StoreUsage]:
    """Drop the versions kept in the fingerprint store of the workspace whose state directory
    is ``state`` that no key of it names (older than ``grace_s``): (dropped, still held)."""
    store = FingerprintStore(state / FINGERPRINTS_DIR)
    needed = needed_versions(state)
    dropped = StoreUsage() if needed is None else store.prune(needed, grace_s=grace_s)
    return dropped, store.usage()


def prune_versions_now_and_then(root: Path) -> None:
    """At most once per PRUNE_EVERY_S, drop the versions the fingerprint store keeps that no
    stored key can be diffed against any more: each edit keeps one more (its redacted source,
    so a new fingerprint format can judge it again), and a long-lived workspace would keep
    them all. Never fails the run."""
    state = workspace_state_dir(root)
    stamp = state / FINGERPRINTS_DIR / _PRUNED_STAMP
    try:
        due: bool | None = time.time() - stamp.stat().st_mtime >= PRUNE_EVERY_S
    except FileNotFoundError:
        due = None  # the first run: the clock starts (nothing kept is an hour old yet)
    except OSError:
        return
    if due is False:
        return
    try:
        stamp.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        stamp.touch(mode=0o600)
        os.utime(stamp)
        if due:
            prune_versions(state, grace_s=PRUNE_EVERY_S)
    except Exception:
        log.warning("dropping the file versions no result needs failed", exc_info=True)


def _edited_through_polluters(
    graph: BuildGraph, last: LastKeys, digests: Digests, files: list[PlannedFile]
) -> None:
    """Set each running file's `through`: for a polluter whose key entry changed, the files
    behind it edited since the polluter's last run (itself, or a module it imports that the
    file does not: a helper of that test file). None known: the reason names the polluter."""
    edited: dict[str, tuple[str, ...]] = {}
    for f in files:
        for name in f.changed if f.runs else ():
            if not name.startswith((WITH, RAN)):
                continue
            polluter = name.removeprefix(WITH).removeprefix(RAN)
            if polluter not in edited:
                edited[polluter] = _edited_since_last(graph, last, digests, polluter)
            found = tuple(n for n in edited[polluter] if n == polluter or n not in f.key.inputs)
            if found:
                f.through[name] = found


def _edited_since_last(
    graph: BuildGraph, last: LastKeys, digests: Digests, target: str
) -> tuple[str, ...]:
    """`target` and the Python files among its inputs that changed since its last run."""
    before = last.get(target)
    if before is None:
        return ()
    now = target_inputs(graph, target, file_digest=digests)
    return tuple(
        n
        for n in changed_inputs(before[1], now)
        if n == target or (n.endswith(".py") and is_file_input(n))
    )


def _unstored_noted(last: LastKeys, decided: PlannedFile) -> PlannedFile:
    """A file that runs again says whether its last result went unstored, and why."""
    if decided.runs:
        decided.unstored = last.unstored(decided.target)
    return decided


def _decide(
    cache: Cache,
    last: LastKeys,
    target: str,
    nodes: tuple[str, ...] | None,
    key: ActionKey,
    *,
    no_cache: bool,
    graph: BuildGraph | None = None,
    fps: FingerprintStore | None = None,
    holds: Callable[[Mapping[str, str], ActionResult], bool] | None = None,
) -> PlannedFile:
    if no_cache:
        return PlannedFile(target, nodes, key, None, "--no-cache")
    cached = cache.get_action(key.hex, count=False)  # counted by plan(), once decided
    earlier = earlier_result(cache, last, key, holds) if cached is None and holds else None
    if earlier is not None:
        # served under its own key: the inputs it read (not all in `key`) stay what a change is
        # keyed by, so it is never stored under `key`
        return PlannedFile(target, nodes, earlier[0], earlier[1], None, earlier=True)
    if cached is not None:
        if not _failed(cached):
            return PlannedFile(target, nodes, key, cached, None)
        failing = tuple(t.node_id for t in cached.tests if t.outcome in FAILING)
        if nodes is None and failing and _all_runnable(failing, cached):
            # Only the failed nodes re-run; the passing ones are valid results for this key.
            return PlannedFile(
                target, nodes, key, cached, "failed last time",
                run_nodes=failing, carried=cached,
                node_reasons=dict.fromkeys(failing, "failed last time"),
            )  # fmt: skip
        return PlannedFile(target, nodes, key, cached, "failed last time")
    newest = last.get(target)
    if newest is None:
        return PlannedFile(target, nodes, key, None, "no cached result")
    if newest[0] == key.hex:
        # the last run's key, not served: a result held that cannot be used, or none held (the
        # cache folder deleted, its entry evicted, the result never stored)
        held = cache.has_action(key.hex)
        reason: Reason = "cached result unusable" if held else "no cached result"
        return PlannedFile(target, nodes, key, None, reason)
    previous = last.nearest(cache, target, key.inputs) or newest
    changed, back = _undone_last(
        _changes_since(previous[1], key.inputs), last.history(target), previous[0], key.inputs
    )
    decided = _judged(cache, target, nodes, key, previous, changed, graph, fps, last)
    decided.back = back
    return decided


def _undone_last(
    changed: list[str],
    history: Sequence[tuple[str, Mapping[str, str]]],
    previous: str,
    inputs: Mapping[str, str],
) -> tuple[list[str], tuple[str, ...]]:
    """``changed``, those back at the version an earlier kept run of the file had (an edit
    undone since the file last ran) moved last, and those: a reason leads with what was
    edited, not with what was put back."""
    back = tuple(
        n for n in changed if any(i.get(n) == inputs.get(n) for k, i in history if k != previous)
    )
    if not back:
        return changed, ()
    return [n for n in changed if n not in back] + list(back), back


def _judged(
    cache: Cache,
    target: str,
    nodes: tuple[str, ...] | None,
    key: ActionKey,
    previous: tuple[str, dict[str, str]],
    changed: list[str],
    graph: BuildGraph | None,
    fps: FingerprintStore | None,
    last: LastKeys,
) -> PlannedFile:
    """How a file whose inputs ``changed`` since its ``previous`` result runs: its nodes
    judged by that result's record (or an older one's), else whole."""
    if nodes is None and graph is not None and fps is not None:
        functions: dict[str, str] = {}  # whose node ids a change of fixture params changes
        found = node_reasons(
            graph, cache, fps, previous[0], previous[1], key.inputs, changed, regroup=functions
        )
        judge: tuple[str, dict[str, str]] | None = previous
        if found is None or len(found[1]) >= len(found[0].tests):
            # the nearest result may have no record (a cold run before 3.12 is untraced, and
            # undoing an edit serves it again), or judge an edit undone since it was made as a
            # change for every test (a module-level line put back): an older one may still
            # judge per node, the nearest first; one that judges every node too is kept only
            # while none judges fewer
            others = sorted(
                (len(changed_inputs(i, key.inputs)), n, (k, i))
                for n, (k, i) in enumerate(last.history(target))
                if k != previous[0]
            )
            for _count, _, entry in others[:_OTHER_PREVIOUS]:
                differ = _changes_since(entry[1], key.inputs)
                theirs: dict[str, str] = {}
                older = node_reasons(
                    graph, cache, fps, entry[0], entry[1], key.inputs, differ, prefer=changed,
                    regroup=theirs,
                )  # fmt: skip
                if older is not None and (found is None or len(older[1]) < len(found[1])):
                    # `changed` stays what differs from the nearest result: an edit undone
                    # since the older one is no reason to tell ("inputs changed", node reasons);
                    # a node's reason that names one (or an old failure) says whose it is
                    found = older[0], _as_of_older(older[1], set(differ) - set(changed))
                    functions = theirs
                    judge = None
                    if len(older[1]) < len(older[0].tests):
                        break
        if found is not None and judge is not None:
            # judged by the last key's result while the last run showed another (an edit
            # undone served an untraced earlier result): its failures and the edits undone
            # since are that run's, not what the user last saw
            found = found[0], _as_of_older(found[1], _undone_since(last, target, judge))
        if found is not None:
            carried, reasons = found
            if functions:
                return _regrouped(target, nodes, key, changed, carried, reasons, functions)
            if not reasons:
                return PlannedFile(target, nodes, key, carried, None, changed, promote=True,
                                   carried=carried)  # fmt: skip
            # a redacted id is not one pytest knows: then the whole file runs. One pytest cannot
            # find by its id ("::" inside a parametrize id) still runs alone: the file is named
            # whole and the served tests are deselected by id (`with_companions`)
            everything = len(reasons) >= len(carried.tests) or not all(map(_runnable, reasons))
            return PlannedFile(
                target, nodes, key, None, "inputs changed", changed,
                run_nodes=None if everything else tuple(reasons),
                carried=None if everything else carried,
                node_reasons=reasons, every_node=len(reasons) >= len(carried.tests),
            )  # fmt: skip
    # no result with a per-test record to judge by (an untraced first run before 3.12): say so
    untraced = all(
        (r := cache.get_action(k, count=False)) is None or r.trace is None
        for k, _ in last.history(target)
    )
    return PlannedFile(target, nodes, key, None, "inputs changed", changed, untraced=untraced)


_OTHER_PREVIOUS = 3  # older results tried when the nearest cannot judge per node, or judges all


def _regrouped(
    target: str,
    nodes: tuple[str, ...] | None,
    key: ActionKey,
    changed: list[str],
    previous: ActionResult,
    reasons: dict[str, str],
    functions: dict[str, str],
) -> PlannedFile:
    """A file some of whose test functions have nodes a change of fixture params changes:
    those functions run but for their nodes without a reason (deselected and served), the
    other nodes with a reason by their id, the rest served (engine/fixture_params.py). The
    whole file when an id cannot be given to pytest (a redacted one, a name holding "::")."""
    given, served, carried = regroup(previous, reasons, functions)
    ids = [*(t.node_id for t in previous.tests), *given]
    told = {**functions, **reasons}  # a function given whole: why (it may have new nodes)
    if not _all_runnable(ids, previous) or not carried.tests:
        return PlannedFile(target, nodes, key, None, "inputs changed", changed,
                           node_reasons=told)  # fmt: skip
    return PlannedFile(
        target, nodes, key, None, "inputs changed", changed,
        run_nodes=given, carried=carried, node_reasons=told, served=served,
    )  # fmt: skip


def earlier_result(
    cache: Cache,
    last: LastKeys,
    key: ActionKey,
    holds: Callable[[Mapping[str, str], ActionResult], bool],
) -> tuple[ActionKey, ActionResult] | None:
    """A kept earlier passing result of `key.target` that `holds` now, and its key: an edit
    undone (or a branch switched back) is served, although the last run (of the edit) recorded
    other inputs and so keys the file differently. A run reads what its inputs decide, so the
    earlier run, given the same inputs, would read and do the same again."""
    history = last.history(key.target)
    for hex_, recorded in history:
        if hex_ == key.hex:
            continue
        result = cache.get_action(hex_, count=False)
        if result is not None and not _failed(result) and holds(recorded, result):
            return ActionKey(key.target, hex_, dict(recorded)), result
    if not history:
        return _pointed_result(cache, key, holds)
    newest = history[0][1]
    moved = changed_inputs(newest, key.inputs)
    for hex_, differ in last.earlier(key.target):
        if hex_ == key.hex or not _may_hold(_differing(differ, newest), differ, moved, key):
            continue
        result = cache.get_action(hex_, count=False)
        if result is None or _failed(result) or key_hex(key.target, result.inputs) != hex_:
            continue  # its inputs map is the result's own: stored for exactly those inputs
        if holds(result.inputs, result):
            return ActionKey(key.target, hex_, dict(result.inputs)), result
    return None


def _pointed_result(
    cache: Cache, key: ActionKey, holds: Callable[[Mapping[str, str], ActionResult], bool]
) -> tuple[ActionKey, ActionResult] | None:
    """The team's passing result for `key`, a lookup key no run on this machine recorded: kept
    under its pointer by the machine that ran it (with the inputs its run read, a superset of
    `key`'s), served under its own key when every one of those inputs holds here. Without a
    mirror (`explain`, a run in process) the pointer a mirroring daemon fetched is read here."""
    result = cache.get_action(lookup_pointer(key.hex), count=False)
    if result is None or _failed(result):
        return None
    own = key_hex(key.target, result.inputs)
    if own == key.hex or not holds(result.inputs, result):
        return None
    try:
        cache.adopt(own, result)
    except CacheError:
        log.warning("could not keep the team's result of %s", key.target, exc_info=True)
    return ActionKey(key.target, own, dict(result.inputs)), result


def _may_hold(
    value: Callable[[str], str | None],
    differ: Mapping[str, str | None],
    moved: Iterable[str],
    key: ActionKey,
) -> bool:
    """False when an earlier inputs map (``value`` of a name, `_short`, ``differ``: what it
    differs in from the last key's, ``moved``: what the last key's differs in from ``key``'s)
    recorded an input `key` has with another value: its result cannot hold (`holding`). True
    may still not. A name read as absent that it did not record was absent at a later key's
    run: present now, it was made after that run, which `holding` does not let pass either."""
    for name in {*differ, *moved}:
        recorded = _short(value(name))
        if recorded is None or name.startswith(PREFIXES) or name not in key.inputs:
            continue  # not an input of it; or judged by what it read, not by `key`
        if _short(key.inputs[name]) != recorded:
            return False
    return True


def _untouched_since(root: Path, name: str, when: datetime) -> bool:
    """Whether the file (or listed directory, or config file of a section) `name` has not
    changed since a second before `when` (the ctime too: it moves on every write and rename)."""
    try:
        st = os.stat(os.path.join(root, name.removeprefix(LISTING).partition("#")[0]))
    except OSError:
        return False
    return max(st.st_ctime, st.st_mtime) < when.timestamp() - 1.0


def _changes_since(before: Mapping[str, str], now: Mapping[str, str]) -> list[str]:
    """The inputs that changed since a result: not a file its run never read that is absent
    now (a later run read it while it was there; its removal undid that edit)."""
    return [n for n in changed_inputs(before, now) if n in before or now.get(n) != ABSENT]


def _failed(result: ActionResult) -> bool:
    return any(t.outcome in FAILING for t in result.tests) or result.exit_code not in (0, 5)


_AS_OF_OLDER = " (as of the last run with a per-test record)"


def _undone_since(
    last: LastKeys, target: str, judge: tuple[str, dict[str, str]]
) -> set[str] | None:
    """The inputs in which the result the last run of ``target`` showed differs from ``judge``,
    the result its nodes are judged by; None when that is the one shown (or nothing is known)."""
    seen = last.seen(target)
    if seen is None or seen == judge[0]:
        return None
    shown = next((inputs for k, inputs in last.history(target) if k == seen), None)
    return None if shown is None else set(changed_inputs(shown, judge[1]))


def _as_of_older(reasons: dict[str, str], undone: set[str] | None) -> dict[str, str]:
    """Node reasons judged against an older result than the one last seen: a reason naming a
    file that differs only from that older result (an edit undone since), or a failure of
    that run, says that it is that run's. None: the result judged by is the one last seen."""
    if undone is None:
        return reasons
    return {
        node: why + _AS_OF_OLDER
        if why == "failed last time" or any(u in why for u in undone)
        else why
        for node, why in reasons.items()
    }


def _runnable(node_id: str) -> bool:
    """A stored node id that can be passed back to pytest: a test's, not a file's (a collection
    error), and as pytest knows it (not redacted: a parametrize id held a secret)."""
    return "::" in node_id and not is_redacted(node_id)


def _all_runnable(nodes: Iterable[str], result: ActionResult) -> bool:
    """Can each of `nodes` (of `result`) be passed back to pytest? Not one pytest cannot find
    by its id (a name holding "::"): it runs only as part of its whole file."""
    unaddressable = {t.node_id for t in result.tests if not t.addressable}
    return all(_runnable(n) and n not in unaddressable for n in nodes)


def last_result(cache: Cache, last: LastKeys, target: str) -> ActionResult | None:
    """The result last stored for `target` (whatever its key), if still in the cache."""
    previous = last.get(target)
    return cache.get_action(previous[0], count=False) if previous is not None else None


def stale(
    graph: BuildGraph,
    cache: Cache,
    interpreter: Interpreter,
    pytest_args: Sequence[str] = (),
    *,
    environ: Mapping[str, str] | None = None,
    fingerprints: FingerprintStore | None = None,
) -> list[PlannedFile]:
    """Test files with no usable (passing) cached result for their current inputs, for a run
    with `pytest_args` (a polluter that would only run with one of them has one)."""
    planned = plan(
        graph, cache, interpreter, Selection(pytest_args=tuple(pytest_args)), environ=environ,
        fingerprints=fingerprints, count=False,
    )  # fmt: skip
    return [f for f in planned.to_run if f.reason not in (COLLECTED_BEFORE, RUNS_BEFORE)]


# ------------------------------------------------------------------------------ run


@dataclass(slots=True)
class FileOutcome:
    planned: PlannedFile
    result: ActionResult | None  # None: not run to completion (interrupted, or -x stopped
    # the session before any of its tests; one it stopped inside has what ran, not stored)
    cached: bool
    stored: bool = False
    served: tuple[str, ...] = ()  # run in part: the node ids of `result` this run did not run

    @property
    def target(self) -> str:
        return self.planned.target


def planned_info(f: PlannedFile) -> PlannedFileInfo:
    """The wire form of a planned file (the run's plan event, in process or from the daemon)."""
    from maestro.wire import PlannedFileInfo

    return PlannedFileInfo(
        target=f.target,
        runs=f.runs,
        reason=f.reason,
        describe=f.describe(),
        changed=list(f.changed),
        cached_tests=served_tests(f),
    )


def served_tests(f: PlannedFile) -> int:
    """The tests of `f` the cache serves: all of a cached result's, the carried tests a run of
    some of its tests does not run; none of a file that runs whole (a cached polluter that
    runs with a file collected after it still holds its cached result)."""
    if f.runs and f.run_nodes is not None and f.carried is not None:
        running = set(f.run_nodes)
        return sum(t.test_count() for t in f.carried.tests if t.node_id not in running)
    if f.runs and f.run_nodes is None:
        return 0
    return f.cached.test_count() if f.cached else 0


def summary_result(
    summary: Summary, cache: Cache | None = None, redactor: Redactor | None = None
) -> RunTestsResult:
    """The wire form of a Summary (ActionResults as their JSON-mode dumps; a served result's
    dump is made once per process when its `cache` is given); `redactor`: the run's (its
    environment's secrets), for what pytest printed."""
    from maestro.wire import RunCounts, RunFileResult, RunTestsResult

    def dumped(o: FileOutcome, result: ActionResult) -> dict[str, Any]:
        if cache is not None and o.cached:
            return cache.action_json(o.planned.key.hex, result)
        return result.model_dump(mode="json")

    # built from the engine's own objects: validating every test's outcome again (a dict per
    # test, tens of thousands on a large suite) would only cost time
    files = [
        RunFileResult.model_construct(
            target=o.target,
            cached=o.cached,
            stored=o.stored,
            served=list(o.served),
            result=dumped(o, o.result) if o.result is not None else None,
        )
        for o in summary.files
    ]
    counts = {name: getattr(summary, name) for name in RunCounts.model_fields}
    said = _why_unfinished(summary.report) if summary.not_run_files else ""
    redactor = redactor or Redactor.from_environ(os.environ)
    return RunTestsResult(
        **counts, files=files, pytest_said=said, session_failed=_session_failed(summary),
        warnings_shown=warnings_shown(summary, redactor),
        configure_warnings=configure_warnings(summary, redactor),
        confirmed=summary.confirmed, environment=summary.environment, notes=summary.notes,
    )  # fmt: skip


_SAID_LINES = 15
_WARNING_LINES = 300  # of the warnings summary shown; pytest shows them all
_COLLAPSED = 10  # pytest lists a message's locations up to this many, then counts them by file


def warnings_shown(summary: Summary, redactor: Redactor) -> str:
    """pytest's "warnings summary" for the warnings the tests run now recorded, as its terminal
    reporter words it (locations grouped under each message), without its title and docs link;
    redacted as a test's output is (a warning's text can hold a secret). Served files' warnings
    are only counted: their texts are not stored."""
    end = summary.report.session_end if summary.report is not None else None
    if end is None or not end.warning_texts:
        return ""
    lines: list[str] = []
    shown = 0
    for message, count, locations, by_file in end.warning_texts:
        if sum(by_file.values()) < _COLLAPSED:
            block = list(locations)
        else:
            block = [f"{f}: {plural(n, 'warning')}" for f, n in by_file.items()]
        if block:
            block.append("\n".join("  " + line for line in message.splitlines()).rstrip())
        else:
            block.append(message.rstrip())
        block = "\n".join(block).splitlines()
        if lines and len(lines) + len(block) > _WARNING_LINES:
            break
        lines += [*block, ""]
        shown += count
    ran = max(summary.warnings - summary.cached_warnings, shown)
    if ran > shown:
        lines.append(
            f"({ran - shown} more of this run's warnings not shown: pytest shows them all)"
        )
        lines.append("")
    return str(redactor.redact("\n".join(lines)))


def configure_warnings(summary: Summary, redactor: Redactor) -> str:
    """The warnings pytest's configuration raised (a conftest's or a plugin's
    ``pytest_configure``), as pytest printed them on its error output: no part of its summary;
    redacted."""
    end = summary.report.session_end if summary.report is not None else None
    if end is None or not end.configure_warnings:
        return ""
    return str(redactor.redact("".join(end.configure_warnings)))


_STOPPED = re.compile(r"!+ stopping after \d+ failures? !+")


def _why_unfinished(report: RunReport | None) -> str:
    """What pytest printed about why files did not finish: its INTERNALERROR lines, else the end
    of its error output, else of its output; redacted (it goes to the terminal and the wire)."""
    if report is None:
        return ""
    out = report.stdout.decode(errors="replace").splitlines()
    lines = [line for line in out if line.startswith("INTERNALERROR>")]
    if not lines and _stopped_by_maxfail(report):  # -x, --maxfail: the files after never ran
        lines = [line for line in out if _STOPPED.search(line)]
    if not lines:
        lines = report.stderr.decode(errors="replace").strip().splitlines() or out
    tail = "\n".join(line.rstrip() for line in lines[-_SAID_LINES:]).strip()
    return str(Redactor.from_environ(os.environ).redact(tail)) if tail else ""


def _session_failed(summary: Summary) -> str:
    """What pytest printed when it failed its session with no test failing: a plugin did, after
    the tests (pytest-cov's ``--cov-fail-under``: "FAIL Required test coverage of 99% not
    reached"). Its gate judged only the tests that ran, not those served from the cache, so it
    does not fail the run; it is told. Redacted (it goes to the terminal and the wire)."""
    report = summary.report
    if report is None or report.exit_code != 1 or summary.failed or summary.errors:
        return ""
    if summary.confirmed or any(r.outcome in FAILING for r in report.results.values()):
        # a test failed in pytest's run, its result replaced since (a partial run's failure its
        # whole file did not repeat, a file run again with a variable it read passed): pytest's
        # 1 is that failure's
        return ""
    out = [line.rstrip() for line in report.stdout.decode(errors="replace").splitlines()]
    told = [line for line in out if _FAIL_WORD.search(line) and not _SUMMARY_LINE.match(line)]
    tail = "\n".join(told[-_SAID_LINES:]).strip() or "(it printed no reason)"
    return str(Redactor.from_environ(os.environ).redact(tail))


# a line telling a failure, and pytest's own closing counts line ("=== 3 passed in 1.2s ===")
_FAIL_WORD = re.compile(r"\bfail", re.IGNORECASE)
_SUMMARY_LINE = re.compile(r"^=*\s*(\d+ \w+(, )?)+.* in [\d.]+s")


def collection_error_line(target: str, longrepr: str) -> int | None:
    """The line of ``target`` a collection error points at: the innermost frame in it, or a
    SyntaxError's ``File "...", line N`` (pytest prints no ``path:line:`` frame for those)."""
    import re

    name = re.escape(target)
    found = re.findall(rf'File "(?:[^"]*/)?{name}", line (\d+)|^{name}:(\d+): ', longrepr, re.M)
    if not found:
        return None
    quoted, framed = found[-1]
    return int(quoted or framed)


def _errors_of(target: str, errors: Iterable[CollectError]) -> list[CollectError]:
    """The collection errors of ``target``: its own; for a conftest-only folder's target, its
    folder's and those of the folders below it (pytest reports the directory)."""
    folder = walk_folder(target)
    return [
        e
        for e in errors
        if file_of(e.path) == target
        or (folder is not None and (e.path == folder or e.path.startswith(folder + "/")))
    ]


def _collection_failed(outcomes: Iterable[tuple[str, str]]) -> bool:
    """Did the file fail to collect (a failing node that is the file itself)? (node id, outcome)"""
    return any("::" not in node_id and outcome in FAILING for node_id, outcome in outcomes)


def _where(result: TestResult) -> tuple[str | None, int | None, int | None]:
    """A result's (path, line, test line): where it raised, else the test's own line."""
    if result.raised_at is not None:
        return result.raised_at.path, result.raised_at.line, result.test_line
    if result.location is not None:
        return result.location.path, result.test_line or result.location.line, None
    return None, None, None


def _outcome(result: TestResult, node_id: str, flaky: bool, redactor: Redactor) -> TestOutcome:
    from maestro.cache.action import TestOutcome, TestRun

    path, line, test_line = _where(result)
    message, details = redactor.redact_failure(
        result.message, result.longrepr if result.outcome in ("failed", "error") else None
    )
    each = [
        TestRun(
            outcome=r.outcome,
            duration_s=r.duration_s,
            path=where[0],
            line=where[1],
            message=redactor.redact_optional(r.message),
            also=r.also,
        )
        for r in result.each
        for where in (_where(r),)
    ]
    return TestOutcome(
        node_id=node_id,
        outcome=result.outcome,
        duration_s=result.duration_s,
        path=path,
        line=line,
        test_line=test_line,
        message=message,
        details=details,
        flaky=flaky,
        also=result.also,
        subtests_passed=result.subtests_passed,
        addressable=result.addressable,
        each=each,
    )


def _text(
    results: Sequence[TestResult], stream: Literal["stdout", "stderr"], redactor: Redactor
) -> bytes:
    """pytest-like per-file text: failure reports (stdout) and captured output per test."""
    parts: list[str] = []
    for r in results:
        if stream == "stdout" and r.longrepr:
            parts.append(f"{'_' * 20} {r.nodeid} {'_' * 20}\n{r.longrepr}\n")
        captured = r.stdout if stream == "stdout" else r.stderr
        if captured:
            parts.append(f"{'-' * 10} Captured {stream} {r.nodeid} {'-' * 10}\n{captured}")
    return redactor.redact("".join(parts)).encode()


def _served(f: PlannedFile, result: ActionResult, ran: Iterable[TestResult]) -> tuple[str, ...]:
    """The node ids of `result` carried from `f`'s previous result: not run by this run."""
    if f.run_nodes is None or f.carried is None:
        return ()
    fresh = {r.nodeid for r in ran}
    return tuple(t.node_id for t in result.tests if t.node_id not in fresh)


def _file_results(report: RunReport, targets: Iterable[str]) -> dict[str, list[TestResult]]:
    by_file: dict[str, list[TestResult]] = {}
    for nodeid, result in report.results.items():
        by_file.setdefault(file_of(nodeid), []).append(result)
    # a folder pytest reports skipped (its conftest skips at import): the result of each file
    # in it, the folder's one node counted once (summarise)
    named = set(targets)
    for folder in [k for k in by_file if k not in named]:
        for target in named:
            if target.startswith(folder + "/"):
                by_file.setdefault(target, []).extend(by_file[folder])
    return by_file


def _complete(target: str, report: RunReport, results: list[TestResult]) -> bool:
    """Did every collected test of `target` report? (not when interrupted or stopped by -x)"""
    if any(file_of(n) == target for n in report.unfinished):
        return False
    collected = report.collected.files.get(target) if report.collected else None
    if collected is None:
        return report.collected is not None  # nothing collected: complete, if collection ended
    done = {r.nodeid for r in results}
    return all(n in done for n in collected)


def maxfail_of(pytest_args: Sequence[str]) -> int | None:
    """The failures after which pytest stops (``-x``, ``--exitfirst``, ``--maxfail``; the last
    one given wins), None when it runs to the end."""
    found: int | None = None
    args = list(pytest_args)
    for i, arg in enumerate(args):
        if arg == "--":
            break
        if arg in ("-x", "--exitfirst") or re.fullmatch(r"-[vqsl]*x[vqsl]*", arg):
            found = 1
        elif (arg == "--maxfail" and i + 1 < len(args)) or arg.startswith("--maxfail="):
            value = arg.partition("=")[2] if "=" in arg else args[i + 1]
            with contextlib.suppress(ValueError):
                found = int(value) if int(value) > 0 else None
    return found


def until_stopped(outcomes: list[FileOutcome], maxfail: int | None) -> list[FileOutcome]:
    """`outcomes` (in the run's order) as pytest stopping after `maxfail` failures reports
    them: the files served from the cache after the one where it stopped are not reached."""
    if maxfail is None:
        return outcomes
    failed = 0
    for i, o in enumerate(outcomes):
        if o.result is not None:
            failed += sum(
                (t.outcome in FAILING) + sum(a in FAILING for a in t.also) for t in o.result.tests
            )
        if failed >= maxfail:
            return outcomes[: i + 1] + [o for o in outcomes[i + 1 :] if not o.cached]
    return outcomes


def _stopped_by_maxfail(report: RunReport) -> bool:
    """Did pytest end its session early because tests failed (``-x``, ``--maxfail``), rather
    than being interrupted or dying? Its summary then counts the tests that ran."""
    end = report.session_end
    return report.exit_code == 1 and end is not None and end.exitstatus == 1


def _carry_lines(
    trace: TraceRecord,
    old_inputs: Mapping[str, str],
    new_inputs: Mapping[str, str],
    lines: dict[str, set[int]],
    no_lines: set[str],
    fps: FingerprintStore | None,
    root: Path,
) -> None:
    """The line records of a carried result's import-time functions, for the new version of
    each file: as recorded where the file did not change, mapped statement by statement where
    it did and its fingerprints tell (a line number means nothing in another version)."""
    for index in trace.import_time:
        if not 0 <= index < len(trace.functions):
            continue
        name = trace.functions[index]
        found = trace.import_lines.get(str(index))
        path, _, qualname = name.partition("::")
        old, new = old_inputs.get(path), new_inputs.get(path)
        if found is not None and old is not None and old != new and new is not None:
            found = _mapped_lines(fps, root, path, old, new, qualname, found)
        if found is None or old is None:
            no_lines.add(name)
        else:
            lines.setdefault(name, set()).update(found)


def _mapped_lines(
    fps: FingerprintStore | None,
    root: Path,
    path: str,
    old: str,
    new: str,
    qualname: str,
    found: list[int],
) -> list[int] | None:
    if fps is None or ABSENT in (old, new) or not path.endswith(".py"):
        return None
    before, after = fps.get(old), fps.of_file(root / path, new)
    if before is None or after is None:
        return None
    mapped = map_lines(before, after, qualname, set(found))
    return None if mapped is None else sorted(mapped)


def _build_result(
    planned: PlannedFile,
    results: list[TestResult],
    report: RunReport,
    started: datetime,
    share: float,
    inputs: dict[str, str],
    dynamic: list[str],
    pending: list[bytes],
    redactor: Redactor,
    collected: list[str],
    fps: FingerprintStore | None = None,
    root: Path = Path("."),
) -> ActionResult:
    """``collected``: what collecting this file (and any test file it imports) ran; `fps`
    and `root` map the line records a carried result holds to changed files' new versions."""
    from maestro.cache.action import ActionResult, Provenance, TestOutcome, Timing, TraceRecord
    from maestro.engine import junit

    previous = {t.node_id: t for t in planned.cached.tests} if planned.cached else {}
    traced = report.session_trace is not None
    deps = report.file_deps.get(planned.target)
    table: dict[str, int] = {}

    def indices(names: Iterable[str]) -> list[int]:
        return sorted({table.setdefault(n, len(table)) for n in names})

    # node ids as stored: redacted (a parametrize id can hold a secret), each to the same text
    # at every run, so a test keeps its record
    stored_ids = redact_each(redactor, [r.nodeid for r in results])
    # The file failed to collect last time with the same inputs and collects now, or the other
    # way round (another file's import changed the process: warnings made errors, a module
    # patched): every outcome changed, though no node id is in both results.
    errors = _errors_of(planned.target, report.collection_errors)
    fails_now = bool(errors)
    file_flip = bool(previous) and _collection_failed(
        (t.node_id, t.outcome) for t in previous.values()
    ) != (fails_now or _collection_failed((r.nodeid, r.outcome) for r in results))
    tests: list[TestOutcome] = []
    warned_in = report.session_end.warnings if report.session_end is not None else {}
    for r, node_id in zip(results, stored_ids, strict=True):
        before = previous.get(node_id)
        flipped = file_flip or (
            before is not None and (before.outcome in FAILING) != (r.outcome in FAILING)
        )
        outcome = _outcome(r, node_id, flipped or (before is not None and before.flaky), redactor)
        if warned := warned_in.get(r.nodeid):
            outcome = outcome.model_copy(update={"warnings": warned})
        trace = report.traces.get(r.nodeid)
        if traced and trace is not None:
            ran = indices(f"{p}::{q}" for p, qs in trace.functions.items() for q in qs)
            outcome = outcome.model_copy(
                update={
                    "executed": ran,
                    "reads": trace.files,
                    "opaque": trace.opaque,
                    "params": trace.params,
                }
            )
        tests.append(outcome)
    carried = planned.carried if planned.run_nodes is not None else None
    import_time: list[str] = []
    lines: dict[str, set[int]] = {}  # import-time function -> lines it ran (all known)
    no_lines: set[str] = set()  # import-time functions without a line record
    if carried is not None:
        fresh = {t.node_id: t for t in tests}
        merged: list[TestOutcome] = []
        old_trace = carried.trace
        gone = _not_collected(planned, report) | _uncollected(planned, report, redactor)
        for t in carried.tests:
            if t.node_id in fresh:
                merged.append(fresh.pop(t.node_id))
                continue
            if t.node_id in gone:
                continue
            executed: list[int] | None = None
            if traced and old_trace is not None and t.executed is not None:
                executed = indices(old_trace.names(t.executed))
            merged.append(t.model_copy(update={"executed": executed}))
        tests = merged + list(fresh.values())
        if old_trace is not None:
            import_time += old_trace.names(old_trace.import_time)
            _carry_lines(old_trace, carried.inputs, inputs, lines, no_lines, fps, root)
    if report.session_trace is not None:
        fresh_time = [f"{p}::{q}" for p, qs in report.session_trace.functions.items() for q in qs]
        fresh_time += collected
        import_time += fresh_time
        line_records = report.session_trace.lines
        for name in fresh_time:
            path, _, qualname = name.partition("::")
            found = line_records.get(path, {}).get(qualname)
            if found is None:
                no_lines.add(name)
            else:
                lines.setdefault(name, set()).update(found)
    record = (
        TraceRecord(
            mode=report.session_trace.mode,
            import_time=indices(import_time),
            functions=list(table),
            import_lines={
                str(table[name]): sorted(found)
                for name, found in lines.items()
                if name not in no_lines and name in table
            },
            collection_reads=deps.collected if deps is not None else [],
        )
        if report.session_trace is not None
        else None
    )
    for err in errors:
        message, details = redactor.redact_failure(
            f"collection failed: {err.message}", err.longrepr or None
        )
        tests.append(
            TestOutcome(
                node_id=file_of(err.path), outcome="error", path=planned.target,
                line=collection_error_line(planned.target, err.longrepr),
                message=message, details=details,
            )
        )  # fmt: skip
    failing = any(t.outcome in FAILING for t in tests)
    exit_code = 1 if failing else (0 if tests else 5)
    collection = "".join(
        f"{'_' * 20} ERROR collecting {e.path} {'_' * 20}\n{e.longrepr}\n" for e in errors
    )
    stdout_blob = _text(results, "stdout", redactor) + redactor.redact(collection).encode()
    draft = ActionResult(
        exit_code=exit_code,
        tests=tests,
        timing=Timing(started_at=started, wall_s=0, cpu_s=0),
        provenance=Provenance.current(),
    )
    junit_xml = junit.render([(draft, False)], name=planned.target)
    blobs = [stdout_blob, _text(results, "stderr", redactor), junit_xml]
    pending.extend(blobs)  # stored with the run's other blobs, in one transaction
    stdout_d, stderr_d, junit_d = (digest_bytes(b) for b in blobs)
    # the file's share of the whole pytest process, start-up and collection included: what
    # serving it later saves (its tests alone often take a few ms)
    wall = report.wall_s * share
    return draft.model_copy(
        update={
            "stdout": stdout_d,
            "stderr": stderr_d,
            "junit": junit_d,
            "timing": Timing(started_at=started, wall_s=wall, cpu_s=report.cpu_s * share),
            "inputs": inputs,
            "dynamic_deps": dynamic,
            "trace": record,
            "opaque": list(deps.opaque) if deps is not None else [],
            "collect_warnings": (
                report.session_end.collect_warnings.get(planned.target, 0)
                if report.session_end is not None
                else 0
            ),
            "session_warnings": _session_warnings(report),
            "deselected": (
                report.collected.user_deselected.get(planned.target, 0)
                if report.collected is not None
                else 0
            ),
        }
    )


def _session_warnings(report: RunReport) -> int:
    """The warnings a run recorded while collecting that point at none of its test files."""
    if report.session_end is None:
        return 0
    files = report.collected.files if report.collected is not None else {}
    return sum(n for f, n in report.session_end.collect_warnings.items() if f not in files)


def _not_collected(planned: PlannedFile, report: RunReport) -> set[str]:
    """Those of the nodes served from functions given whole (`PlannedFile.served`) that pytest
    did not collect: their ids were taken to stay, but pytest names those nodes otherwise now
    (run under their new ids) or has them no more. Their old results leave the file's result."""
    if not planned.served or report.collected is None:
        return set()
    return set(planned.served) - set(report.collected.deselected)


def _uncollected(planned: PlannedFile, report: RunReport, redactor: Redactor) -> set[str]:
    """The carried nodes of a file its run collected whole (`with_companions` names a file
    whole when Maestro picks its tests; a confirmation runs it whole) that pytest collects no
    more: an id made at collection time (datetime.now() in a parametrize list) is another
    node at each collection, and its old result must not stay beside the new one."""
    collected = report.collected
    if planned.nodes is not None or planned.carried is None or collected is None:
        return set()
    target = planned.target
    now = [*collected.files.get(target, ()), *(n for n in collected.deselected if
                                                file_of(n) == target)]  # fmt: skip
    if not now:
        return set()  # not collected at all (a collection error): the error says so
    kept = set(redact_each(redactor, now))
    return {t.node_id for t in planned.carried.tests if t.node_id not in kept}


def _importers(graph: BuildGraph, modules: list[str]) -> dict[str, set[str]]:
    """Module -> the files importing it, directly or through other modules (import edges
    only: a file that merely reads another does not share its module)."""
    out: dict[str, set[str]] = {}
    for module in modules:
        seen, stack = {module}, [module]
        while stack:
            node = stack.pop()
            for source in graph.rdeps.get(node, ()):
                edge = graph.deps.get(source, {}).get(node)
                if source not in seen and edge is not None and edge.kind in IMPORT_EDGES:
                    seen.add(source)
                    stack.append(source)
        out[module] = seen
    return out


def _collection_code(report: RunReport, target: str, importers: dict[str, set[str]]) -> list[str]:
    """What collecting `target` ran, and collecting any test file it imports (whose module,
    imported by pytest first, it reuses without running its top level again)."""
    return [
        f"{p}::{q}"
        for path, found in report.file_deps.items()
        if path == target or target in importers.get(path, ())
        for p, qs in found.functions.items()
        for q in qs
    ]


def store_results(
    graph: BuildGraph,
    cache: Cache,
    planned: Plan,
    to_run: list[PlannedFile],
    report: RunReport,
    started: datetime,
    redactor: Redactor,
    keep: Callable[[PlannedFile], bool] | None = None,
    agree: bool = False,
) -> list[FileOutcome]:
    """Store each run file's result. Everything the tests printed, raised or failed with goes
    through ``redactor`` first: the cache is what a team cache uploads. ``keep`` (the policy's
    cache decision) may refuse a file's result: it is shown, not stored. With ``agree`` (a
    re-recording of cached results) a result is stored only when every node's outcome is the
    cached result's."""
    by_file = _file_results(report, [f.target for f in to_run])
    importers = _importers(graph, [p for p, d in report.file_deps.items() if d.functions])
    keep_carried_inputs(graph, report, to_run)
    named = planned.polluters is not None and planned.polluters.among is not None
    keep_unselected_inputs(graph, report, to_run, planned.pytest_args, named=named)
    note_program_outputs(graph, report, planned.digests.frozen_at)
    learn(graph, report)
    # installed code edited in place that this run loaded first (a dependency's dependency no
    # earlier run had loaded), or edited while it ran: the plan's keys do not cover that edit,
    # so the outcomes are shown, not stored (the next plan keys it)
    uncovered_edit = graph.installed_edited() != planned.context.edited
    learn_env(graph.root, report, planned.env_allowlist)
    with contextlib.suppress(OSError):
        graph.save()
    polluters = planned.polluters or Polluters.load(graph.root, full_run(graph.pytest, graph.root))
    planned.polluters = polluters
    if report.collected is not None:
        found = report.collected.polluters
        polluters.learn([*report.collected.files, *found], found)
        collected = report.collected
        planned.new_polluters |= polluters.learn_state(
            collected.observed,
            collected.state,
            collected.state_new,
            lambda p: polluters.import_of(p, planned.digests, lambda q: _source(graph.root / q)),
        )
        polluters.learn_loaders(
            collected.observed,
            {p: [m.path for m in d.modules] for p, d in report.file_deps.items() if d.modules},
        )
    if report.session_end is not None:
        deselected = report.collected.user_deselected if report.collected is not None else {}
        # every test of it ran: not a selection, nor a file -x or an interrupt cut short
        whole = [
            f.target
            for f in to_run
            if f.nodes is None
            and f.run_nodes is None
            and not deselected.get(f.target)
            and _complete(f.target, report, by_file.get(f.target, []))
        ]
        planned.new_polluters |= polluters.learn_ran(
            whole, report.session_end.ran_state, planned.digests, report.session_end.ran_names
        )
    try:
        polluters.save()
    except OSError:
        log.warning("could not save the collection polluters of this workspace", exc_info=True)
    total = sum(r.duration_s for r in report.results.values())
    digests = planned.digests
    # Post-run keys, with the deps just recorded (pinned digests for inputs known before).
    post = {
        f.target: file_key(graph, f.target, planned.context, digests, polluters, f.nodes)
        for f in to_run
    }
    file_inputs = {
        name: digest
        for key in post.values()
        for name, digest in key.inputs.items()
        if is_file_input(name) or name.startswith(LISTING)
    }
    changed_during_run = {
        name
        for name, digest in file_inputs.items()
        if digests.fresh(name) != (None if digest == "absent" else digest)
    }
    # An input first seen by this run is hashed only now: a change made after the tests read it
    # and before this hash would key the old content's outcome to the new content. Its mtime
    # tells; what the run wrote itself is the content it read.
    end = report.session_end
    ran_wrote = set(end.written if end is not None else ()) | report.produced
    changed_during_run |= digests.modified_during_run(file_inputs.keys() - ran_wrote)
    if changed_during_run:  # the user reads it in the run's notes (`changed_during_run_note`)
        log.info(
            "inputs changed while the tests ran, their results are not cached: %s",
            ", ".join(sorted(changed_during_run)[:5]),
        )
        planned.changed_during_run |= changed_during_run
    # a file the named paths' order runs after other files than the full run does may owe
    # its outcome to that order: shown, not stored (the cache holds what the full run says);
    # a run of named paths keys its files by their own order (`Polluters.scope`)
    shuffled = reordered(
        planned.order,
        polluters.run_order,
        [f.target for f in to_run],
        lambda t, among: [*polluters.before(t, among), *ran_polluters([post[t]])],
    )
    if shuffled:
        log.info(
            "not cached, run in another order than the full run's: %s",
            ", ".join(sorted(shuffled)[:5]),
        )
    borrowed = _borrowed(graph, report, polluters, planned.order, post)
    withheld = withheld_reads(report, [f.target for f in to_run], planned.withheld)
    whole_files = _ran_whole(report, to_run)
    out: list[FileOutcome] = []
    stored_keys: list[ActionKey] = []
    blobs: list[bytes] = []
    actions: list[tuple[str, ActionResult]] = []
    for f in to_run:
        results = by_file.get(f.target, [])
        complete = _complete(f.target, report, results)
        if not complete and not (results and _stopped_by_maxfail(report)):
            out.append(FileOutcome(f, None, False))
            continue
        share = (sum(r.duration_s for r in results) / total) if total else 1 / len(to_run)
        key = post[f.target]
        result = _build_result(
            f, results, report, started, share, key.inputs,
            list(graph.index.dynamic.get(f.target, [])), blobs, redactor,
            _collection_code(report, f.target, importers), planned.fingerprints, graph.root,
        )  # fmt: skip
        if isinstance(polluters.reads, ReadNames):
            # which run polluters it runs after follows what the code it ran now reads
            polluters.reads.ran(f.target, result)
            if late := _late_polluters(f, key, whole_files, planned.order, polluters):
                # its tests now read what a run polluter it did not run after leaves changed:
                # shown, not stored, and run again after it (`repollute`)
                log.info("%s reads the state %s leave: run again after them", f.target, late)
                planned.late.add(f.target)
                out.append(FileOutcome(f, result, False, stored=False))
                continue
        if not complete:  # what ran of it is shown, as pytest shows it; the rest never ran
            served = _served(f, result, results)
            out.append(FileOutcome(f, result, False, stored=False, served=served))
            continue
        if agree and not same_outcomes(f.cached, result):
            log.warning("%s: outcomes differ from the cached result's; kept the cached", f.target)
            out.append(FileOutcome(f, result, False, stored=False))
            continue
        if agree and f.cached is not None:
            result = timed_as(f.cached, result)
        served = _served(f, result, results)
        if uncovered_edit:
            out.append(FileOutcome(f, result, False, stored=False, served=served))
            continue
        if changed := changed_during_run & key.inputs.keys():
            # the daemon's own run (nobody waited for it): what its tests did not write, an edit
            edited = changed - ran_wrote if planned.background else set()
            planned.last.not_stored(f.target, [*edited, _BACKGROUND] if edited else changed)
        # a variable pytest did not get, read: plain pytest, which gets it, may say otherwise
        if unset := withheld.get(f.target):
            planned.last.not_stored(f.target, [f"env:{n}" for n in unset])
        if f.target in shuffled and not changed and not unset:
            planned.last.not_stored(f.target, [_REORDERED])
        if f.target in borrowed and not changed and not unset:
            log.info("%s used modules %s imported: not cached", f.target, borrowed[f.target])
            planned.last.not_stored(f.target, [_BORROWED])
        unkeyed = f.target in shuffled or f.target in borrowed
        if f.deselect or changed or unset or unkeyed or (keep and not keep(f)):
            # a predictive run's deselected tests have no result for these inputs
            out.append(FileOutcome(f, result, False, stored=False, served=served))
            continue
        actions.append((key.hex, result))
        if cache.shared_with_team and f.key.hex != key.hex and not _failed(result):
            actions.append((lookup_pointer(f.key.hex), result))  # for a clean clone's lookup
        planned.last.set(key)
        stored_keys.append(key)
        out.append(FileOutcome(f, result, False, stored=True, served=served))
    cache.put_run(blobs, actions)  # shown results (stored or not) need their blobs
    _remember_fingerprints(planned, stored_keys, redactor)
    try:
        planned.last.save()
    except OSError:
        log.warning("could not save the last keys of this workspace", exc_info=True)
    else:
        prune_versions_now_and_then(planned.digests.graph.root)
    return out


def _borrowed(
    graph: BuildGraph,
    report: RunReport,
    polluters: Polluters,
    order: FileOrder,
    keys: Mapping[str, ActionKey],
) -> dict[str, list[str]]:
    """For a run of named paths (`Polluters.among`): test file -> the other files whose
    collection imported first, in this run, a module its tests ran that its own imports do not
    reach, and that its key does not name (it names the full run's first importer, `loaders`,
    only when that one is named). Its outcome may owe to them what `pytest FILE` alone would
    not give it: not stored. A full run's key names the importer that run has."""
    if polluters.among is None:
        return {}
    first: dict[str, str] = {}
    for p in order.sorted(p for p, d in report.file_deps.items() if d.modules):
        for module in report.file_deps[p].modules:
            first.setdefault(module.path, p)
    found: dict[str, list[str]] = {}
    for target, key in keys.items():
        others = {p for m, p in first.items() if p != target and m in key.inputs}
        others -= {n.removeprefix(WITH) for n in key.inputs if n.startswith(WITH)}
        if not others:
            continue
        own = _own_imports(graph, target)
        hit = {p for m, p in first.items() if p in others and m in key.inputs and m not in own}
        if hit:
            found[target] = sorted(hit)
    return found


def _late_polluters(
    f: PlannedFile,
    key: ActionKey,
    whole: Collection[str],
    order: FileOrder,
    polluters: Polluters,
) -> list[str]:
    """The run polluters in `key` (a file's, after its run) whose changes the code its tests
    ran may read (`Polluters.read_by`) and that did not run before it in this run (`whole`:
    the files whose every test it ran)."""
    at = order.key(f.target)
    return [p for p in ran_polluters([key], polluters) if p not in whole or order.key(p) >= at]


def _ran_whole(report: RunReport, to_run: Sequence[PlannedFile]) -> set[str]:
    """The test files a run ran every test of: those it stores that ran whole, and the others
    that ran tests (run polluters run with them: always whole)."""
    stored = {f.target for f in to_run}
    ran = {f.target for f in to_run if f.nodes is None and f.run_nodes is None}
    return ran | {t for n in report.results if (t := file_of(n)) not in stored}


def changed_during_run_note(planned: Plan) -> list[str]:
    """The run's note on the inputs that changed while its tests ran (none: no note)."""
    changed = sorted(planned.changed_during_run)
    if not changed:
        return []
    more = f" and {len(changed) - 5} more" if len(changed) > 5 else ""
    return [
        "inputs changed while the tests ran, their results are not cached: "
        + ", ".join(changed[:5])
        + more
    ]


def passed_alone(outcome: FileOutcome) -> bool:
    """Whether a re-run of only the failed nodes of an exact hit passed one of them: the same
    inputs, another answer, which the whole file (what pytest runs) must confirm."""
    f, result = outcome.planned, outcome.result
    if f.reason != "failed last time" or f.run_nodes is None or f.cached is None:
        return False
    if result is None:
        return False
    failed = {t.node_id for t in f.cached.tests if t.outcome in FAILING}
    return any(t.node_id in failed and t.outcome not in FAILING for t in result.tests)


def failed_in_part(outcome: FileOutcome) -> bool:
    """Whether a test failed in a run of only some tests of its file (node-level selection of a
    changed file): it may need what the tests before it did (pytest always runs those first),
    which the whole file must confirm. A failed node re-run with the same inputs is not: its
    failure was a whole file's."""
    f, result = outcome.planned, outcome.result
    if f.run_nodes is None or f.nodes is not None or f.reason == "failed last time":
        return False
    return result is not None and any(t.outcome in FAILING for t in result.tests)


# pytest-timeout's failure message (its `Failed: Timeout (>3.0s) from pytest-timeout.`)
_TIMEOUT = re.compile(r"Timeout \(>[0-9.]+s\) from pytest-timeout")


def timed_out(outcome: FileOutcome) -> bool:
    """Whether a test of a traced run ran out of its pytest-timeout: traced, a call-heavy test
    runs several times slower than under pytest, so the untraced run must say."""
    result = outcome.result
    return result is not None and any(
        t.outcome in FAILING and t.message is not None and _TIMEOUT.search(t.message)
        for t in result.tests
    )


def confirm_until(outcome: FileOutcome) -> tuple[str, ...] | None:
    """The tests of a doubted run (`passed_alone`, `failed_in_part`) that their file must
    confirm: it re-runs up to the last of them, as pytest runs it (the tests after them run
    later and cannot change what they do), its outcomes replacing the doubted run's, whose
    other tests stay. None: the whole file (a collection error, an id pytest does not know)."""
    f, result = outcome.planned, outcome.result
    if result is None:
        return None
    if set(f.run_nodes or ()) & set(outcome.served):
        # stopped (-x, --maxfail) before tests whose inputs changed: their outcomes in
        # `result` are the previous run's, which the file's run up to the failures would keep
        return None
    if passed_alone(outcome):
        nodes = tuple(f.run_nodes or ())
    else:
        nodes = tuple(t.node_id for t in result.tests if t.outcome in FAILING)
    return nodes if nodes and _all_runnable(nodes, result) else None


def confirmation_notes(part: FileOutcome, whole: FileOutcome, limit: int = 3) -> list[str]:
    """What the whole file's run said of the tests whose run without the rest of their file
    was put to it: one plain sentence for one test, one for the tests that were doubted for
    the same reason (`limit` named, the rest counted)."""
    if part.result is None:
        return []
    after = {t.node_id: t.outcome for t in whole.result.tests} if whole.result else {}
    cached = part.planned.cached
    doubted: dict[str, list[str]] = {}  # why a test was put to its file -> those tests
    if passed_alone(part) and cached is not None:
        failed = {t.node_id for t in cached.tests if t.outcome in FAILING}
        for t in part.result.tests:
            if t.node_id in failed and t.outcome not in FAILING:
                doubted.setdefault("passed when re-run alone", []).append(t.node_id)
    else:
        for t in part.result.tests:
            if t.outcome in FAILING:
                how = f"{t.outcome} when run without the other tests of its file"
                doubted.setdefault(how, []).append(t.node_id)

    def said(node: str) -> str:
        return after.get(node, "not collected") if whole.result else "did not finish"

    notes: list[str] = []
    for how, nodes in doubted.items():
        if len(nodes) == 1:
            node = nodes[0]
            notes.append(f"{node} {how}; its file re-ran up to it, as pytest runs it: {said(node)}")
            continue
        by_answer: dict[str, list[str]] = {}
        for node in nodes:
            by_answer.setdefault(said(node), []).append(node.partition("::")[2] or node)
        if len(by_answer) == 1:
            answer = f"all {next(iter(by_answer))}"
        else:
            answer = "; ".join(f"{a}: {_named(names, limit)}" for a, names in by_answer.items())
        names = _named([n.partition("::")[2] or n for n in nodes], limit)
        their = how.replace("of its file", "of their file")
        notes.append(
            f"{len(nodes)} tests of {part.target} ({names}) {their}; the file re-ran up to "
            f"them, as pytest runs it: {answer}"
        )
    return notes


def _named(names: Sequence[str], limit: int) -> str:
    """The first `limit` names, the rest counted."""
    shown = ", ".join(names[:limit])
    return shown if len(names) <= limit else f"{shown} and {len(names) - limit} more"


def same_outcomes(cached: ActionResult | None, result: ActionResult) -> bool:
    """The same nodes with the same outcomes."""
    if cached is None or cached.exit_code != result.exit_code:
        return False
    return {t.node_id: t.outcome for t in cached.tests} == {
        t.node_id: t.outcome for t in result.tests
    }


def timed_as(cached: ActionResult, result: ActionResult) -> ActionResult:
    """``result`` with the timing of ``cached``, the run it re-records: a re-recording runs
    traced and niced, so its own times are not what serving the file saves, nor how long its
    tests take under pytest."""
    took = {t.node_id: t.duration_s for t in cached.tests}
    tests = [
        t.model_copy(update={"duration_s": took[t.node_id]}) if t.node_id in took else t
        for t in result.tests
    ]
    return result.model_copy(update={"timing": cached.timing, "tests": tests})


def trace_env(
    interpreter: Interpreter,
    planned: Plan,
    to_run: list[PlannedFile],
    environ: Mapping[str, str] | None,
) -> dict[str, str]:
    """Before 3.12 the only C-level call hook is cProfile's, which about doubles a call-heavy
    suite. A per-node record only pays off when a file re-runs after a change, so files that
    never ran here run untraced (file-level records, always safe) and are traced from their
    next run on. ``MAESTRO_TRACE`` in the environment still decides when set."""
    if interpreter.version >= (3, 12) or TRACE_ENV in (os.environ if environ is None else environ):
        return {}
    if any(planned.last.get(f.target) is not None for f in to_run):
        return {}
    return UNTRACED


UNTRACED = {TRACE_ENV: "off"}


def keep_carried_inputs(
    graph: BuildGraph, report: RunReport, to_run: Iterable[PlannedFile]
) -> None:
    """A run of some tests of a file records only what those tests read; the tests carried
    from the previous result depend on what they read then. Joined into the file's recorded
    deps, which replace the file's in the graph (`learn`): the file's deps recorded so far, and
    what the carried result's key held that the graph no longer gives the file (the previous
    result's other inputs are static ones). Else a file only a carried test read leaves the
    file's key, and its next change re-runs nothing (a stale pass)."""
    for f in to_run:
        deps = report.file_deps.get(f.target)
        if f.run_nodes is None or f.carried is None or deps is None:
            continue
        known = set(graph.index.dynamic.get(f.target, []))
        reach = graph.closure(f.target)
        known |= {
            n
            for n in f.carried.inputs
            if n not in reach
            and (
                n == WORKSPACE
                or os.path.isabs(n)
                or is_file_input(n)
                or n.startswith(LISTING)
                or (n.startswith(ENV) and n[len(ENV) :] in KEYED_WHEN_READ)
            )
        }
        opaque = list(deps.opaque)
        if WORKSPACE in known and not opaque:
            carried = [why for t in f.carried.tests for why in t.opaque]
            opaque = carried[:1] or ["the previous result depends on the whole workspace"]
        report.file_deps[f.target] = _joined(deps, known, opaque)


def _joined(deps: FileDeps, known: Iterable[str], opaque: list[str]) -> FileDeps:
    """``deps`` with the recorded inputs ``known`` joined in (workspace files, paths outside)."""
    known = set(known)
    env = {n for n in known if n.startswith(ENV)}
    return deps.model_copy(
        update={
            "files": sorted(
                set(deps.files)
                | {n for n in known - env if n != WORKSPACE and not os.path.isabs(n)}
            ),
            "external": sorted(set(deps.external) | {n for n in known if os.path.isabs(n)}),
            "opaque": opaque,
            "env": sorted(set(deps.env) | {n.removeprefix(ENV) for n in env}),
        }
    )


def keep_unselected_inputs(
    graph: BuildGraph,
    report: RunReport,
    to_run: Iterable[PlannedFile],
    pytest_args: Sequence[str],
    *,
    named: bool = False,
) -> None:
    """A run of the tests the user chose (node ids, or pytest arguments, which may deselect
    some or stop early: `-k`, `-m`, `-x`) records only what those tests read; the file's other
    tests still depend on what its earlier runs recorded. Joined into the file's recorded deps,
    as `keep_carried_inputs` does for carried tests: replaced, a data file only a deselected
    test read would leave the graph, and `impacted` (and `test --impacted`) of an edit of it
    would find nothing to run until the next full run. So is a run of `named` paths, which
    collects the file without the full run's other files: a module its tests reached only
    through another file's import there (`Polluters.loaders`) is no input of that run, and
    dropped, the full run's key would no longer collect that file with it."""
    for f in to_run:
        deps = report.file_deps.get(f.target)
        if deps is None or (f.nodes is None and not pytest_args and not named):
            continue
        known = set(graph.index.dynamic.get(f.target, []))
        opaque = list(deps.opaque)
        if WORKSPACE in known and not opaque:
            opaque = ["an earlier run of its other tests depends on the whole workspace"]
        report.file_deps[f.target] = _joined(deps, known, opaque)


def learn(graph: BuildGraph, report: RunReport) -> None:
    """Record into `graph` the inputs a run found: per test file, and per workspace module the
    files its import read (so that every importer depends on them, not only the first)."""
    end = report.session_end
    written = set(end.written) if end is not None else set()
    scratch = _scratch((written | report.produced) - graph.all_files)
    module_reads = end.import_reads if end is not None else {}
    if end is not None:
        graph.note_installed_loaded(end.installed)
    # the user's own variables read outside every file (a conftest's import, a plugin, a
    # program started then): what every test file of the run may see
    session_env = [ENV + n for n in (end.env if end is not None else ()) if n in KEYED_WHEN_READ]
    ran = _code_run(graph, report)
    for target, deps in report.file_deps.items():
        if target in report.collected_only:
            # Collected for its import's state only: it recorded part of its inputs (not its
            # tests' reads, nor what the session read for them). Its recorded deps stay those
            # of its last run, which its cached result's key holds; replaced, its key and the
            # keys naming it would change with no edit, re-running them at the next run.
            continue
        inputs = dynamic_inputs(deps, scratch) + session_env
        inputs += sorted(ran.get(target, set()) - scratch - {target} - set(inputs))
        if imported_elsewhere(graph, target):
            # A test file other files import: what its code reads is also a module's (below),
            # a union, or a run that does not collect it would add to it and the next that
            # does take it away, each time re-running its importers.
            extra = set(module_reads.get(target, ())) | set(graph.index.dynamic.get(target, []))
            inputs += sorted(extra - scratch - {target} - set(inputs))
        graph.record_dynamic(target, inputs)
    named = graph.pytest.python_files
    for module, files in module_reads.items():
        if module in graph.py and module not in report.file_deps:
            # A union: a run of some tests sees only some of what a module reads, and keys that
            # flip with the subset run would re-run the others in turn, for ever. A test module
            # or conftest pytest imported with a module's frame below (a hook) is no edge of it.
            known = graph.index.dynamic.get(module, [])
            found = {
                f
                for f in files
                if f not in scratch
                and not (f.endswith(".py") and (_is_conftest(f) or _named_as_tests(f, named)))
            } - {module}
            if not found <= set(known):
                graph.record_dynamic(module, [*known, *found])
            elif any(f.startswith(LISTING) for f in found):
                graph.record_listings(module, known)  # the names it listed this time
    for name, files in (end.modules if end is not None else {}).items():
        node = DIST + name
        if graph.rdeps.get(node):
            # Files import a name the graph could not resolve, and the run found it loaded from
            # these files (a folder or zip a test put on sys.path): each importer depends on
            # them, as the modules of a later file that takes it from sys.modules. A union, as
            # a run of some tests loads only some of them.
            known = graph.index.dynamic.get(node, [])
            if not set(files) <= set(known):
                graph.record_dynamic(node, [*known, *files])


def _code_run(graph: BuildGraph, report: RunReport) -> dict[str, set[str]]:
    """Per test file, the workspace modules whose code it may have run without importing them:
    a module another file imported first (an entry point's plugin that the code under test
    loads with ``importlib``), which the static graph cannot see and this file's own window
    did not import, is an input all the same. Traced: the files of the functions its tests
    ran. Untraced (a cold run before 3.12): every workspace module a test of the run imported
    first, since any of them may be what it ran (its next, traced run narrows that to what it
    did run). Not test files, nor what its own collection imported: another file's code that a
    collection ran is that file's state (engine/pollution.py), and one it imports is an edge.
    A module collected for its doctests (--doctest-modules) is a module all the same."""
    named = graph.pytest.python_files
    modules = {p for p in graph.py if p not in graph.tests or not _named_as_tests(p, named)}
    if report.session_trace is None:
        lazy = {
            path
            for deps in report.file_deps.values()
            for path in [*deps.files, *(m.path for m in deps.modules)]
            if path in modules and path not in deps.collected
        }
        return dict.fromkeys(report.file_deps, lazy)
    ran: dict[str, set[str]] = {}
    for node, trace in report.traces.items():
        ran.setdefault(file_of(node), set()).update(p for p in trace.functions if p in modules)
    return ran


def dynamic_inputs(deps: FileDeps, scratch: set[str]) -> list[str]:
    """The inputs a run recorded for one test file, as graph nodes: workspace files (less the
    scratch files the run wrote itself), modules, absolute paths outside the workspace (keyed
    by content), and ``@workspace`` when some of what it read cannot be known."""
    found = [f for f in deps.files if f not in scratch]
    found += [m.path for m in deps.modules]
    found += deps.external
    found += [ENV + n for n in deps.env if n in KEYED_WHEN_READ]
    if deps.opaque:
        found.append(WORKSPACE)
    return found


def note_program_outputs(graph: BuildGraph, report: RunReport, since: int | None) -> None:
    """Note as the run's own writes (`RunReport.produced`) the untracked files its tests read
    that were modified after it started, when a test ran a program other than Python, whose
    writes the plugin cannot see: a key ``openssl`` made, a report a tool wrote, new each run,
    the run's output and no input (as what the pytest process wrote itself). A tracked file
    stays an input, changed during the run. An ignored file the user saves while such a run
    goes on is taken for the run's output too."""
    end = report.session_end
    if since is None or end is None or not any(d.opaque for d in report.file_deps.values()):
        return
    known = set(end.written)
    found: set[str] = set()
    for deps in report.file_deps.values():
        for rel in deps.files:
            if rel in known or rel in found or rel in graph.all_files or rel.startswith(LISTING):
                continue
            try:
                if os.stat(graph.root / rel).st_mtime_ns >= since:
                    found.add(rel)
            except OSError:
                continue  # gone: keyed as absent
    report.produced.update(found)


def _scratch(files: set[str]) -> set[str]:
    """What the run wrote that the workspace does not track, and the listings of the
    directories it wrote them in (their names change with every run): no inputs."""
    return files | {LISTING + (posixpath.dirname(f) or ".") for f in files}


def promote(cache: Cache, planned: Plan) -> None:
    """Store node-level hits (no executed code changed) under their new keys."""
    stored = False
    for f in planned.files:
        if f.promote and f.carried is not None:
            update: dict[str, object] = {"inputs": f.key.inputs}
            if (trace := f.carried.trace) is not None and trace.import_lines:
                lines: dict[str, set[int]] = {}
                no_lines: set[str] = set()
                root = planned.digests.graph.root
                fps = planned.fingerprints
                _carry_lines(trace, f.carried.inputs, f.key.inputs, lines, no_lines, fps, root)
                kept = {
                    str(i): sorted(lines[trace.functions[i]])
                    for i in trace.import_time
                    if trace.functions[i] in lines and trace.functions[i] not in no_lines
                }
                update["trace"] = trace.model_copy(update={"import_lines": kept})
            result = f.carried.model_copy(update=update)
            cache.put_action(f.key.hex, result)
            f.cached = result
            planned.last.set(f.key)
            stored = True
    if stored:
        _remember_fingerprints(planned, [f.key for f in planned.files if f.promote])
        try:
            planned.last.save()
        except OSError:
            log.warning("could not save the last keys of this workspace", exc_info=True)


def preload_models() -> None:
    """Import the models a run's events and results are read and built with (pydantic) and
    build their validators, in a thread while pytest runs: neither the hand-over before it nor
    the end after it waits for them."""
    import importlib

    # the summary's module imports the wire and the cache's models
    for name in ("maestro.engine.events", "maestro.engine.junit", "maestro.engine.summary"):
        importlib.import_module(name)
    from maestro.cache.action import ActionResult, Provenance, TestOutcome, Timing, TraceRecord
    from maestro.wire import RunTestsResult

    # their validators too (built on first use): what the results and the summary are built
    # with once pytest has exited, when the run waits for them
    for model in (TestOutcome, Timing, Provenance, TraceRecord, ActionResult, RunTestsResult):
        model.model_rebuild()  # once: a long-lived process has them already


def prefetch_fingerprints(planned: Plan, keys: Iterable[ActionKey], redactor: Redactor) -> None:
    """`_remember_fingerprints` ahead of time, in a worker thread: never fails the run."""
    try:
        _remember_fingerprints(planned, keys, redactor)
    except Exception:
        log.warning("fingerprinting the inputs ahead of the run failed", exc_info=True)


def _remember_fingerprints(
    planned: Plan, keys: Iterable[ActionKey], redactor: Redactor | None = None
) -> None:
    """Keep every Python input at its stored digest, so the next change can be diffed."""
    if planned.fingerprints is not None:
        keep_versions(planned.fingerprints, planned.digests.graph.root, keys, redactor)


def keep_versions(
    fps: FingerprintStore, root: Path, keys: Iterable[ActionKey], redactor: Redactor | None = None
) -> None:
    """Keep each Python input of ``keys`` at its digest in the key (when the file still has
    that content), so that a change from it can be diffed."""
    redactor = redactor if redactor is not None else Redactor.from_environ(os.environ)
    sealed_by = fps.seal_key()

    def sealing(text: str) -> str:
        # each secret a keyed digest of it: a later diff tells whether it changed
        return str(redactor.redact(text) if sealed_by is None else redactor.seal(text, sealed_by))

    done: set[str] = set()
    for key in keys:
        for name, digest in key.inputs.items():
            if digest in done or not name.endswith(".py") or not is_file_input(name):
                continue
            done.add(digest)
            if digest != ABSENT:
                try:
                    fps.keep(root / name, digest, redact=sealing)
                except OSError:
                    log.debug("cannot keep %s for the next diff", name, exc_info=True)


def summarise(
    outcomes: list[FileOutcome],
    report: RunReport | None,
    confirmed: list[str] | None = None,
    environment: list[str] | None = None,
    *,
    subtests_shown: bool = True,
    notes: list[str] | None = None,
) -> Summary:
    """The run's counts as pytest's summary line says them; `subtests_shown`: whether it
    counts passed subtests."""
    from maestro.engine.summary import Summary
    from maestro.wire import RunCounts

    tally: Counter[str] = Counter()
    counted: set[str] = set()
    not_run = cached = ran = flaky = warned = warned_before = deselected = 0
    saved = 0.0
    for o in outcomes:
        if o.result is None:
            not_run += 1
            continue
        if o.cached:
            cached += 1
            saved += o.result.timing.wall_s
        else:
            ran += 1
        warnings = o.result.collect_warnings
        deselected += o.result.deselected
        for t in o.result.tests:
            # a skipped folder's node, in the result of each of its files, counts once; a
            # node id twice in one result (a module collected as tests and as doctests that
            # fails to import: an error from each collector) counts twice, as pytest's
            if t.node_id in counted:
                continue
            tally[t.outcome] += 1
            tally.update(t.also)  # as pytest counts: a teardown's error too
            tally["subtests passed"] += t.subtests_passed
            flaky += t.flaky
            warnings += t.warnings
        counted.update(t.node_id for t in o.result.tests)
        warned += warnings
        # served: the warnings its recorded run had (a node carried by a partial run too)
        warned_before += warnings if o.cached else _carried_warnings(o)
    if report is not None and report.session_end is not None:
        # raised while collecting, pointing at no file of the run (a conftest, a library)
        named = {o.target for o in outcomes}
        warned += sum(n for f, n in report.session_end.collect_warnings.items() if f not in named)
        warned += report.session_end.rewrite_warnings
    elif report is None:
        # all served: those of the session that stored them (raised once per session)
        session = max((o.result.session_warnings for o in outcomes if o.result), default=0)
        warned += session
        warned_before += session
    counts: dict[str, Any] = dict(
        ran_files=ran,
        cached_files=cached,
        not_run_files=not_run,
        passed=tally["passed"],
        failed=tally["failed"],
        errors=tally["error"],
        skipped=tally["skipped"],
        xfailed=tally["xfailed"],
        xpassed=tally["xpassed"],
        subtests_passed=tally["subtests passed"] if subtests_shown else 0,
        deselected=deselected,
        flaky=flaky,
        warnings=warned,
        cached_warnings=warned_before,
        time_saved_s=saved,
        wall_s=report.wall_s if report is not None else 0.0,
        pytest_exit_code=report.exit_code if report is not None else None,
    )
    # built from the engine's own objects: nothing to validate
    exit_code = _exit_code(RunCounts.model_construct(exit_code=0, **counts), report)
    return Summary.model_construct(
        exit_code=exit_code,
        files=outcomes,
        report=report,
        confirmed=confirmed or [],
        environment=environment or [],
        notes=notes or [],
        **counts,
    )


def subtests_shown(graph: BuildGraph, planned: Plan, environ: Mapping[str, str] | None) -> bool:
    """Whether pytest, run as `planned` runs it, counts passed subtests in its summary line."""
    from maestro.graph.pytest_config import shows_passed_subtests

    return shows_passed_subtests(
        graph.pytest,
        planned.pytest_args,
        planned.context.pytest_version,
        os.environ if environ is None else environ,
    )


def _carried_warnings(outcome: FileOutcome) -> int:
    """The warnings of the nodes a partial run of a file served from its earlier result."""
    planned, result = outcome.planned, outcome.result
    if planned.run_nodes is None or planned.carried is None or result is None:
        return 0
    ran = set(planned.run_nodes)
    return sum(t.warnings for t in result.tests if t.node_id not in ran)


def _exit_code(counts: RunCounts, report: RunReport | None) -> int:
    """pytest's codes: 0 ok, 1 failures, 2 interrupted, 3 internal error, 4 usage, 5 no tests."""
    if report is not None and (report.exit_code < 0 or report.exit_code == 2):
        return 2
    if report is not None and report.exit_code in (3, 4):
        return report.exit_code
    if counts.failed or counts.errors:
        return 1
    if counts.not_run_files:
        return 2
    if counts.tests == 0:
        return 5
    return 0


def run(
    graph: BuildGraph,
    cache: Cache,
    interpreter: Interpreter,
    selection: Selection,
    *,
    on_plan: Callable[[Plan], None] | None = None,
    on_event: Callable[[Event], None] | None = None,
    environ: Mapping[str, str] | None = None,
    fingerprints: FingerprintStore | None = None,
    warm: WarmPytest | None = None,
    store_gate: Callable[[PlannedFile], bool] | None = None,
    on_started: Callable[[], None] | None = None,
) -> Summary:
    """Plan and execute synchronously (the CLI's entry point); Ctrl-C stops the child group.
    ``on_started``: called once pytest has its run."""
    planned = plan(graph, cache, interpreter, selection, environ=environ, fingerprints=fingerprints)
    if on_plan is not None:
        on_plan(planned)
    _remember_all_cached(graph.root, not planned.to_run)
    if not planned.to_run:  # all from the cache: no event loop, no process
        promote(cache, planned)
        return summarise(
            [FileOutcome(f, f.cached, True) for f in planned.files],
            None,
            subtests_shown=subtests_shown(graph, planned, environ),
            notes=planned.notes,
        )
    engine = Engine(graph, cache, interpreter, fingerprints, store_gate)
    return run_sync(
        engine.execute(
            planned, on_event=on_event, environ=environ, warm=warm, on_started=on_started
        )
    )


def _remember_all_cached(root: Path, all_cached: bool) -> None:
    marker = workspace_state_dir(root) / ALL_CACHED
    with contextlib.suppress(OSError):
        if all_cached:
            marker.touch()
        else:
            marker.unlink(missing_ok=True)
