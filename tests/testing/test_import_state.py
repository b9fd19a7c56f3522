"""pytest imports every test file before the first test runs: a test file whose import registers
something in a workspace module (marshmallow's class registry) changes what the tests of the
other files see. A full run's cached result must be the full run's answer whichever files run,
change when the registering file does, and a new registering file must re-run the files it
affects at once; a file named alone answers as `pytest FILE` does. Real pytest children, real
LMDB; every check first asks plain pytest."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import pytest
from project_python import project_python
from testing_helpers import Workspace, ran

from maestro.engine import testing
from maestro.engine.pollution import Polluters, import_digest
from maestro.graph.index import Index
from maestro.paths import graph_index_path, read_msgpack, workspace_state_dir

REGISTRY = """
_registry: dict[str, list[type]] = {}
_by_name: dict[str, type] = {}


def register(cls):
    _registry.setdefault(cls.__name__, []).append(cls)
    return cls


def lookup(name):
    found = _registry[name]
    if len(found) > 1:
        raise LookupError(f"{len(found)} classes named {name!r}")
    return found[0]


def name(cls):
    _by_name[cls.__name__] = cls
    return cls


def named(name):
    return _by_name[name]
"""

VICTIM = "tests/test_lookup.py"
POLLUTER = "tests/test_other.py"
NODE = f"{VICTIM}::test_lookup"


def outcomes(summary: testing.Summary) -> dict[str, str]:
    return {t.node_id: t.outcome for r, _ in summary.results() for t in r.tests}


def pytest_says(ws: Workspace, *args: str) -> dict[str, str]:
    done = subprocess.run(
        [str(project_python()), "-m", "pytest", "-rA", "-q", "-p", "no:cacheprovider", *args],
        cwd=ws.root, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    found: dict[str, str] = {}
    for line in done.stdout.splitlines():
        word, _, rest = line.partition(" ")
        if word in ("PASSED", "FAILED", "ERROR", "SKIPPED"):
            found[rest.split(" - ")[0].strip()] = word.lower()
    return found


def write(ws: Workspace, *, polluter: bool = True) -> None:
    ws.write("pkg/__init__.py", "")
    ws.write("pkg/registry.py", REGISTRY)
    ws.write(
        VICTIM,
        """
        from pkg.registry import lookup, register


        @register
        class Foo:
            pass


        def test_lookup():
            assert lookup("Foo") is Foo
        """,
    )
    ws.write("tests/test_plain.py", "def test_plain():\n    assert True\n")
    if polluter:
        ws.write(POLLUTER, OTHER)


OTHER = """
from pkg.registry import register


@register
class Foo:
    pass


def test_other():
    assert Foo.__name__ == "Foo"
"""


def test_a_file_run_alone_is_collected_with_the_files_registering_into_its_modules(
    ws: Workspace,
) -> None:
    write(ws)
    assert pytest_says(ws)[NODE] == "failed"
    assert outcomes(ws.run())[NODE] == "failed"
    # the victim changes (still failing in a full run): re-run, alone, it is still failed
    ws.edit(VICTIM, "pass", "x = 1")
    assert pytest_says(ws)[NODE] == "failed"
    # named alone, it answers as `pytest VICTIM`: the registering file is not collected
    alone = ws.run(testing.Selection(paths=(VICTIM,)))
    assert outcomes(alone) == pytest_says(ws, VICTIM) == {NODE: "passed"}
    again = ws.run()  # the full run: it runs again, collected with the registering file
    assert outcomes(again)[NODE] == "failed"
    assert outcomes(again)[f"{POLLUTER}::test_other"] == "passed"


def test_an_edit_of_the_registering_file_reruns_the_files_that_use_the_module(
    ws: Workspace,
) -> None:
    write(ws)
    assert outcomes(ws.run())[NODE] == "failed"
    ws.edit(POLLUTER, "class Foo", "class Bar")
    ws.edit(POLLUTER, 'Foo.__name__ == "Foo"', 'Bar.__name__ == "Bar"')
    assert pytest_says(ws)[NODE] == "passed"
    victim = next(f for f in ws.plan().files if f.target == VICTIM)
    assert f"{POLLUTER} (its import changes state these tests read)" in victim.describe()
    summary = ws.run()
    assert VICTIM in ran(summary)
    assert "tests/test_plain.py" not in ran(summary)  # it does not use the registry
    assert outcomes(summary)[NODE] == "passed"
    assert ran(ws.run()) == []  # nothing changed: nothing runs
    ws.edit(POLLUTER, "class Bar", "class Foo")
    ws.edit(POLLUTER, 'Bar.__name__ == "Bar"', 'Foo.__name__ == "Foo"')
    assert outcomes(ws.run())[NODE] == "failed"
    # a test's body does not run at import: the files using the registry keep their results
    ws.edit(POLLUTER, "class Foo", "class Baz")
    ws.edit(POLLUTER, 'Foo.__name__ == "Foo"', 'Baz.__name__ == "Baz"')
    assert outcomes(ws.run())[NODE] == "passed"
    ws.edit(POLLUTER, 'Baz.__name__ == "Baz"', 'Baz.__name__ != "Foo"')
    assert ran(ws.run()) == [POLLUTER]


def test_an_edit_of_a_helper_the_registering_file_imports_is_named(ws: Workspace) -> None:
    # pathspec: "inputs changed: tests/test_01_util.py (its import changes state these tests
    # read)" when only tests/util.py, a helper that file imports, was edited
    write(ws, polluter=False)
    ws.write("tests/helpers.py", "def named(name):\n    return type(name, (), {})\n")
    ws.write(
        POLLUTER,
        """
        from helpers import named

        from pkg.registry import register

        Foo = register(named("Foo"))


        def test_other():
            assert Foo.__name__
        """,
    )
    assert pytest_says(ws)[NODE] == "failed"
    assert outcomes(ws.run())[NODE] == "failed"
    ws.edit("tests/helpers.py", "type(name,", "type(name + '2',")
    assert pytest_says(ws)[NODE] == "passed"
    victim = next(f for f in ws.plan().files if f.target == VICTIM)
    assert victim.describe() == (
        f"inputs changed: tests/helpers.py, which {POLLUTER} imports "
        f"({POLLUTER}'s import changes state these tests read)"
    )
    assert outcomes(ws.run())[NODE] == "passed"


def test_a_file_added_then_removed_registering_a_class(ws: Workspace) -> None:
    write(ws, polluter=False)
    assert outcomes(ws.run())[NODE] == "passed"
    assert ran(ws.run()) == []
    ws.write(POLLUTER, OTHER)
    summary = ws.run()  # the new file runs; the victim, served first, is re-run at once
    assert outcomes(summary)[NODE] == "failed"
    assert "tests/test_plain.py" not in ran(summary)
    (Path(ws.root) / POLLUTER).unlink()
    assert pytest_says(ws)[NODE] == "passed"
    assert outcomes(ws.run())[NODE] == "passed"


def test_an_entry_replaced_in_a_registry_imported_before(ws: Workspace) -> None:
    # `_by_name[name] = cls`: a second class of the same name replaces the first (same size);
    # the registry was imported by the file collected first
    ws.write("pkg/__init__.py", "")
    ws.write("pkg/registry.py", REGISTRY)
    ws.write(
        "tests/test_a.py",
        """
        from pkg.registry import name, named


        @name
        class Foo:
            pass


        def test_named():
            assert named("Foo") is Foo
        """,
    )
    node = "tests/test_a.py::test_named"
    assert outcomes(ws.run())[node] == "passed"
    ws.write(
        "tests/test_b.py",
        """
        from pkg.registry import name


        @name
        class Foo:
            pass


        def test_b():
            pass
        """,
    )
    assert pytest_says(ws)[node] == "failed"
    assert outcomes(ws.run())[node] == "failed"


def test_a_registry_on_a_base_class(ws: Workspace) -> None:
    ws.write("pkg/__init__.py", "")
    ws.write(
        "pkg/plugins.py",
        """
        class Plugin:
            known = []

            def __init_subclass__(cls):
                Plugin.known.append(cls.__name__)
        """,
    )
    ws.write(
        "tests/test_count.py",
        """
        from pkg.plugins import Plugin


        def test_none():
            assert Plugin.known == []
        """,
    )
    node = "tests/test_count.py::test_none"
    assert outcomes(ws.run())[node] == "passed"
    ws.write(
        "tests/test_plugin.py",
        """
        from pkg.plugins import Plugin


        class Mine(Plugin):
            pass


        def test_mine():
            pass
        """,
    )
    assert pytest_says(ws)[node] == "failed"
    assert outcomes(ws.run())[node] == "failed"
    alone = testing.Selection(paths=("tests/test_count.py",))
    assert outcomes(ws.run(alone))[node] == pytest_says(ws, "tests/test_count.py")[node] == "passed"
    assert outcomes(ws.run())[node] == "failed"


def test_what_a_test_file_runs_at_import_is_what_its_digest_covers() -> None:
    base = b"""import reg


@reg.register
class Schema:
    def test_method(self):
        assert 1


def test_plain():
    pass


@reg.mark
def test_decorated():
    pass
"""
    same = import_digest(base)
    # a test's body runs after every file is collected: not at import
    assert import_digest(base.replace(b"assert 1", b"assert 2")) == same
    assert import_digest(base + b"\n\ndef test_new():\n    pass\n") == same  # plain, added
    assert import_digest(base.replace(b"def test_plain():\n    pass", b"")) == same
    # what runs at import does count
    assert import_digest(base.replace(b"@reg.register\n", b"")) != same
    assert import_digest(base.replace(b"@reg.mark\n", b"")) != same
    assert import_digest(base + b"\nregistered = reg.ALL\n") != same
    # a test function called at import is import-time code
    called = base + b"\ntest_plain()\n"
    body = called.replace(b"def test_plain():\n    pass", b"def test_plain():\n    reg.x()")
    assert import_digest(body) != import_digest(called)


def test_the_polluters_survive_a_reload(isolated: Path) -> None:
    polluters = Polluters.load(isolated)
    assert polluters.learn_state(["tests/test_a.py"], {"tests/test_a.py": ["pkg/r.py"]}, {}) == {
        "tests/test_a.py"
    }
    polluters.save()
    again = Polluters.load(isolated)
    assert again.state == {"tests/test_a.py": {"pkg/r.py"}}
    # seen again, changing nothing it had not imported first: forgotten
    assert again.learn_state(["tests/test_a.py"], {}, {"tests/test_a.py": ["pkg/r.py"]}) == set()
    assert again.state == {"tests/test_a.py": {"pkg/r.py"}}  # it imported it first: kept
    again.learn_state(["tests/test_a.py"], {}, {})
    assert again.state == {}


def test_only_the_files_that_change_a_module_have_their_import_read(isolated: Path) -> None:
    # what a file's import runs takes a parse of the file: a first run of a suite whose files
    # change no module parsed every one of them once its tests were over
    polluters = Polluters.load(isolated)
    asked: list[str] = []

    def imported(path: str) -> str:
        asked.append(path)
        return "code-" + path

    files = ["tests/test_a.py", "tests/test_b.py", "tests/test_c.py"]
    assert polluters.learn_state(files, {"tests/test_b.py": ["pkg/r.py"]}, {}, imported) == {
        "tests/test_b.py"
    }
    assert asked == ["tests/test_b.py"]
    assert polluters.learned == {"tests/test_b.py": "code-tests/test_b.py"}
    asked.clear()
    # seen changing it before, not now: its import (the same) keeps it a polluter
    assert polluters.learn_state(files, {}, {}, imported) == set()
    assert asked == ["tests/test_b.py"]
    assert polluters.state == {"tests/test_b.py": {"pkg/r.py"}}


def kept_state(ws: Workspace) -> dict[str, Any]:
    """What a run leaves for the next one: the graph index, each file's last key and inputs,
    the kept fingerprints, the collection polluters."""
    state = workspace_state_dir(ws.root)
    index = Index.load(graph_index_path(ws.root))
    prints = state / "fingerprints"
    return {
        "index": (
            {rel: entry.pack() for rel, entry in index.files.items()},
            index.dynamic, index.listed, index.listings, index.extra,
        ),
        "last": read_msgpack(state / testing.LAST_RUNS_FILE),
        "fingerprints": {
            str(p.relative_to(prints)): p.read_bytes()
            for p in sorted(prints.rglob("*"))
            if p.is_file() and p.name != "seal.key"  # a random key per state folder
        },
        "polluters": read_msgpack(state / "collection-polluters.msgpack") or {},
    }  # fmt: skip


def test_a_run_keeps_the_same_whether_every_file_s_import_is_read_or_not(
    ws: Workspace, isolated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a first run reads what only the test files that changed a module run at import; what it
    # keeps is what it kept when it read every collected file's (but the memo of those reads)
    write(ws)
    learn = Polluters.learn_state

    def every(
        self: Polluters,
        observed: Iterable[str],
        changed: Mapping[str, Iterable[str]],
        first_imported: Mapping[str, Iterable[str]],
        imported: Callable[[str], str | None] | None = None,
    ) -> set[str]:
        observed = list(observed)
        for p in observed if imported is not None else ():
            imported(p)
        return learn(self, observed, changed, first_imported, imported)

    with monkeypatch.context() as patched:
        patched.setattr(Polluters, "learn_state", every)
        assert outcomes(ws.run())[NODE] == "failed"
    eager = kept_state(ws)
    shutil.rmtree(isolated / "state")
    shutil.rmtree(isolated / "cache")
    assert outcomes(ws.run())[NODE] == "failed"
    lazy = kept_state(ws)
    assert lazy["index"] == eager["index"]
    assert lazy["last"] == eager["last"]
    assert lazy["fingerprints"] == eager["fingerprints"]
    assert lazy["fingerprints"]  # (the test files' among them)
    imports = lazy["polluters"].pop("imports")
    read = eager["polluters"].pop("imports")
    assert lazy["polluters"] == eager["polluters"]
    polluting = eager["polluters"]["state"]
    assert polluting == {POLLUTER: ["pkg/registry.py"], VICTIM: ["pkg/registry.py"]}
    # the two polluters' imports, the same; tests/test_plain.py's was read for nothing
    assert imports == {k: v for k, v in read.items() if k in imports}
    assert len(imports) == len(polluting) < len(read)


def test_a_warning_at_a_test_file_s_import_changes_no_state(ws: Workspace) -> None:
    # docopt-ng: collecting testcases.docopt warned from the conftest (the deprecated `path`
    # argument); the conftest module's __warningregistry__ grew, so the data file counted as
    # changing the conftest's state and an edit of it re-ran every test file
    ws.write(
        "pkg/util.py",
        "import warnings\n\n\ndef old(x):\n"
        "    warnings.warn('old is deprecated', DeprecationWarning)\n    return x\n\n\n"
        "def new(x):\n    return x\n",
    )
    ws.write("tests/test_warns.py", "from pkg.util import old\n\nVALUE = old(1)\n\n\n"
             "def test_w():\n    assert VALUE == 1\n")  # fmt: skip
    ws.write("tests/test_user.py", "from pkg.util import new\n\n\ndef test_u():\n"
             "    assert new(2) == 2\n")  # fmt: skip
    ws.run()
    ws.edit("tests/test_warns.py", "VALUE = old(1)", "VALUE = old(1) * 1")
    summary = ws.run()
    assert ran(summary) == ["tests/test_warns.py"]
    assert outcomes(summary) == pytest_says(ws)


LAZY = """
_REG = {}


def signature(name):
    if not _REG:
        _REG.update(a=1, b=2)
    return _REG.get(name)
"""


def test_a_state_polluter_seen_first_in_another_order_stays_one(ws: Workspace) -> None:
    # toolz: a registry filled lazily, at the first call (two test files call it at import): a
    # run sees the change only in the file it collects first. Forgetting the other one at each
    # run in another order, and finding it again at the next, re-ran every file reading the
    # module each time
    ws.write("pkg/__init__.py", "")
    ws.write("pkg/sigs.py", LAZY)
    for name, letter, value in (("test_a_par", "b", 2), ("test_core", "a", 1)):
        ws.write(
            f"tests/{name}.py",
            f"from pkg.sigs import signature\n\nX = signature({letter!r})\n\n\n"
            f"def {name}():\n    assert X == {value}\n",
        )
    ws.write(
        "tests/test_reader.py",
        "from pkg import sigs\n\n\ndef test_reader():\n    assert sigs.signature('a') == 1\n",
    )
    ws.run()
    reversed_order = testing.Selection(paths=("tests/test_core.py", "tests/test_a_par.py"))
    for n in range(2):
        steps = ("X", "0 + X", "1 * X")
        ws.edit("tests/test_core.py", f"assert {steps[n]} == 1", f"assert {steps[n + 1]} == 1")
        ws.edit("tests/test_a_par.py", f"assert {steps[n]} == 2", f"assert {steps[n + 1]} == 2")
        ws.run(reversed_order)
        # both stay state polluters (the first such run finds test_core.py one: the reader runs
        # once with it); then the reader is served (its polluters are what they were), and so
        # are the two files, whose keys name each other whichever is collected first
        again = ws.run()
        assert ran(again) == [] or n == 0, ran(again)
        assert again.failed == 0
        assert {"tests/test_core.py", "tests/test_a_par.py"} <= set(Polluters.load(ws.root).state)
