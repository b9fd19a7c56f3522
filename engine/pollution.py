"""Test files whose import changes how the other files collect or what their tests see.

Two kinds learned by the plugin while pytest collects, and one found from the files' names.

Warnings filters (``collected-after:``).

pytest collects all the files of a session inside one ``warnings.catch_warnings`` block, so a
test module that changes the warnings filters at import (``warnings.simplefilter("error")``)
changes the collection of every file collected after it: a collection warning becomes an
error. A file's cached result must not depend on which files ran with it, so the full run is
the reference:

- the plugin reports the files whose collection changed the filters (``Collected.polluters``),
  and each such file is remembered per workspace (`Polluters`, learned from every run that
  collected it);
- a test file's key covers every remembered polluter a full run collects before it (in
  pytest's order: engine/order.py), as ``collected-after:<path>`` with its content's digest:
  an edit of the polluter re-runs the files after it;
- a file that runs has those polluters run with it, before it, so that it is collected as
  in the full run.

Named paths (`Polluters.among`, `Polluters.scope`). ``pytest PATHS`` collects and runs only the
files the paths name, in their order: ``maestro test -- PATHS`` answers as it does. For such a
selection only the polluters among the named files count, in the order named, for every kind
below as for this one: a file named alone is keyed, run and served without the others (its key
then differs from the full run's whenever a polluter of it is left out, so neither answer is
served for the other). A ``-k`` or ``-m`` selection, and ``--impacted``, are no named paths:
pytest still collects every file, and the full run's polluters count.

Workspace module state (``collected-with:``). pytest imports every test file before the first
test runs, so a test file whose import registers something in a workspace module (marshmallow
registers every ``Schema`` subclass by name in ``class_registry``) changes what the tests of
every other file see, whichever order they run in:

- the plugin snapshots the workspace modules (their names' objects, the sizes of their
  module-level dicts, lists and sets) around each test file's collection; a module whose
  snapshot changed, or one first imported by that file whose containers hold an object the
  file defined, is a module the file's import changed (``Collected.state``): the file is a
  state polluter of it (`Polluters.state`, learned from every run that collected it);
- a test file's key holds ``collected-with:<polluter>`` for each state polluter of a module
  among its inputs (other than itself), with the digest of the Python files the polluter's
  import runs (its own and its imports'): an edit there re-runs the file;
- a file that runs has those polluters collected in the same pytest process, their tests
  deselected (`Plan.collect_only`): its tests see the state of the full run;
- a polluter found by a run (a new test file) changes the keys of files just served from the
  cache: they are planned again and re-run in the same ``maestro test`` (`repollute`).

Module names (``collected-after:`` too). Under pytest's prepend and append import modes two test
files of one module name cannot both be imported: the full run fails the later one. Found from
the files at each plan (`module_clashes`), the earlier file counts as a polluter of the later.

Session namespaces (``collected-after:`` too). pytest's ``doctest_namespace`` is one dict for
the session: an autouse fixture of a conftest that fills it (semver's ``tests/conftest.py``)
runs for the tests of its folder, and the doctests of every file after them (``docs/*.rst``)
see its names; a doctest file run without such a test before it fails with a ``NameError``.
Found from the conftests' source at each plan (`namespace_providers`): the first test module of
the fixture's folder in the full run counts as a polluter of each file with doctests after it,
outside that folder (its key entry also covers the conftest); it runs whole, before it.

Workspace module state changed by tests (``ran-after:``). A test file whose tests leave a
workspace module's state changed (nox's tests register sessions in a global registry and a
fixture of another file clears it) changes what the tests of every file after it see, in the
full run's order:

- the plugin snapshots the workspace modules (as for collection) before the first test of each
  file and after its last test's teardown; a module whose snapshot changed is one the file's
  tests changed (``SessionEnd.ran_state``): the file is a run polluter of it (`Polluters.ran`,
  learned from every run that ran all its tests; kept while its content is what it was when
  seen changing, for a change made once is seen only in the file that makes it first);
- a test file's key holds ``ran-after:<polluter>`` for each run polluter a full run runs before
  it of a module among its inputs, with the digest of the polluter and of the Python files
  among its inputs: an edit there re-runs the file;
- a file that runs has those polluters run before it, their tests too (`_with_polluters`),
  when the code its tests last ran may read a value they change (by name: `ran_names`,
  `read_by`); a file whose run without one turns out to read such a value runs again after it
  (`Plan.late`).

Modules another file imported (``collected-with:`` too). Importing a submodule binds it as an
attribute of its package: a test may reach a workspace module it never imports because another
file's collection imported it first (jsonpickle's ecdsa_test.py calls
``jsonpickle.ext.gmpy.register_handlers()`` after ``import jsonpickle``; the doctest collection
of jsonpickle/ext/gmpy.py imports it). Alone, its test finds no such attribute.

- the test file whose collection imported each workspace module first is remembered
  (`Polluters.loaders`, learned from every run's collections, in the full run's order);
- a test file whose tests ran code of a module that its own imports (the graph's edges, the
  recorded ones aside) do not reach is collected with that module's importer: its key holds
  ``collected-with:<importer>``, as for a state polluter, and an edit of the importer (one
  that no longer imports the module) re-runs it;
- a file with no per-test record yet (never run here, or run untraced before 3.12) is
  collected with the importers of the modules its own imports do not reach but whose package
  they do (`package_importers`), unkeyed: its traced run then decides. Until then an importer
  that stops importing such a module does not re-run it, and neither does one whose module
  its tests only look for (``hasattr(package, "module")``) without running its code.

Not covered: process state other than the warnings filters and the workspace modules' own
namespaces (``os.environ``, ``sys.modules`` entries replaced, ``sys.path``, installed
packages' modules, the attributes of an object a module holds mutated in place, an entry of
a module-level container replaced by one of the same size in a module imported before), and
conftest files (collected for every file of their folder anyway). A result whose outcome
flips under the same key is flagged flaky instead.
"""

from __future__ import annotations

import ast
import hashlib
import posixpath
import re
from collections.abc import Callable, Collection, Container, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import msgpack

from maestro.engine.order import FileOrder
from maestro.paths import read_msgpack, replace_file, workspace_state_dir

AFTER = "collected-after:"
WITH = "collected-with:"
RAN = "ran-after:"
PREFIXES = (AFTER, WITH, RAN)
"""The key entries of polluters: settings of the run, judged by what the polluters are now."""
_FILE = "collection-polluters.msgpack"
_IMPORT_DIGEST = "1:"  # the version of `import_digest`, in its memo's keys


class NameReads(Protocol):
    """What the code a test file's tests ran reads by name (engine/testing.py `Reads`)."""

    def may_read(self, module: str, names: Collection[str]) -> bool:
        """Whether that code may read any of `names` of the workspace module `module` (a
        module-level name, ``Class.attr``)."""
        ...


@dataclass(slots=True)
class Polluters:
    """The workspace's test files known to change the warnings filters (`files`) or workspace
    modules' state (`state`: test file -> those modules) at collection."""

    path: Path
    files: set[str]
    state: dict[str, set[str]] = field(default_factory=dict)
    dirty: bool = False
    # a polluter's content digest -> the digest of what of it runs at import (`import_digest`)
    import_digests: dict[str, str] = field(default_factory=dict)
    _used: set[str] = field(default_factory=set)  # those of `import_digests` asked for
    # state polluter -> what its import ran (`import_of`) when a run last saw it change a module
    learned: dict[str, str] = field(default_factory=dict)
    # test file -> the test files of its module name a full run collects before it (not kept:
    # `module_clashes` finds them from the files at each plan)
    clashes: dict[str, list[str]] = field(default_factory=dict)
    # test file -> {the test module whose tests fill doctest_namespace before it: the conftest
    # whose autouse fixture does} (not kept: `namespace_providers` finds them at each plan)
    namespace: dict[str, dict[str, str]] = field(default_factory=dict)
    _inputs: dict[str, Mapping[str, str]] = field(default_factory=dict)  # a polluter's, memo
    # test file -> the workspace modules its tests leave changed (run polluters)
    ran: dict[str, set[str]] = field(default_factory=dict)
    # run polluter -> its content's digest when a run last saw it change a module
    ran_learned: dict[str, str] = field(default_factory=dict)
    order: FileOrder = field(default_factory=FileOrder)  # the full run's (engine/order.py)
    # workspace module -> the test file whose collection imported it first (the full run's)
    loaders: dict[str, str] = field(default_factory=dict)
    # run polluter -> module of `ran` -> the names of the values it changed (``Class.attr`` for
    # a class's attribute; none known: any reader of the module)
    ran_names: dict[str, dict[str, set[str]]] = field(default_factory=dict)
    # test file -> what the code its tests last ran reads (None: not known); not kept
    reads: Callable[[str], NameReads | None] | None = None
    _reached: dict[str, Collection[str]] = field(default_factory=dict)  # `own_imports`, memo
    # a run of named paths (`pytest PATHS`): the test files it collects, the only ones that
    # count as polluters of its files (None: every test file, the full run); not kept
    among: frozenset[str] | None = None
    # the order that run runs its files in (None: the full run's `order`); not kept: what is
    # learned (`loaders`) follows the full run's
    scope: FileOrder | None = None

    @classmethod
    def load(cls, root: Path, order: FileOrder | None = None) -> Polluters:
        found = read_msgpack(path := workspace_state_dir(root) / _FILE)
        if isinstance(found, list):  # before state polluters were known
            found = {"filters": found}
        if not isinstance(found, dict):
            found = {}
        filters = found.get("filters")
        return cls(
            path,
            {f for f in filters if isinstance(f, str)} if isinstance(filters, list) else set(),
            _str_sets(found.get("state")),
            import_digests=_str_map(found.get("imports")),
            learned=_str_map(found.get("learned")),
            order=order or FileOrder(),
            ran=_str_sets(found.get("ran")),
            ran_learned=_str_map(found.get("ran_learned")),
            loaders=_str_map(found.get("loaders")),
            ran_names=_str_set_maps(found.get("ran_names")),
        )

    @property
    def run_order(self) -> FileOrder:
        """The order the run keyed runs its files in: the named paths', else the full run's."""
        return self.order if self.scope is None else self.scope

    def _counts(self, polluter: str, tests: Container[str]) -> bool:
        """Whether `polluter` is a file of the run (among `tests`, and named when paths are)."""
        return polluter in tests and (self.among is None or polluter in self.among)

    def before(self, target: str, tests: Container[str]) -> list[str]:
        """The known polluters the run collects before `target` (among `tests`), in order;
        with them the files of its module name, which make its import fail."""
        order = self.run_order
        at = order.key(target)
        found = {p for p in self.files if order.key(p) < at and self._counts(p, tests)}
        found.update(p for p in self.clashes.get(target, ()) if self._counts(p, tests))
        found.update(p for p in self.namespace.get(target, ()) if self._counts(p, tests))
        return order.sorted(found)

    def alongside(self, target: str, tests: Container[str], inputs: Collection[str]) -> list[str]:
        """The state polluters of a module among `inputs` (the inputs of `target`, among
        `tests`): a full run imports them before any test of `target` runs."""
        return sorted(
            p
            for p, modules in self.state.items()
            if p != target and self._counts(p, tests) and any(m in inputs for m in modules)
        )

    def ran_before(self, target: str, tests: Container[str], inputs: Collection[str]) -> list[str]:
        """The run polluters the run runs before `target` (among `tests`) of a module among
        its `inputs`, in order."""
        order = self.run_order
        at = order.key(target)
        return order.sorted(
            p
            for p, modules in self.ran.items()
            if p != target
            and self._counts(p, tests)
            and order.key(p) < at
            and any(m in inputs for m in modules)
        )

    def read_by(self, target: str, polluter: str) -> bool:
        """Whether the code `target`'s tests last ran may read what the run polluter's tests
        leave changed (`ran_names`; any of it when the names or that code are not known): it
        runs after the polluter, as in the full run, only then."""
        modules = self.ran.get(polluter, set())
        names = self.ran_names.get(polluter, {})
        if self.reads is None or any(not names.get(m) for m in modules):
            return True
        read = self.reads(target)
        return read is None or any(read.may_read(m, names[m]) for m in modules)

    def importers(
        self,
        target: str,
        tests: Container[str],
        inputs: Collection[str],
        own_imports: Callable[[str], Collection[str]],
    ) -> list[str]:
        """The test files whose collection imported first a module among `target`'s `inputs`
        that its own imports do not reach (`own_imports`: what they reach): its tests found
        it imported, or its package holding it."""
        found: set[str] = set()
        for module in inputs:
            if module not in self.loaders or module in self._own(target, own_imports):
                continue
            loader = self._loader(module, tests, own_imports)
            if loader is not None and loader != target:
                found.add(loader)
        return sorted(found)

    def _loader(
        self, module: str, tests: Container[str], own_imports: Callable[[str], Collection[str]]
    ) -> str | None:
        """The test file of the run whose collection imports `module` first: the full run's
        (`loaders`); in a run of named paths that does not name it, the first named file whose
        own imports reach the module (`pytest PATHS` imports it there)."""
        loader = self.loaders.get(module)
        if loader is None or self._counts(loader, tests) or self.among is None:
            return loader if loader is not None and self._counts(loader, tests) else None
        named = (p for p in self.run_order.sorted(self.among) if p in tests)
        return next((p for p in named if module in self._own(p, own_imports)), None)

    def package_importers(
        self,
        target: str,
        tests: Container[str],
        own_imports: Callable[[str], Collection[str]],
        spelled: Callable[[Collection[str]], Container[str]],
    ) -> list[str]:
        """The test files whose collection imported first a module that `target`'s own imports
        do not reach but reach its package (an attribute of the package once imported), and
        whose name the code they reach spells (`spelled`: the names files spell)."""
        reached = self._own(target, own_imports)
        held = held_by_packages(self.loaders, reached)
        if not held:
            return []
        names = spelled([target, *reached])
        return sorted(
            {
                loader
                for module in held_by_packages(held, reached, names)
                if (loader := self._loader(module, tests, own_imports)) not in (None, target)
            }
        )

    def _own(self, target: str, own_imports: Callable[[str], Collection[str]]) -> Collection[str]:
        """What `target`'s own imports reach, once per target until the graph may know more."""
        reached = self._reached.get(target)
        if reached is None:
            reached = self._reached[target] = own_imports(target)
        return reached

    def inputs(
        self,
        target: str,
        tests: Container[str],
        digest: Callable[[str], str | None],
        inputs: Mapping[str, str] | None = None,
        imports: Callable[[str], Mapping[str, str]] | None = None,
        source: Callable[[str], bytes | None] | None = None,
        own_imports: Callable[[str], Collection[str]] | None = None,
    ) -> dict[str, str]:
        """The key entries of `target` for the polluters collected before it and, given its
        `inputs`, those collected with it (`imports`: a polluter's own inputs; `source`: a
        file's content; `own_imports`: the files a test file's imports reach)."""
        found = {AFTER + p: digest(p) or "absent" for p in self.before(target, tests)}
        for p, conftest in self.namespace.get(target, {}).items():
            if AFTER + p not in found:
                continue
            # what the conftest's fixture puts there; the module's own content only when its
            # import matters too (the module's tests are there to run the fixture)
            imported = p in self.files or p in self.clashes.get(target, ())
            both = f"{found[AFTER + p] if imported else ''}\0{digest(conftest) or 'absent'}"
            found[AFTER + p] = hashlib.sha256(both.encode()).hexdigest()
        if inputs is not None and self.state:
            for p in self.alongside(target, tests, inputs):
                found[WITH + p] = self._with_digest(p, inputs, digest, imports, source)
        if inputs is not None and self.loaders and own_imports is not None:
            for p in self.importers(target, tests, inputs, own_imports):
                if WITH + p not in found:
                    found[WITH + p] = self._with_digest(p, inputs, digest, imports, source)
        if inputs is not None and self.ran:
            # its tests run: the whole file counts, and what it imports that the target does not
            for p in self.ran_before(target, tests, inputs):
                found[RAN + p] = self._with_digest(p, inputs, digest, imports, None)
        return found

    def _with_digest(
        self,
        polluter: str,
        inputs: Mapping[str, str],
        digest: Callable[[str], str | None],
        imports: Callable[[str], Mapping[str, str]] | None,
        source: Callable[[str], bytes | None] | None,
    ) -> str:
        """What the polluter's import runs: its code but its test functions' bodies, and the
        Python files among its inputs that are not the target's (those are in its own key)."""
        own = digest(polluter) or "absent"
        entries = {polluter: own}
        if source is not None and own != "absent":
            entries[polluter] = self.import_of(polluter, digest, source)
        if imports is not None:
            found = self._inputs.get(polluter)
            if found is None:
                found = self._inputs[polluter] = imports(polluter)
            entries |= {
                n: d
                for n, d in found.items()
                if n != polluter and n not in inputs and _is_python_file(n)
            }
        h = hashlib.sha256()
        for name in sorted(entries):
            h.update(f"{name}\0{entries[name]}\n".encode(errors="surrogateescape"))
        return h.hexdigest()

    def learn(self, collected: Iterable[str], polluting: Iterable[str]) -> None:
        """A run collected the files `collected`; of those, `polluting` changed the filters."""
        self._inputs.clear()  # the graph may know more inputs of a polluter now
        self._reached.clear()
        found = set(polluting)
        files = (self.files - set(collected)) | found
        if files != self.files:
            self.files = files
            self.dirty = True

    def learn_state(
        self,
        observed: Iterable[str],
        changed: Mapping[str, Iterable[str]],
        first_imported: Mapping[str, Iterable[str]],
        imported: Callable[[str], str | None] | None = None,
    ) -> set[str]:
        """A run watched the collection of `observed`; `changed`: the modules each changed,
        `first_imported`: those it imported first (whose change before that import could not
        be seen: still assumed). Returns the polluters found with a module not known before.

        `imported`: what a file's import runs (`import_of`), as now. A polluter whose import is
        what it was when it was seen changing a module stays one even when this run saw no
        change: a change made once (a registry filled lazily, a flag set) is seen only in the
        file that makes it first, and which one that is depends on the files collected before
        it. Forgotten then, it was found again by the next run in another order: the files
        reading the module re-ran each time (their keys name their polluters)."""
        self._inputs.clear()
        new: set[str] = set()
        for p in observed:
            old = self.state.get(p, set())
            seen = set(changed.get(p, ()))
            now = seen | (old & set(first_imported.get(p, ())))
            # what its import runs takes a parse of the file: asked only when it can matter (it
            # changed a module now, or was seen changing more before); most files change none
            code = imported(p) if imported is not None and (seen or old - now) else None
            if code is not None and old - now and self.learned.get(p) == code:
                now |= old  # the same code, seen making those changes before
            if now - old:
                new.add(p)
            if now != old:
                self.dirty = True
                if now:
                    self.state[p] = now
                else:
                    self.state.pop(p, None)
            if code is not None and seen and self.learned.get(p) != code:
                self.learned[p] = code
                self.dirty = True
            if not now and self.learned.pop(p, None) is not None:
                self.dirty = True
        return new

    def learn_ran(
        self,
        whole: Iterable[str],
        changed: Mapping[str, Iterable[str]],
        digest: Callable[[str], str | None],
        names: Mapping[str, Mapping[str, Iterable[str]]] | None = None,
    ) -> set[str]:
        """A run ran every test of the files `whole`; `changed`: the modules each file's tests
        left changed (of any file that ran), `names`: the names of the values they changed
        there. Returns the files found changing a module, or a name, not known before.

        A file seen changing nothing stays a run polluter while its content is what it was
        when seen changing one: a registry filled lazily is filled by whichever file runs
        first, and a cleared one changes only when something filled it before."""
        self._inputs.clear()
        new: set[str] = set()
        for p, modules in changed.items():
            seen = set(modules)
            old = self.ran.get(p, set())
            if not seen:
                continue
            if seen - old:
                new.add(p)
                self.ran[p] = old | seen
                self.dirty = True
            known = self.ran_names.setdefault(p, {})
            given = (names or {}).get(p, {})
            for m in seen:
                if m in old and not known.get(m):
                    continue  # seen before with no names: any reader of it, still
                found = set(given.get(m, ()))
                if not found:
                    if known.pop(m, None) is not None:
                        new.add(p)
                        self.dirty = True
                    continue
                if not found <= known.get(m, set()):
                    new.add(p)
                    known[m] = known.get(m, set()) | found
                    self.dirty = True
            own = digest(p)
            if own is not None and self.ran_learned.get(p) != own:
                self.ran_learned[p] = own
                self.dirty = True
        for p in whole:
            if p in changed or p not in self.ran:
                continue
            own = digest(p)
            if own is None or self.ran_learned.get(p) != own:
                del self.ran[p]
                self.ran_learned.pop(p, None)
                self.ran_names.pop(p, None)
                self.dirty = True
        return new

    def learn_loaders(self, observed: Iterable[str], loaded: Mapping[str, Iterable[str]]) -> None:
        """A run watched the collection of the test files `observed`; `loaded`: the workspace
        modules each one's collection imported first. The first importer in the full run's
        order is kept: one this run did not collect still imports first in a full run."""
        self._reached.clear()
        seen = set(observed)
        first: dict[str, str] = {}
        for p in self.order.sorted(p for p in loaded if p in seen):
            for module in loaded[p]:
                first.setdefault(module, p)
        for module, p in first.items():
            known = self.loaders.get(module)
            if known == p:
                continue
            if known is None or known in seen or self.order.key(p) < self.order.key(known):
                self.loaders[module] = p
                self.dirty = True
        for module, known in list(self.loaders.items()):
            if known in seen and module not in first:  # imported before it now, or no more
                del self.loaders[module]
                self.dirty = True

    def import_of(
        self,
        polluter: str,
        digest: Callable[[str], str | None],
        source: Callable[[str], bytes | None],
    ) -> str:
        """The digest of what the polluter's import runs (`import_digest`: its code but its test
        functions' bodies), memoised by its content's digest."""
        own = digest(polluter) or "absent"
        if own == "absent":
            return own
        memo = _IMPORT_DIGEST + own
        known = self.import_digests.get(memo)
        if known is None:
            text = source(polluter)
            known = own if text is None else import_digest(text)
            self.import_digests[memo] = known
            self.dirty = True
        self._used.add(memo)
        return known

    def save(self) -> None:
        if not self.dirty:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        data = {
            "filters": sorted(self.files),
            "state": {p: sorted(m) for p, m in self.state.items()},
            "imports": {k: v for k, v in self.import_digests.items() if k in self._used},
            "learned": {p: c for p, c in self.learned.items() if p in self.state},
            "ran": {p: sorted(m) for p, m in self.ran.items()},
            "ran_learned": {p: d for p, d in self.ran_learned.items() if p in self.ran},
            "ran_names": {
                p: {m: sorted(n) for m, n in by.items() if n}
                for p, by in self.ran_names.items()
                if p in self.ran
            },
            "loaders": self.loaders,
        }
        replace_file(self.path, msgpack.packb(data, use_bin_type=True))
        self.dirty = False


def held_by_packages(
    modules: Iterable[str], reached: Collection[str], names: Container[str] | None = None
) -> set[str]:
    """Those of `modules` (files) not in `reached` whose package is, or is one of them: an
    attribute of a package a file imports, or of one such attribute, once imported; given
    `names`, only those whose attribute name is among them."""
    found: set[str] = set()
    for module in sorted(modules, key=_depth):  # packages before their modules
        if module in reached:
            continue
        folder = posixpath.dirname(module)
        name = posixpath.basename(module).removesuffix(".py")
        if module.endswith("/__init__.py"):
            folder, name = posixpath.dirname(folder), posixpath.basename(folder)
        package = posixpath.join(folder, "__init__.py")
        if (package in reached or package in found) and (names is None or name in names):
            found.add(module)
    return found


def _depth(module: str) -> tuple[int, str]:
    """A module file's depth as a module (a package's ``__init__.py`` is its folder's)."""
    return module.count("/") - module.endswith("/__init__.py"), module


def _str_sets(found: object) -> dict[str, set[str]]:
    """A kept map of file -> names, read back: what is not of those types is dropped."""
    if not isinstance(found, dict):
        return {}
    return {
        p: {m for m in ms if isinstance(m, str)}
        for p, ms in found.items()
        if isinstance(p, str) and isinstance(ms, list)
    }


def _str_set_maps(found: object) -> dict[str, dict[str, set[str]]]:
    if not isinstance(found, dict):
        return {}
    return {k: _str_sets(v) for k, v in found.items() if isinstance(k, str)}


def _str_map(found: object) -> dict[str, str]:
    """A kept map of name -> digest, read back: what is not of those types is dropped."""
    if not isinstance(found, dict):
        return {}
    return {k: v for k, v in found.items() if isinstance(k, str) and isinstance(v, str)}


def module_clashes(
    tests: Iterable[str], packages: Container[str], order: FileOrder | None = None
) -> dict[str, list[str]]:
    """Test file -> the test files before it (in the full run's `order`) of the same module name, as
    pytest's prepend and append import modes name a test module: its basename, under the
    packages (folders with an ``__init__.py`` among `packages`) it sits in. A full run fails to
    import the later file ("import file mismatch"); alone, it would import."""
    seen: dict[str, list[str]] = {}
    found: dict[str, list[str]] = {}
    for rel in (order or FileOrder()).sorted(t for t in tests if t.endswith(".py")):
        parts = rel.split("/")
        name = [parts[-1].removesuffix(".py")]
        folder = parts[:-1]
        while folder and "/".join((*folder, "__init__.py")) in packages:
            name.insert(0, folder.pop())
        earlier = seen.setdefault(".".join(name), [])
        if earlier:
            found[rel] = list(earlier)
        earlier.append(rel)
    return found


def fills_doctest_namespace(source: bytes) -> bool:
    """Whether a conftest defines an autouse fixture that asks for ``doctest_namespace``."""
    if b"doctest_namespace" not in source:
        return False
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return False
    for node in ast.walk(tree):
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        args = node.args
        if "doctest_namespace" not in {a.arg for a in (*args.posonlyargs, *args.args)}:
            continue
        for decorator in node.decorator_list:
            if isinstance(decorator, ast.Call) and any(
                k.arg == "autouse" and isinstance(k.value, ast.Constant) and k.value.value is True
                for k in decorator.keywords
            ):
                return True
    return False


def namespace_providers(
    conftests: Iterable[str],
    tests: Iterable[str],
    source: Callable[[str], bytes | None],
    order: FileOrder,
    python_files: Callable[[str], bool],
) -> dict[str, dict[str, str]]:
    """File with doctests -> {the first test module of a conftest's folder that a full run
    runs before it: that conftest}, for each conftest outside its folders with an autouse
    fixture filling ``doctest_namespace``: running the module's tests runs the fixture (a
    module named as `python_files` says, defining a test). A Python file counts when its source
    holds a doctest prompt."""
    fillers = [c for c in sorted(conftests) if fills_doctest_namespace(source(c) or b"")]
    if not fillers:
        return {}
    ranked = order.sorted(tests)
    found: dict[str, dict[str, str]] = {}
    for conftest in fillers:
        folder = conftest.rpartition("/")[0]
        prefix = folder + "/" if folder else ""
        first = next(
            (
                t
                for t in ranked
                if t.startswith(prefix)
                and python_files(t)
                and re.search(rb"^\s*(async\s+)?def test|^\s*class Test", source(t) or b"", re.M)
            ),
            None,
        )
        if first is None:
            continue
        for t in ranked[ranked.index(first) + 1 :]:
            if t.startswith(prefix) or (t.endswith(".py") and b">>>" not in (source(t) or b"")):
                continue
            found.setdefault(t, {})[first] = conftest
    return found


def _is_python_file(name: str) -> bool:
    return (
        name.endswith(".py")
        and not name.startswith(("@", "env:", "dist:", "//"))
        and "#" not in name
    )


def import_digest(source: bytes) -> str:
    """A digest of what of a test file runs when it is imported: all of it but the bodies of
    its test functions and methods (``test*``: pytest calls them after every file is
    collected), unless a name used outside any function body (at import) is theirs, and but
    those tests whole when undecorated with no default (adding one changes nothing at import).
    Comments, blank lines and line numbers do not count."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return hashlib.sha256(source).hexdigest()
    used: set[str] = set()
    tests: list[ast.FunctionDef | ast.AsyncFunctionDef] = []

    def visit(node: ast.AST, inside: bool) -> None:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            # decorators, defaults and annotations run at the definition
            returns = [node.returns] if node.returns else []
            for part in (*node.decorator_list, node.args, *returns):
                visit(part, inside)
            if node.name.startswith("test") and not inside:
                tests.append(node)
            for statement in node.body:
                visit(statement, True)
            return
        if not inside:
            if isinstance(node, ast.Name):
                used.add(node.id)
            elif isinstance(node, ast.Attribute):
                used.add(node.attr)
            elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                used.add(node.value)  # getattr(cls, "test_x")
        for child in ast.iter_child_nodes(node):
            visit(child, inside)

    visit(tree, False)
    idle = {id(node) for node in tests if node.name not in used}
    for node in tests:
        if id(node) in idle:
            node.body = [ast.Pass()]
    # a plain test (no decorator, no default: nothing of it runs at import) does not count at all
    plain = {
        id(node)
        for node in tests
        if id(node) in idle
        and not node.decorator_list
        and not node.args.defaults
        and not any(node.args.kw_defaults)
    }
    for holder in ast.walk(tree):
        if isinstance(holder, (ast.Module, ast.ClassDef)):
            holder.body = [n for n in holder.body if id(n) not in plain] or [ast.Pass()]
    return hashlib.sha256(ast.dump(tree).encode()).hexdigest()
