"""Node-level selection: which tests of a file re-run after a change.

A stored result carries, per test node, the functions it executed (`ActionResult.trace`). When a
file's key misses only because workspace files changed, the previous result and the AST
fingerprints of both versions of each changed file decide per node (`node_reasons`); anything it
cannot judge per node returns None and the file runs as a whole (see engine/testing.py).
"""

from __future__ import annotations

import ast
import os
from collections import deque
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from maestro.cache.keys import ABSENT, WORKSPACE, input_value
from maestro.cache.store import Cache
from maestro.engine.fixture_params import ParamChange, param_changes
from maestro.engine.pollution import PREFIXES
from maestro.graph import environment
from maestro.graph.build import BuildGraph
from maestro.graph.fingerprints import (
    CLASS_BUILDERS,
    FileFingerprints,
    FingerprintDiff,
    FingerprintStore,
    diff,
    fingerprint_source,
    unexecuted_change,
)
from maestro.graph.records import DIST, LISTING
from maestro.nodeids import file_of
from maestro.redaction import Redactor

if TYPE_CHECKING:
    from maestro.cache.action import ActionResult, TestOutcome, TraceRecord

FAILING = ("failed", "error")
"""The outcomes that fail a test (and re-run it next time)."""


def is_file_input(name: str) -> bool:
    """An input that is a file (not the interpreter, an env var, a distribution, a target, a
    directory's listing, a file collected before or with it or a config section)."""
    prefixes = ("@", "env:", "dist:", "//", LISTING, *PREFIXES)
    return not name.startswith(prefixes) and "#" not in name


def dotted(path: str, qualname: str) -> str:
    """``src/flask/config.py`` + ``Config.from_file`` -> ``flask.config.Config.from_file``."""
    module = path.removesuffix(".py").removesuffix("/__init__")
    module = module.removeprefix("src/").replace("/", ".")
    return module if qualname == "<module>" else f"{module}.{qualname}"


T = TypeVar("T")


def node_reasons(
    graph: BuildGraph,
    cache: Cache,
    fps: FingerprintStore,
    previous_hex: str,
    old_inputs: Mapping[str, str],
    new_inputs: Mapping[str, str],
    changed: list[str],
    prefer: Collection[str] = (),
    regroup: dict[str, str] | None = None,
) -> tuple[ActionResult, dict[str, str]] | None:
    """(previous result, node id -> reason for each node that must re-run), or None when the
    change cannot be judged per node (file-level behaviour applies).

    ``@workspace`` (some of what the file's tests read cannot be known: they ran a non-Python
    program...) changes with any workspace file. When every reason for it belongs to a node
    (``TestOutcome.opaque``), only those nodes depend on the whole workspace: they re-run, and
    the others are judged by the file inputs that changed, as for any file. A reason of the
    run outside any test (a program run by a conftest or a plugin at start-up, whose output
    any test may see) keeps the whole file.

    ``prefer``: files that also differ from a nearer result (judged against an older one); a
    node that executed several changed functions is told the one in those files first, so an
    undone edit is not named as the reason.

    ``regroup`` gets the test functions whose node ids a change of fixture params changes, and
    why (engine/fixture_params.py): given to pytest whole, their nodes without a reason
    served. They may have new nodes: they run even when no node has a reason."""
    if not changed or any(not is_file_input(n) and n != WORKSPACE for n in changed):
        return None
    previous = cache.get_action(previous_hex, count=False)
    if previous is None or previous.trace is None or not previous.tests:
        return None
    skipped = _skipped_at_import(previous)
    if any("::" not in t.node_id for t in previous.tests) and not skipped:
        return None  # a collection error stands for the whole file
    opaque = WORKSPACE in changed
    if opaque and not (previous.opaque and set(previous.opaque) <= _node_opaque(previous)):
        return None
    trace = previous.trace
    whole: str | None = None
    hit: dict[int, str] = {}  # function index -> reason
    data: dict[str, str] = {}  # changed non-Python file -> reason
    fates: dict[str, str] = {}  # the same -> changed, since deleted or since created
    sources: dict[str, str] = {}  # changed .py with function-level changes -> reason for readers
    memoised: dict[str, str] = {}  # bare name of a changed memoised function -> where, in words
    # changed file -> (its fingerprints as the tests ran it, qualname of each changed function
    # -> where, in words): its own functions naming one may have served a result they kept
    callees: dict[str, tuple[FileFingerprints, dict[str, str]]] = {}
    constants: dict[str, str] = {}  # module-level name whose inert assignment changed -> where
    constant_files: set[str] = set()  # the files those assignments are in
    attributes: dict[str, str] = {}  # private class attribute whose inert value changed -> where
    removed: set[str] = set()  # those of the names no longer assigned
    params_changed: list[ParamChange] = []  # per file whose fixtures' params only changed
    versions: dict[str, tuple[FileFingerprints, FileFingerprints]] = {}  # changed .py: old, new
    own: dict[int, tuple[str, str]] = {}  # function index -> (file, qualname): changed itself
    by_path: dict[str, list[tuple[int, str]]] = {}
    by_qualname: dict[str, list[int]] = {}
    for index, name in enumerate(trace.functions):
        path, _, qualname = name.partition("::")
        by_path.setdefault(path, []).append((index, qualname))
        by_qualname.setdefault(qualname, []).append(index)
    read_by_nodes = {p for t in previous.tests for p in t.reads}
    collection_reads = set(previous.trace.collection_reads if previous.trace else ())
    target = file_of(previous.tests[0].node_id) if previous.tests else ""
    for name in changed:
        if name == WORKSPACE:
            continue  # the opaque nodes re-run (below)
        old, new = old_inputs.get(name), new_inputs.get(name)
        if new is None:
            # an input of the result judged by (an older one) that the key no longer names: it
            # counts as it is now, as when an earlier result is served (`holding`); a path
            # outside the workspace a child looked for (a random temporary name) is still absent
            new = input_value(graph, name, graph.file_digest)
            if new == old:
                continue
        if os.path.isabs(name):  # code or a program outside the workspace: not traced per node
            whole = f"{name} (outside the workspace) changed"
            break
        if not name.endswith(".py"):
            became = _became(old, new)
            if reader := _module_reading(graph, name):
                # read by a module's code, which may keep it (a lazily loaded table): tests that
                # only get it from there never read it themselves. The reason names the module,
                # not a node: no node of this file need have read it
                target = file_of(previous.tests[0].node_id)
                who = "this file" if reader == target else f"{reader}, which this file imports,"
                whole = f"{who} read {name} ({became}) and may keep what it read"
                break
            data[name], fates[name] = f"read {name}, {became}", became
            continue
        if old in (None, ABSENT) or new in (None, ABSENT):
            # not among the inputs of the result judged by (it may have been there): a new input
            told = (
                "is a new input" if old is None else "appeared" if old == ABSENT else "was deleted"
            )
            whole = f"{name} {told}"
            break
        before = fps.get(old) or fps.from_git(graph.root, name, old)
        after = fps.of_file(graph.root / name, new)
        if before is None and fps.outdated(old):
            whole = (
                f"{name} changed, and its previous version was fingerprinted by an older "
                "Maestro (fingerprints changed format on upgrade): re-run whole this once"
            )
            break
        if before is None or after is None:
            whole = f"{name} changed, and its previous version has no fingerprint to judge by"
            break
        delta = diff(before, after)
        delta = _unsealed(graph.root / name, before, delta, fps.seal_key())
        hidden = _hidden_only(graph.root / name, before, delta)
        twins = _twins(graph, fps, old_inputs, trace, by_qualname, name, before)
        if not twins and _never_ran(graph, trace, previous.tests, by_path, name, before):
            # no test, import or collection behind this result ran any of its code: the
            # nodes that read it as data (inspect, open) re-run, and no other; read while the
            # file was collected (a parametrize list of its cases), every node
            if name in collection_reads and name != target:
                whole = _read_outside(name)
                break
            sources[name] = f"read {name}, changed"
            continue
        settled: set[str] = set()  # fixture functions whose params alone changed: judged
        if delta.module_changed and delta.module_names is None:
            if not delta.fixtures:
                at = f"{name}:{delta.module_line}"
                whole = (
                    f"its own module-level code changed at {at}"
                    if name == target
                    # a test may run it in a child (`python -m`) rather than import it
                    else f"imports or runs {dotted(name, '<module>')}, whose module-level code "
                    f"changed at {at}"
                )
                break
            if used := _fixture_users(previous, name, delta.fixtures):
                where = f"{dotted(name, min(delta.fixtures))}, changed at {name}:"
                where += str(delta.module_line)
                narrowed = param_changes(previous, name, before, after, delta, where)
                if narrowed is None or regroup is None:
                    whole = f"{used}, whose params changed at {name}:{delta.module_line}"
                    break
                params_changed.append(narrowed)
                settled = set(delta.fixtures)
            # only the params of fixtures none of these tests uses: their other changes count
        if delta.classes and (refused := _class_refused(graph, name, delta)):
            whole = refused
            break
        for constant in delta.module_names or ():
            constants[constant] = f"{dotted(name, constant)}, changed at {name}"
            constant_files.add(name)
            bound = {n for b in after.binds if b for n in b.split(",")}
            bound |= {h.partition("|")[0] for h in after.class_heads if h}
            if constant not in bound or constant in after.unbound:
                removed.add(constant)
        for head in delta.classes:
            # its methods run on its instances, which a test may get without naming the class
            # (made by an earlier test or a fixture and kept)
            owner = head.partition("|")[0]
            changed_at = f"{dotted(name, owner)}, changed at {name}:{delta.module_line}"
            for index, qualname in by_path.get(name, ()):
                if qualname.startswith(f"{owner}."):
                    hit.setdefault(index, f"executed a method of {changed_at}")
        for attribute in delta.class_names or ():
            bare = attribute.rpartition(".")[2]
            attributes.setdefault(bare, f"{dotted(name, attribute)}, changed at {name}")
        if delta.empty:
            # comments, formatting: no code changed, but a test that read the text (a linter's
            # fixture file, inspect.getsource, a traceback it formats) may judge exactly that,
            # whether any of its code ran or not; read as text at collection, not imported, by
            # every node
            imported = any(q == "<module>" for _, q in by_path.get(name, ()))
            if name in collection_reads and name != target and not imported:
                whole = _read_outside(name)
                break
            if name in read_by_nodes:
                sources[name] = f"read {name}, changed"
            continue
        sources[name] = f"read {name}, changed"
        versions[name] = (before, after)
        gone = delta.functions - settled
        for index, qualname in by_path.get(name, ()):
            if qualname in gone:
                hit[index] = f"executed {_changed_function(name, qualname, delta, hidden)}"
                own[index] = (name, qualname)
        for index, qualname in twins:
            if qualname in gone:
                hit.setdefault(
                    index, f"executed {_changed_function(name, qualname, delta, hidden)}"
                )
        for qualname in gone & {*before.memoised, *after.memoised}:
            memoised[qualname.rpartition(".")[2]] = _changed_function(name, qualname, delta, hidden)
        named = callees.setdefault(name, (before, {}))[1]
        for qualname in sorted(gone):
            named.setdefault(qualname, _changed_function(name, qualname, delta, hidden))
    readers = _Readers(graph, fps, by_path, old_inputs, new_inputs, hit)
    if whole is None and memoised:
        whole = _memo_readers(readers, memoised)
    if whole is None and constants:
        whole = _constant_readers(readers, constants, constant_files, removed)
    if whole is None and attributes:
        whole = _attribute_readers(readers, attributes)
    unreached: set[int] = set()  # run at import or collection, never reaching the change there
    if whole is None:
        # the line records are of the versions in the result's own inputs
        versions = {p: v for p, v in versions.items() if previous.inputs.get(p) == old_inputs[p]}
        for index in trace.import_time:
            if index in hit:
                if not (memoised or constants or attributes) and _unreached(
                    trace, index, own, versions
                ):
                    unreached.add(index)
                    continue  # its import-time runs never reached the change: as any test's
                if not (memoised or attributes) and _never_read_at_import(
                    readers, trace, index, constants, previous.inputs
                ):
                    unreached.add(index)
                    continue  # nor read the changed name there: as any test's
                whole = f"{hit[index]} (ran at import or collection time)"
                break
    if whole is None:
        # hand-written memoisation (a dict checked before calling a builder, marshmallow's URL
        # regexes): a test served from it ran the checking function, not the changed builder;
        # nor, from a memo of a changed constant's reader, that reader
        _memo_holders(readers, callees, _constant_namers(readers, constants) if constants else {})
    if whole is None:
        for path in data:
            if path == target:  # a text file of doctests (pytest reads it to collect them)
                whole = f"runs the examples of {path}, changed"
                break
            if path not in read_by_nodes or path in collection_reads:
                module = _loaded_from(graph, target, path)
                whole = (
                    # the module may have been loaded by another file's test: no read of this
                    # file's need have happened
                    f"imports {module}, whose modules were loaded from {path} ({fates[path]})"
                    if module
                    else _read_outside(path, fates[path])
                    if path in collection_reads
                    else _read_through(path, fates[path])
                )
                break
    if whole is not None:
        return previous, {t.node_id: whole for t in previous.tests}
    reasons: dict[str, str] = {}
    for t in previous.tests:
        executed, reads = t.executed, t.reads
        if skipped:  # what the file's import and collection ran and read decided the skip
            executed = [i for i in trace.import_time if i not in unreached]
            reads = [*reads, *sorted(collection_reads)]
        if t.outcome in FAILING:
            reasons[t.node_id] = "failed last time"
        elif opaque and t.opaque:
            reasons[t.node_id] = f"depends on the whole workspace, which changed: {t.opaque[0]}"
        elif executed is None:
            reasons[t.node_id] = "has no execution record"
        elif found := _first_hit(trace, executed, hit, prefer):
            reasons[t.node_id] = found
        elif read := next(
            (p for p in _preferred(reads, prefer.__contains__) if p in data or p in sources),
            None,
        ):
            reasons[t.node_id] = data.get(read) or sources[read]
    for change in params_changed:
        for node, why in change.reasons.items():
            reasons.setdefault(node, why)
        if regroup is not None:
            regroup.update(change.functions)
    return previous, reasons


def _skipped_at_import(result: ActionResult) -> bool:
    """Is `result` a module-level skip (``pytest.skip(allow_module_level=True)``,
    ``importorskip``): the file's one outcome, no test collected? What its import and
    collection executed (`TraceRecord.import_time`) and read decided it, as a test's record
    decides that test."""
    if len(result.tests) != 1 or result.trace is None:
        return False
    only = result.tests[0]
    return "::" not in only.node_id and only.outcome == "skipped"


def _read_outside(path: str, became: str = "changed") -> str:
    """The reason of every node of a file whose collection or import read `path`: said of the
    file, since the node it is shown with need not have read it."""
    return f"depends on {path}, read outside any test while its file was collected, {became}"


def _read_through(path: str, became: str) -> str:
    """The reason of every node of a file that has `path` as an input only through another
    file its run imported or read (another test file's source read as text, as Hypothesis
    reads every loaded module's): no read of it by this file's collection or tests is
    recorded, so not one node can be told apart."""
    return (
        f"depends on {path} ({became}) through another file its run imported or read, not "
        f"by a read of its own (`maestro impacted {path}` shows the chain)"
    )


def _loaded_from(graph: BuildGraph, target: str, path: str) -> str | None:
    """The import name `target` uses whose modules a run found loaded from `path` (a zip or
    folder a test put on ``sys.path``), if any."""
    for node in sorted(n for n, files in graph.index.dynamic.items() if path in files):
        if node.startswith(DIST) and target in graph.rdeps.get(node, ()):
            return node[len(DIST) :]
    return None


def _became(old: str | None, new: str | None) -> str:
    """What happened to a file the tests read: ``changed``, or that it is gone or came back (a
    removed extension module read as "changed" was not)."""
    if new == ABSENT:
        return "since deleted"
    if old == ABSENT:
        return "since created"
    return "changed"


def _fixture_users(previous: ActionResult, path: str, fixtures: Collection[str]) -> str | None:
    """Why every node of `previous` re-runs after the ``params``/``ids`` of `fixtures` (pytest
    fixtures defined at the top level of `path`) changed, or None when none of its tests can
    use one. A test that uses a fixture runs its function before it starts (its node ids and
    its parameter come from those values); one that passed and did not run it does not use
    it. A test that did not pass may have stopped before (a skip mark, another fixture's
    error): it may use one, and its id may change, so the whole file re-runs."""
    # a same-named function of any file counts: the recorder may name an equal code object of
    # another file for it (`_twins`)
    functions = previous.trace.functions if previous.trace else []
    named = {i: q for i, f in enumerate(functions) if (q := f.partition("::")[2]) in fixtures}
    indices = set(named)
    if indices & set(previous.trace.import_time if previous.trace else ()):
        return f"ran the fixture {dotted(path, min(fixtures))} at import or collection time"
    for test in previous.tests:
        if test.executed is None or test.outcome != "passed":
            return (
                f"{test.node_id} did not pass last time and may use {dotted(path, min(fixtures))}"
            )
        if used := indices.intersection(test.executed):
            return f"{test.node_id} uses the fixture {dotted(path, named[min(used)])}"
    return None


def _first_hit(
    trace: TraceRecord, executed: Sequence[int], hit: Mapping[int, str], prefer: Collection[str]
) -> str | None:
    """The reason of the first changed function a node executed, one of `prefer`'s files first."""
    ranked = _preferred(executed, lambda i: trace.functions[i].partition("::")[0] in prefer)
    return next((hit[i] for i in ranked if i in hit), None)


def _preferred(items: Sequence[T], first: Callable[[T], bool]) -> list[T]:
    """`items` with those `first` accepts ahead of the others, each part in its own order."""
    return [x for x in items if first(x)] + [x for x in items if not first(x)]


def _unreached(
    trace: TraceRecord,
    index: int,
    own: Mapping[int, tuple[str, str]],
    versions: Mapping[str, tuple[FileFingerprints, FileFingerprints]],
) -> bool:
    """Did a changed function that ran at import or collection time run none of its changed
    statements there (its line record, of the version the tests ran)? Then what its import-time
    runs built is the same with the new version, and only the tests that executed it re-run."""
    lines = trace.import_lines.get(str(index))
    where = own.get(index)
    if lines is None or where is None or where[0] not in versions:
        return False
    before, after = versions[where[0]]
    return unexecuted_change(before, after, where[1], set(lines))


def _twins(
    graph: BuildGraph,
    fps: FingerprintStore,
    old_inputs: Mapping[str, str],
    trace: TraceRecord,
    by_qualname: Mapping[str, list[int]],
    path: str,
    before: FileFingerprints,
) -> list[tuple[int, str]]:
    """The recorded functions of other files that may be `path`'s (old) function of the same
    name. Code objects compare equal whatever their file (same name, first line, bytecode and
    constants: a copied module, a test file copied to another directory), and the recorder keeps
    one of equal code objects: a node that ran `path`'s function may be recorded as having run
    its twin. A function whose fingerprint or line differs is no twin."""
    found: list[tuple[int, str]] = []
    versions: dict[str, FileFingerprints | None] = {}  # other file -> its fingerprints
    for qualname, fingerprint in before.functions.items():
        if qualname == "<module>":
            continue
        for index in by_qualname.get(qualname, ()):
            other = trace.functions[index].partition("::")[0]
            if other == path:
                continue
            if other not in versions:
                digest = old_inputs.get(other) or graph.file_digest(other)
                versions[other] = (
                    fps.get(digest) or fps.of_file(graph.root / other, digest) if digest else None
                )
            theirs = versions[other]
            if theirs is None or theirs.functions.get(qualname) == fingerprint:
                found.append((index, qualname))
    return found


def _never_ran(
    graph: BuildGraph,
    trace: TraceRecord,
    tests: Sequence[TestOutcome],
    by_path: Mapping[str, list[tuple[int, str]]],
    path: str,
    before: FileFingerprints,
) -> bool:
    """Was the module at `path` never imported by the runs behind `trace` (a platform's module,
    ``_winconsole`` on Linux, that the import graph names)? Only when that is certain: the
    runs were traced from the plugin's start (3.12 ``sys.monitoring``: a module's top level is
    recorded as ``<module>`` when it runs), its package's ``__init__`` is recorded as run (so the
    package was imported after tracing started, and this module could not have been imported
    before it), this version defines a function (an empty or tiny module's code can equal
    another file's, which the recorder may take for it), no code of the file ran (the caller
    checks that no function recorded elsewhere may be its own: `_twins`), and nothing
    was recorded reading it but this file's tests (whose reads re-run them)."""
    if trace.mode != "monitoring" or path in by_path or not before.functions:
        return False
    folder, _, base = path.rpartition("/")
    if base == "__init__.py":
        folder = folder.rpartition("/")[0]
    if not folder or f"{folder}/__init__.py" not in by_path:
        return False
    if not any(q == "<module>" for _, q in by_path[f"{folder}/__init__.py"]):
        return False
    own = {file_of(t.node_id) for t in tests}
    read_by_nodes = {p for t in tests for p in t.reads}
    for source in graph.rdeps.get(path, ()):
        edge = graph.deps.get(source, {}).get(path)
        if edge is None or edge.kind in ("dynamic", "src", "global", "dep"):
            return False
        if edge.kind != "recorded" or (source in graph.tests and source not in own):
            continue  # an import the runs never took; another test file's own record
        if source not in own or path not in read_by_nodes:
            return False  # read by a module's code, or outside the tests
    return True


def _node_opaque(result: ActionResult) -> set[str]:
    return {reason for t in result.tests for reason in t.opaque}


def _module_reading(graph: BuildGraph, path: str) -> str | None:
    """A workspace module whose code was recorded reading `path`: not a test file, or a test
    file other files import (a module under --doctest-modules), whose recorded reads hold
    what its code read for its importers' tests too."""
    for source in sorted(graph.rdeps.get(path, ())):
        if source in graph.py and (source not in graph.tests or imported_elsewhere(graph, source)):
            edge = graph.deps.get(source, {}).get(path)
            if edge is not None and edge.kind == "recorded":
                return source
    return None


IMPORT_EDGES = frozenset({"import", "dynamic", "init", "conftest", "plugin"})


def imported_elsewhere(graph: BuildGraph, target: str) -> bool:
    """Does another workspace file import `target`?"""
    for source in graph.rdeps.get(target, ()):
        edge = graph.deps.get(source, {}).get(target)
        if source != target and edge is not None and edge.kind in IMPORT_EDGES:
            return True
    return False


def _changed_function(
    path: str, qualname: str, delta: FingerprintDiff, hidden: Collection[str] = ()
) -> str:
    """``pkg.mod.f, changed at pkg/mod.py:12`` (or ``deleted from pkg/mod.py``); for one of
    `hidden`, that it may not have changed at all."""
    if qualname in delta.deleted:
        return f"{dotted(path, qualname)}, deleted from {path}"
    where = f"{path}:{delta.lines[qualname]}"
    if qualname in hidden:
        return (
            f"{dotted(path, qualname)}, which holds text that looks like a secret ({where}): "
            "Maestro keeps no copy of it, so cannot tell whether it changed"
        )
    return f"{dotted(path, qualname)}, changed at {where}"


def _unsealed(
    path: Path, before: FileFingerprints, delta: FingerprintDiff, key: bytes | None
) -> FingerprintDiff:
    """The diff against a previous version kept with its secrets sealed (graph/fingerprints.py
    `keep`: each one a digest keyed by the store's key): against the current file sealed alike,
    code that differs only by being sealed is unchanged. Taken only when it is the smaller diff:
    against a version fingerprinted from its text (or sealed with a key since lost), sealing
    the current file can only add differences, and the plain diff stands."""
    if key is None or delta.empty:
        return delta
    try:
        text = path.read_bytes().decode("utf-8")
    except (OSError, UnicodeDecodeError):
        return delta
    sealed = str(Redactor.from_environ(os.environ).seal(text, key))
    if sealed == text:
        return delta
    again = diff(before, fingerprint_source(sealed.encode()))
    smaller = again.functions < delta.functions or (
        again.functions == delta.functions and delta.module_changed and not again.module_changed
    )
    fewer_module = not again.module_changed or delta.module_changed
    return again if smaller and fewer_module and set(again.added) <= set(delta.added) else delta


def _hidden_only(path: Path, before: FileFingerprints, delta: FingerprintDiff) -> frozenset[str]:
    """The changed functions of `path` that equal their previous version once the current
    file's secret-looking text is hidden as it was in the kept previous version (graph/
    fingerprints.py `keep`): what differs may be only that hiding. They still re-run (the
    secret itself may have changed); their reason must not name an edit nobody made."""
    if not delta.changed:
        return frozenset()
    try:
        text = path.read_bytes().decode("utf-8")
    except (OSError, UnicodeDecodeError):
        return frozenset()
    masked_text = str(Redactor.from_environ(os.environ).redact(text))
    if masked_text == text:
        return frozenset()
    masked = fingerprint_source(masked_text.encode()).functions
    return frozenset(q for q in delta.changed if masked.get(q) == before.functions.get(q))


_UNKNOWN = FileFingerprints(module="<unknown>", parse_error=True)


@dataclass(frozen=True)
class _Readers:
    """What the walks over the recorded readers of changed names share: the recorded functions
    by file (`by_path`), both versions of the inputs, and `hit` (function index -> reason),
    which they mark."""

    graph: BuildGraph
    fps: FingerprintStore
    by_path: Mapping[str, list[tuple[int, str]]]
    old_inputs: Mapping[str, str]
    new_inputs: Mapping[str, str]
    hit: dict[int, str]
    named: dict[int, set[str]] = field(default_factory=dict)
    """Function index -> the changed names `mark_naming` found it reading."""

    def previous(self, path: str) -> FileFingerprints | None:
        """The fingerprints of `path` as the tests ran it; None if it was no input then (or did
        not exist), `_UNKNOWN` if they cannot be had."""
        digest = self.old_inputs.get(path)
        if digest is None or digest == ABSENT:
            return None
        before = self.fps.get(digest)
        if before is None and digest == self.new_inputs.get(path):
            before = self.fps.of_file(self.graph.root / path, digest)
        return _UNKNOWN if before is None else before

    def python_inputs(
        self,
        paths: Iterable[str],
        names: Mapping[str, str],
        module_names: Callable[[FileFingerprints], Collection[str]],
        verb: str,
    ) -> dict[str, FileFingerprints] | str:
        """The fingerprints, as the tests ran them, of those of `paths` that are the workspace's
        Python inputs and existed then. A reason to re-run every node instead when the code of
        one is unknown, or when its module-level code (`module_names` of its fingerprints)
        names one of the changed `names` (name -> where it changed): ``imports m, whose
        module-level code <verb> <where>``."""
        first = next(iter(names.values()))
        known: dict[str, FileFingerprints] = {}
        for path in paths:
            if not _workspace_python(path):
                continue
            before = self.previous(path)
            if before is None:
                continue  # did not exist when the tests ran: none of them read it
            if before is _UNKNOWN or before.parse_error:
                return f"{first} and the code of {path} is unknown"
            if found := names.keys() & set(module_names(before)):
                module = dotted(path, "<module>")
                return f"imports {module}, whose module-level code {verb} {names[min(found)]}"
            known[path] = before
        return known

    def unmarked(
        self, known: Mapping[str, FileFingerprints]
    ) -> Iterator[tuple[int, str, str, FileFingerprints]]:
        """(index, file, qualname, its file's fingerprints) of each recorded function not marked
        yet that the version the tests ran defines; module-level code and class bodies are
        left to the callers' module-level checks."""
        for path, entries in self.by_path.items():
            if (recorded := known.get(path)) is None:
                continue  # not an input of this test file: none of its tests ran it
            for index, qualname in entries:
                if index not in self.hit and qualname in recorded.functions:
                    yield index, path, qualname, recorded

    def mark_naming(
        self,
        known: Mapping[str, FileFingerprints],
        names: Mapping[str, str],
        verb: str,
        *,
        raised: bool = True,
    ) -> None:
        """Marks each recorded function whose code names one of `names` (name -> where it
        changed), or whose names are unknown: ``executed f, which <verb> <where>``.
        ``raised=False``: not for a name read only inside its ``raise`` statements."""
        for index, path, qualname, recorded in self.unmarked(known):
            refs: Collection[str] = recorded.refs.get(qualname, names.keys())
            if not raised:
                refs = set(refs) - set(recorded.raised.get(qualname, ()))
            if found := names.keys() & set(refs):
                where = names[min(found)]
                self.hit[index] = f"executed {dotted(path, qualname)}, which {verb} {where}"
                self.named[index] = set(found)

    def mark_handing(self, path: str, handing: Mapping[str, str], first: str) -> None:
        """Marks each recorded function of `path` among `handing` (qualname -> the module its
        code hands on): the code it hands the module to may read a changed name unnamed."""
        for index, qualname in self.by_path.get(path, ()):
            if module := handing.get(qualname):
                self.hit.setdefault(
                    index,
                    f"executed {dotted(path, qualname)}, which hands on the module {module}"
                    f" (the code it reaches may read its names unnamed), maybe the changed"
                    f" one: {first}",
                )
                self.named.pop(index, None)

    def mark_escaping(self, escaping: Mapping[str, Collection[str]], first: str) -> None:
        """Marks each recorded function of `escaping` (file -> qualnames of its functions whose
        code may reach any module's names without spelling them; the recorder reports a lambda
        or comprehension as the function holding it, as `escaping` counts its code): they may
        read a changed name unnamed. Not by the line records of `_never_read_at_import` (which
        look for spelled names): run at import or collection, every node re-runs."""
        for path, scopes in escaping.items():
            for index, qualname in self.by_path.get(path, ()):
                if qualname in scopes:
                    where = dotted(path, qualname)
                    why = (
                        f"executed {where}, which reads names it builds at run time"
                        f" (getattr(module, name) or such), maybe the changed one: {first}"
                    )
                    self.hit.setdefault(index, why)
                    self.named.pop(index, None)


def _constant_namers(
    readers: _Readers, constants: Mapping[str, str]
) -> dict[str, tuple[FileFingerprints, dict[str, str]]]:
    """The functions of the result's Python inputs whose code names a changed module-level name
    (`constants`: name -> where it changed), as `_memo_holders` takes them (file -> its
    fingerprints as the tests ran it, qualname -> why it counts): a memo may keep what one
    returned (a ``functools.cache``d loader of a table module's constant, filled by an earlier
    test file), and a test served from the memo ran neither it nor anything naming the
    constant. Any file, not only the constant's importers: the name is bare, as the readers'
    rule reads it. Unknown code is `_constant_readers`'s to judge."""
    known = readers.python_inputs(
        readers.old_inputs, constants, lambda f: f.module_loads, "names the changed"
    )
    found: dict[str, tuple[FileFingerprints, dict[str, str]]] = {}
    if isinstance(known, str):
        return found
    for path, recorded in known.items():
        for qualname in recorded.functions:
            named = constants.keys() & set(recorded.refs.get(qualname, constants.keys()))
            if named:
                why = f"{dotted(path, qualname)}, which names the changed {constants[min(named)]}"
                found.setdefault(path, (recorded, {}))[1][qualname] = why
    return found


def _memo_holders(
    readers: _Readers,
    callees: Mapping[str, tuple[FileFingerprints, Mapping[str, str]]],
    namers_of_changed: Mapping[str, tuple[FileFingerprints, Mapping[str, str]]] | None = None,
) -> None:
    """Marks each recorded function that may hold a result derived from a changed function
    (`callees`: changed file -> its fingerprints as the tests ran it, qualname of each changed
    function -> where, in words) in a hand-written memo: a test served from the memo ran the
    checking function, not the changed builder.

    A holder names the changed function, or a function that names it, transitively (a memo one
    call further up keeps what a helper of the builder returns: the served node ran neither),
    in the changed file or in a recorded file that imports it (a module dict filled from an
    imported builder); a name its module-level code names (``from .build import build``) is
    followed into that file's importers too. Names are bare, so every namer counts, whether its
    code can keep anything across calls or not. A special method's name (``__init__``) is
    looked for only in its own file, and its namers are not followed: code gets what those
    return without naming them (``C()``), and every class's ``super().__init__()`` names one.
    Not for a name read only in what a function raises: reaching the raise runs the callee,
    and nothing there is kept for a later call. Nor for a name a function reads only as what
    its own nested ``def`` or ``class`` statements bind (`FileFingerprints.own_defs`): Python
    resolves it to that definition, which counts by its own qualname, never to a namesake
    elsewhere (click's ``Parameter.type_cast_value`` calls its own ``convert``); nor for a
    global name its module binds only by a ``class`` statement (`FileFingerprints.class_reads`):
    that is the class, whose special methods are followed as above (python-dateutil's
    ``rrule.replace`` makes an ``rrule``, it does not call ``rruleset.rrule``)."""
    files: dict[str, FileFingerprints | None] = {p: f for p, (f, _) in callees.items()}
    held: dict[str, dict[str, str]] = {}  # file -> name its code may get a result by -> where
    # (file, qualname) -> the names of `held` it names (a function's own nested definition of
    # a name counts only for that definition)
    namers: dict[tuple[str, str], set[str]] = {}
    todo: deque[tuple[str, str, str, str]] = deque(
        (path, qualname.rpartition(".")[2], f"the changed {where}", qualname)
        for path, (_, names) in callees.items()
        for qualname, where in names.items()
    )
    for path, (ran, names) in (namers_of_changed or {}).items():
        # functions reading a changed name: their namers are followed as a changed function's
        files.setdefault(path, ran)
        todo.extend((path, q.rpartition(".")[2], why, q) for q, why in names.items())
    importers: dict[str, list[str]] = {}
    while todo:  # breadth first: each name is told by its shortest chain
        path, name, where, defined = todo.popleft()
        # a private name of a class is its mangled one: another class's namesake is not it
        key = _mangled(name, defined) or name
        outer, nested, inner = defined.rpartition(".<locals>.")
        recorded = files.get(path) if nested and inner == name else None
        # the function it is defined in names it by its own definition (not as below)
        own = recorded is not None and name in recorded.own_defs.get(outer, ())
        if own and (path, outer) not in namers:
            held.setdefault(path, {}).setdefault(defined, where)
            namers[(path, outer)] = {defined}
            if not _dunder(bare := outer.rpartition(".")[2]):
                todo.append((path, bare, f"{dotted(path, outer)}, which names {where}", outer))
        if path not in importers:
            importers[path] = _importers(readers, path)
        for reader in (path,) if _dunder(name) else (path, *importers[path]):
            if reader not in files:
                before = readers.previous(reader)
                files[reader] = before if before is not None and before is not _UNKNOWN else None
            recorded = files[reader]
            seen = held.setdefault(reader, {})
            if key in seen:
                continue
            seen[key] = where
            if recorded is None or recorded.parse_error:
                continue  # its recorded functions are all marked (below)
            if reader != path and key in recorded.module_refs:
                todo.append((reader, key, where, ""))  # bound there as well: its importers' too
            for qualname in recorded.functions:
                refs = recorded.refs.get(qualname, (key,))
                bare = qualname.rpartition(".")[2]
                spelled = key if key in refs else name
                if spelled not in refs or spelled in recorded.raised.get(qualname, ()):
                    continue
                if spelled != key and (_mangled(name, qualname) or name) != key:
                    continue  # its class's own private name, or a plain one: not this
                if name in recorded.own_defs.get(qualname, ()):
                    continue  # its own nested definition of the name: no other it can reach
                if spelled in recorded.class_reads.get(qualname, ()):
                    continue  # its module's class of that name: calling it runs its dunders
                namers.setdefault((reader, qualname), set()).add(key)
                if not _dunder(bare):
                    where_ = f"{dotted(reader, qualname)}, which names {where}"
                    todo.append((reader, bare, where_, qualname))
    for path, names in held.items():
        recorded = files[path]
        if recorded is not None and not recorded.parse_error:
            for index, qualname in readers.by_path.get(path, ()):
                found = namers.get((path, qualname))
                if found and index not in readers.hit and qualname in recorded.functions:
                    what = f"executed {dotted(path, qualname)}, which names {names[min(found)]}"
                    readers.hit[index] = what
                    readers.named[index] = found
            continue
        first = names[min(names)]
        for index, qualname in readers.by_path.get(path, ()):
            if index not in readers.hit and qualname != "<module>":
                where = dotted(path, qualname)
                readers.hit[index] = f"executed {where}, whose code is unknown: it may name {first}"


def _dunder(name: str) -> bool:
    return len(name) > 4 and name.startswith("__") and name.endswith("__")


def _mangled(name: str, qualname: str) -> str | None:
    """How code of `qualname` (a function's qualified name) spells `name` once Python has
    mangled it: ``__x`` read in class ``C``'s code (its methods, their nested functions) is
    ``_C__x``; None when it is not mangled there (no class, a dunder, not private)."""
    if not name.startswith("__") or name.endswith("__"):
        return None
    parts = qualname.split(".")
    classes = [
        part for part, after in pairwise(parts) if part != "<locals>" and after != "<locals>"
    ]
    owner = classes[-1].lstrip("_") if classes else ""
    return f"_{owner}{name}" if owner else None


def _importers(readers: _Readers, path: str) -> list[str]:
    """The recorded workspace Python files that import `path`."""
    graph = readers.graph
    found = []
    for source in sorted(graph.rdeps.get(path, ())):
        edge = graph.deps.get(source, {}).get(path)
        if edge is None or edge.kind not in IMPORT_EDGES or source == path:
            continue
        if source in readers.by_path and _workspace_python(source):
            found.append(source)
    return found


def _workspace_python(path: str) -> bool:
    return path.endswith(".py") and not os.path.isabs(path) and is_file_input(path)


def _memo_readers(readers: _Readers, memoised: Mapping[str, str]) -> str | None:
    """Marks in `hit` every recorded function whose code (as the tests executed it) names a
    changed memoised function: a test may have been served from the cache without executing
    it. Returns a reason for every node instead when module-level code names one (it may hand
    the function to anyone) or a file's previous fingerprints are unknown."""
    for path in readers.by_path:  # recorded as run, yet absent then: unknown
        if readers.old_inputs.get(path) == ABSENT and _workspace_python(path):
            changed = next(iter(memoised.values()))
            return f"a memoised function changed ({changed}) and the code of {path} is unknown"
    known = readers.python_inputs(
        readers.by_path, memoised, lambda f: f.module_refs, "names the memoised"
    )
    if isinstance(known, str):
        return known
    readers.mark_naming(known, memoised, "names the memoised")
    return None


def _constant_readers(
    readers: _Readers, constants: Mapping[str, str], files: set[str], removed: set[str]
) -> str | None:
    """Marks in `hit` every recorded function whose code names a module-level name whose inert
    assignment changed (`constants`, in `files`); only code that reads a name sees its value.
    Returns a reason for every node instead when module-level code reads one (``Y = X + 1``,
    a class body, a default value), or when its value may be read without being named.

    The value lives in the changed module and in every module that binds it by ``from m import
    X`` (same name: its readers spell X too; ``as Y`` is a read) from a module holding it: the
    *holders*. Read without naming: any module's names through ``getattr(module, name)``,
    ``sys.modules[...]``, ... (`escapes`), code compiled from text that spells the name
    (`code_namespace`), a holder's own names (``globals()``, a module ``__getattr__``), and a
    star import of a holder (of a private name, only when a string spells it: ``__all__``). A
    removed name that a holder's ``from m import X`` reads makes that import raise. A class
    statement changed outside its method bodies counts as its name's assignment."""
    first = next(iter(constants.values()))
    known = readers.python_inputs(
        readers.old_inputs, constants, lambda f: f.module_loads, "names the changed"
    )
    if isinstance(known, str):
        return known
    graph = readers.graph
    holders = set(files)
    grew = True
    while grew:
        grew = False
        for path, fp in known.items():
            if path in holders:
                continue
            for entry in fp.imports_from:
                module, _, name = entry.rpartition(":")
                if name in constants and _may_name(graph, path, module, holders):
                    if name in removed:
                        return f"{path} imports {name} from {module}: {constants[name]} (removed)"
                    holders.add(path)
                    grew = True
                    break
    # a star import binds a private name only when ``__all__`` spells it in a string; code
    # compiled from text reads it only when the text spells it (from a string of any input)
    spelled = {n for fp in known.values() for n in fp.private_strings}
    hidden = all(n.startswith("_") and n not in spelled for n in constants)
    escaping: dict[str, tuple[str, ...]] = {}  # file -> its functions reaching a holder's names
    handings: dict[str, dict[str, str]] = {}  # file -> its functions handing one on -> which
    resolved: dict[tuple[str, str], str | None] = {}
    for path, fp in known.items():
        # a scope that reaches only the names of modules holding none of the values (stdlib's
        # ``getattr(math, name)``, a package whose namespace does not bind them) reads none
        reaching = tuple(
            scope
            for scope in fp.escaping
            if any(
                t == "*" or _may_name(graph, path, t, holders)
                for t in fp.escape_targets.get(scope, ("*",))
            )
        )
        handing = {
            scope: holder
            for scope, spelled in fp.handed.items()
            if (holder := _handed_holder(readers, path, spelled, holders, resolved))
        }
        if handed := handing.get("<module>"):
            return (
                f"{first}, and module-level code of {path} hands on the module {handed} (to a"
                " call, a container, an attribute): other code may read its names unnamed"
            )
        if handing:
            handings[path] = handing
        anywhere = fp.escapes and (not fp.escaping or "<module>" in reaching)
        if anywhere or (fp.own_escapes and path in holders) or (fp.code_namespace and not hidden):
            return (
                f"{first}, and code in {path} reads names it builds at run time"
                " (getattr(module, name), globals(), exec or such): it may read the changed one"
            )
        for star in fp.stars:
            if not hidden and _may_name(graph, path, star, holders):
                return f"{first}, and {path} star-imports {star}"
        if reaching:
            escaping[path] = reaching
    readers.mark_naming(known, constants, "reads the changed")
    readers.mark_escaping(escaping, first)
    for path, handing in handings.items():
        readers.mark_handing(path, handing, first)
    return None


def _attribute_readers(readers: _Readers, attributes: Mapping[str, str]) -> str | None:
    """Marks in `hit` every recorded function whose code reads a private class attribute whose
    inert value changed (`attributes`: bare name -> where): by name (``self._x``, ``C._x``,
    ``getattr(o, "_x")``) or without spelling it (``getattr`` with a computed name that may be
    it, ``vars``, ``dir``, ``__dict__``, a mock's spec...: ``FileFingerprints.dynamic``).
    Returns a reason for every node instead when module-level code (class bodies included)
    reads one or reads attributes without spelling them, when a string constant spells one
    (``patch.object(C, "_x")``, ``eval``), or when code of an input is unknown.

    A memoised function that reads one may serve later tests without running: the functions
    that call it by name are marked too (`_memo_readers`); one whose name escapes its file
    re-runs every node. Only the classes `fingerprints._plain_class` accepts get here: no
    decorator, metaclass or base outside the workspace reads their namespace, and code outside
    the workspace does not spell private names."""
    names = set(attributes)
    first = next(iter(attributes.values()))
    known = readers.python_inputs(
        readers.old_inputs, attributes, lambda f: f.module_loads, "reads the changed"
    )
    if isinstance(known, str):
        return known
    for path, before in known.items():
        if _generic_reads(before.dynamic.get("<module>", ()), names):
            module = dotted(path, "<module>")
            return f"{first}, and module-level code of {module} reads attributes it does not name"
        if found := names.intersection(before.private_strings):
            return f"{first}, and {path} spells {min(found)} in a string"
    cached: dict[str, str] = {}
    for index, path, qualname, recorded in readers.unmarked(known):
        refs = recorded.refs.get(qualname)
        if refs is None:
            why = f"may read the changed {first}"
        elif found := names.intersection(refs):
            why = f"reads the changed {attributes[min(found)]}"
        elif _generic_reads(recorded.dynamic.get(qualname, ()), names):
            why = f"may read the changed {first} by a computed name"
        else:
            continue
        readers.hit[index] = f"executed {dotted(path, qualname)}, which {why}"
        if qualname in recorded.cached:
            if qualname not in recorded.memoised:
                return f"{readers.hit[index]}, and keeps its results across calls"
            cached[qualname.rpartition(".")[2]] = f"{dotted(path, qualname)} ({why})"
    if cached:
        return _memo_readers(readers, cached)
    return None


def _never_read_at_import(
    readers: _Readers,
    trace: TraceRecord,
    index: int,
    constants: Collection[str],
    recorded: Mapping[str, str],
) -> bool:
    """Did a function marked only for reading changed names (`_Readers.named`), which ran at
    import or collection time, run none of the statements that read them there (its line
    record)? Then nothing it did there saw their values, and only the tests that executed it
    re-run. Only for a file unchanged since the record (`recorded`: the inputs of the result
    that holds it), read from disk."""
    names = readers.named.get(index)
    lines = trace.import_lines.get(str(index))
    if not names or lines is None or not names <= set(constants):
        return False
    path, _, qualname = trace.functions[index].partition("::")
    digest = readers.old_inputs.get(path)
    if digest is None or digest != readers.new_inputs.get(path) or recorded.get(path) != digest:
        return False
    try:
        tree = ast.parse((readers.graph.root / path).read_bytes())
    except (OSError, SyntaxError, ValueError, RecursionError, MemoryError):
        return False
    found = _definitions(tree, qualname)
    if len(found) != 1 or readers.graph.file_digest(path) != digest:
        return False
    return not _reading_lines(found[0], names).intersection(lines)


def _reading_lines(function: ast.FunctionDef | ast.AsyncFunctionDef, names: set[str]) -> set[int]:
    """The lines of `function`'s own statements that spell one of `names` (a variable, an
    attribute, an import, a string: ``getattr(m, "X")``), lambdas and comprehensions included;
    a compound statement by its header. Running any of its code runs one of those lines."""
    reading: set[int] = set()
    stack: list[ast.stmt] = list(function.body)
    while stack:
        stmt = stack.pop()
        parts: list[ast.AST] = []
        for _, value in ast.iter_fields(stmt):
            for item in value if isinstance(value, list) else [value]:
                if isinstance(item, ast.stmt):
                    # a nested function's body is its own record; a nested class's body too,
                    # run when its statement (a line of this function) runs
                    if isinstance(stmt, ast.ClassDef):
                        parts.append(item)
                    elif not isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef):
                        stack.append(item)
                elif isinstance(item, ast.excepthandler | ast.match_case):
                    parts.extend(
                        c for c in ast.iter_child_nodes(item) if not isinstance(c, ast.stmt)
                    )
                    stack.extend(c for c in ast.iter_child_nodes(item) if isinstance(c, ast.stmt))
                elif isinstance(item, ast.AST):
                    parts.append(item)
        spelled = isinstance(stmt, ast.Global | ast.Nonlocal) and bool(names & set(stmt.names))
        if spelled or any(_spells(part, names) for part in parts):
            starts = [getattr(p, "lineno", None) or stmt.lineno for p in parts]
            ends = [getattr(p, "end_lineno", None) or stmt.lineno for p in parts]
            reading.update(range(min([stmt.lineno, *starts]), max([stmt.lineno, *ends]) + 1))
    return reading


def _spells(node: ast.AST, names: set[str]) -> bool:
    for child in ast.walk(node):
        if isinstance(child, ast.Name) and child.id in names:
            return True
        if isinstance(child, ast.Attribute) and child.attr in names:
            return True
        if isinstance(child, ast.alias) and {child.name.rpartition(".")[2], child.asname} & names:
            return True
        if (
            isinstance(child, ast.Constant)
            and isinstance(child.value, str)
            and child.value in names
        ):
            return True
    return False


def _definitions(tree: ast.Module, qualname: str) -> list[ast.FunctionDef | ast.AsyncFunctionDef]:
    """The ``def`` statements of `tree` whose ``co_qualname`` is `qualname`."""
    found: list[ast.FunctionDef | ast.AsyncFunctionDef] = []
    stack: list[tuple[ast.AST, str]] = [(tree, "")]
    while stack:
        node, prefix = stack.pop()
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                name = prefix + child.name
                if name == qualname:
                    found.append(child)
                stack.append((child, name + ".<locals>."))
            elif isinstance(child, ast.ClassDef):
                stack.append((child, prefix + child.name + "."))
            else:
                stack.append((child, prefix))
    return found


def _class_refused(graph: BuildGraph, path: str, delta: FingerprintDiff) -> str | None:
    """Why every node re-runs after class statements of `path` changed outside their method
    bodies (`FingerprintDiff.classes`), or None when only the readers of their names need to.
    pytest reads the names of test files, conftests and plugins without spelling them (it
    collects classes, fixtures and hooks from them); a class statement that runs code of a
    module outside `CLASS_BUILDERS` (a registering decorator, a field factory of the
    workspace) may leave the class, or what it made of it, in a place read by other names."""
    changed = f"{dotted(path, '<module>')}, whose module-level code changed at {path}:"
    changed += str(delta.module_line)
    if path in graph.tests or path.rpartition("/")[2] == "conftest.py":
        return f"imports {changed} (pytest reads its names)"
    for source in graph.rdeps.get(path, ()):
        edge = graph.deps.get(source, {}).get(path)
        if edge is not None and edge.kind in ("conftest", "plugin"):
            return f"imports {changed} (pytest reads its names)"
    own = dotted(path, "<module>").partition(".")[0]
    for head in delta.classes:
        owner, _, origins = head.partition("|")
        for origin in origins.split(",") if origins else ():
            top = own if origin == "=" or origin.startswith(".") else origin.partition(".")[0]
            if top not in CLASS_BUILDERS:
                where = "this module" if origin == "=" else origin
                return f"imports {changed} (class {owner} runs code of {where})"
    return None


def _generic_reads(markers: Sequence[str], names: Collection[str]) -> bool:
    """Can code with these `FileFingerprints.dynamic` markers read one of `names`?"""
    return any(
        m == "*" or (m.startswith("^") and any(n.startswith(m[1:]) for n in names)) for m in markers
    )


def _handed_holder(
    readers: _Readers,
    importer: str,
    handed: Iterable[str],
    holders: set[str],
    memo: dict[tuple[str, str], str | None],
) -> str | None:
    """Among what `importer`'s code hands on (`FileFingerprints.handed`: ``module:attributes``
    as imported), a module whose names, or those of the modules below it, include a changed
    value (one of `holders`): the code it reaches may read them by any name. The module's
    file, or None. Unsure (code unknown, a name bound otherwise than `top_binds` lists, an
    unresolved import outside the standard library): the first such, in words."""
    for spelled in handed:
        key = (importer, spelled)
        if key not in memo:
            memo[key] = _handed_module(readers, importer, spelled, holders, 0, set())
        if memo[key]:
            return memo[key]
    return None


def _handed_module(
    readers: _Readers,
    importer: str,
    spelled: str,
    holders: set[str],
    depth: int,
    seen: set[str],
) -> str | None:
    """`_handed_holder` of one ``module:attributes``."""
    module, _, attributes = spelled.partition(":")
    graph = readers.graph
    first, _, rest = attributes.partition(".")
    below = f"{module}{first}" if module.endswith(".") else f"{module}.{first}"
    if first and (sub := _module_files(graph, importer, below)):  # a namespace's too
        return _in_modules(readers, sub, rest, holders, depth + 1, seen)
    files = _module_files(graph, importer, module)
    if files is None:
        top = module.partition(".")[0]
        return None if not top or top in environment.STDLIB else module
    return _in_modules(readers, files, attributes, holders, depth + 1, seen)


def _in_modules(
    readers: _Readers,
    files: set[str],
    attributes: str,
    holders: set[str],
    depth: int,
    seen: set[str],
) -> str | None:
    """`_handed_module` of ``attributes`` of the module of `files` (its file, or the
    installed library's ``dist:`` node)."""
    graph = readers.graph
    first, _, rest = attributes.partition(".")
    for file in sorted(files):
        if depth > 20:
            return file
        if file.startswith(DIST):  # an installed library: what the run found it load
            if set(graph.deps.get(file, {})) & holders:
                return file
            continue
        package = file.removesuffix("__init__.py") if file.endswith("/__init__.py") else None
        if not first:  # the module itself: its names and, for a package, its submodules'
            if file in holders or (package and any(h.startswith(package) for h in holders)):
                return file
            if file in seen:
                continue
            seen.add(file)
            # and the modules its names hold (``from . import consts``): read by a chain
            before = readers.previous(file)
            if before is None or before is _UNKNOWN or before.parse_error:
                return file
            for name, kinds in before.top_binds.items():
                if name == "*":
                    continue
                for kind in kinds:
                    if kind == "?":
                        return f"{file} ({name})"
                    if kind != "=" and (
                        found := _handed_module(readers, file, kind, holders, depth + 1, seen)
                    ):
                        return found
            continue
        if package is not None:
            sub = {f"{package}{first}.py", f"{package}{first}/__init__.py"} & graph.all_files
            if sub:  # set on the package by an import of it anywhere
                if found := _in_modules(readers, sub, rest, holders, depth + 1, seen):
                    return found
                continue
        before = readers.previous(file)
        if before is None or before is _UNKNOWN or before.parse_error:
            return file
        binds = before.top_binds
        star = binds.get("*", ())
        if star == ("?",) and len(binds) == 1:  # ``globals()``: any name may be anything
            return f"{file} ({first})"
        ways = list(binds.get(first, ()))
        # a star import may (re)bind any name; ``__getattr__`` answers one nothing binds
        ways += [f"{k}{first}" for k in star if k != "?"]
        if "?" in star and first not in binds:
            ways.append("?")
        for kind in ways:
            if kind == "=":
                continue  # not by an import: a module only through code handing it on
            if kind == "?":
                return f"{file} ({first})"
            source, _, name = kind.partition(":")
            chained = ".".join(p for p in (name, rest) if p)
            if found := _handed_module(
                readers, file, f"{source}:{chained}", holders, depth + 1, seen
            ):
                return found
    return None


def _relative_base(importer: str, target: str) -> str:
    """The path, less ``.py`` or ``/__init__.py``, of the relative module `target` (``..a.b``)
    as `importer` imports it: resolved as Python does, from the importer's folder."""
    name = target.lstrip(".")
    folder = importer.rsplit("/", 1)[0] if "/" in importer else ""
    for _ in range(len(target) - len(name) - 1):
        folder = folder.rsplit("/", 1)[0] if "/" in folder else ""
    return "/".join(p for p in (folder, name.replace(".", "/")) if p)


def _module_files(graph: BuildGraph, importer: str, module: str) -> set[str] | None:
    """The files of `module` as `importer` imports it: a workspace file, or the installed
    library's ``dist:`` node; None for the standard library or nothing known."""
    if module.startswith("."):
        base = _relative_base(importer, module)
        found = {f for f in (f"{base}.py", f"{base}/__init__.py") if f in graph.all_files}
        return found or None
    linked = {t for t, e in graph.deps.get(importer, {}).items() if e.detail == module}
    if linked:
        return linked
    # an edge keeps one spelling of its target (``from .calc import X`` beside a later
    # ``from pkg.calc import X``): resolve the name as the import system would from the importer
    parts = module.split(".")
    root = graph.resolver.find_root(importer, parts[0])
    if root is None:
        return None
    stem = root + "/".join(parts)
    return {f for f in (f"{stem}.py", f"{stem}/__init__.py") if f in graph.all_files} or None


def _may_name(graph: BuildGraph, importer: str, target: str, files: set[str]) -> bool:
    """Can ``from <target> import ...`` in `importer` read the names of one of `files`? A
    relative target is resolved as Python does, from the importer's folder; an absolute one
    through the import edges the graph resolved for it. Unsure (unresolved, not the standard
    library): yes."""
    if target.startswith("."):
        base = _relative_base(importer, target)
        return bool({f"{base}.py", f"{base}/__init__.py"} & files)
    spelled = target.replace(".", "/")
    for file in files:
        stem = file.removesuffix(".py").removesuffix("/__init__")
        if stem == spelled or stem.endswith("/" + spelled):
            return True
    linked = {t for t, e in graph.deps.get(importer, {}).items() if e.detail == target}
    if linked:
        return bool(linked & files)
    return target.partition(".")[0] not in environment.STDLIB
