"""A test file's tests may leave a workspace module's state changed for the files pytest runs
after it (nox: test_main.py's tests fill the session registry, test_registry.py's fixture clears
it, test_tasks.py asserts it holds only its own sessions). A cached result is the full run's
answer: a file that runs again runs after the files whose tests change what it reads, and an
edit of one of those re-runs it; a file named alone (`maestro test -- F`) answers as `pytest F`
does, without them. Real pytest children, real LMDB; every check first asks plain pytest."""

from __future__ import annotations

import pytest
from project_python import plain_pytest, project_python
from testing_helpers import Workspace, outcomes, ran

from maestro.engine import testing
from maestro.engine.pollution import Polluters

REGISTRY = "REGISTRY = {}\n\n\ndef register(name):\n    REGISTRY[name] = 1\n"
FILLER = "tests/test_fill.py"
CLEANER = "tests/test_m_clear.py"
READER = "tests/test_read.py"
NODE = f"{READER}::test_empty"


def pytest_says(ws: Workspace, *args: str) -> dict[str, str]:
    done = plain_pytest(project_python(), ws.root, "-rA", "-q", *args)
    found: dict[str, str] = {}
    for line in done.stdout.splitlines():
        word, _, rest = line.partition(" ")
        if word in ("PASSED", "FAILED", "ERROR"):
            found[rest.split(" - ")[0].strip()] = word.lower()
    return found


def write(ws: Workspace, *, cleaner: bool) -> None:
    ws.write("pkg/registry.py", REGISTRY)
    ws.write("pkg/data.py", 'DATA = "x"\n')
    ws.write(
        FILLER,
        "from pkg import data, registry\n\n\ndef test_fill():\n    registry.register(data.DATA)\n",
    )
    if cleaner:
        ws.write(
            CLEANER,
            "from pkg import registry\n\n\ndef test_clear():\n    registry.REGISTRY.clear()\n",
        )
    ws.write(
        READER,
        "from pkg import data, registry\n\n\n"
        "def test_empty():\n    assert data.DATA\n    assert registry.REGISTRY == {}\n",
    )


def test_a_file_cleared_by_an_earlier_file_s_tests_passes_as_in_the_full_run(
    ws: Workspace,
) -> None:
    write(ws, cleaner=True)
    assert pytest_says(ws)[NODE] == "passed"
    assert outcomes(ws.run())[NODE] == "passed"
    # the data both the filler and the reader use: the cleaner is served unless it runs again
    ws.edit("pkg/data.py", '"x"', '"y"')
    assert pytest_says(ws)[NODE] == "passed"
    summary = ws.run()
    assert outcomes(summary)[NODE] == "passed"  # was a false failure: the cleaner was cached
    assert {FILLER, CLEANER, READER} <= set(ran(summary))
    reader = next(f for f in ws.plan().files if f.target == READER)
    assert not reader.runs  # stored: nothing changed since
    assert ran(ws.run()) == []


def test_a_file_polluted_by_an_earlier_file_s_tests_still_fails(ws: Workspace) -> None:
    write(ws, cleaner=False)
    ws.write("pkg/other.py", "VALUE = 1\n")
    ws.edit(READER, "from pkg import data", "from pkg import data, other")
    assert pytest_says(ws)[NODE] == "failed"
    assert outcomes(ws.run())[NODE] == "failed"
    # a module only the reader imports: alone, it would pass (a stale pass)
    ws.edit("pkg/other.py", "1", "2")
    assert pytest_says(ws)[NODE] == "failed"
    planned = next(f for f in ws.plan().files if f.target == READER)
    assert "pkg/other.py" in planned.describe()
    summary = ws.run()
    assert outcomes(summary)[NODE] == "failed"
    assert FILLER in ran(summary)
    # the filler's own edit re-runs the reader: it no longer fills
    ws.edit(FILLER, "registry.register(data.DATA)", "assert data.DATA")
    assert pytest_says(ws)[NODE] == "passed"
    reader = next(f for f in ws.plan().files if f.target == READER)
    assert f"{FILLER} (its tests, run before, change state these tests read)" in (reader.describe())
    assert outcomes(ws.run())[NODE] == "passed"


FAKE = """
class Filesystem:
    pass


CURRENT = None
"""


def test_an_object_a_fixture_sets_up_for_each_test_changes_no_state(ws: Workspace) -> None:
    """pyfakefs sets a new fake filesystem on a class for each test: no later file reads the one
    an earlier file left, and counting it would run every earlier file with each one."""
    ws.write("pkg/fake.py", FAKE)
    body = (
        "import pytest\nfrom pkg import fake\n\n\n@pytest.fixture(autouse=True)\n"
        "def fs():\n    fake.CURRENT = fake.Filesystem()\n\n\n"
        "def test_it():\n    assert isinstance(fake.CURRENT, fake.Filesystem)\n"
    )
    for name in ("f1", "f2", "f3"):
        ws.write(
            f"tests/test_{name}.py", body.replace("fake.CURRENT = ", "x = 1\n    fake.CURRENT = ")
        )
    ws.run()
    # the first file binds it (None before): the others only set another of its type
    assert set(Polluters.load(ws.root).ran) == {"tests/test_f1.py"}
    ws.edit("tests/test_f3.py", "x = 1", "x = 2")
    assert ran(ws.run()) == ["tests/test_f1.py", "tests/test_f3.py"]


@pytest.mark.parametrize(
    ("leak", "name"),
    [
        ("fake.CURRENT = 'tmp'", "CURRENT"),  # a setting
        ("fake.Filesystem.open = lambda self: None", "Filesystem.open"),  # a patch left in place
        ("fake.CACHE.append(1)", "CACHE"),  # a container filled
    ],
)
def test_what_a_test_leaves_changed_is_seen(ws: Workspace, leak: str, name: str) -> None:
    ws.write("pkg/fake.py", FAKE + "CACHE = []\n")
    ws.write("tests/test_leak.py", f"from pkg import fake\n\n\ndef test_leak():\n    {leak}\n")
    ws.run(testing.Selection(paths=("tests/test_leak.py",)))
    polluters = Polluters.load(ws.root)
    assert polluters.ran.get("tests/test_leak.py") == {"pkg/fake.py"}
    assert polluters.ran_names.get("tests/test_leak.py") == {"pkg/fake.py": {name}}


def test_a_file_named_alone_shows_only_its_own_tests(ws: Workspace) -> None:
    """`maestro test F` answers for F what `pytest F` says: the files whose tests change what
    it reads in the full run do not run before it (nor are they shown)."""
    write(ws, cleaner=True)
    ws.run()
    ws.edit("pkg/data.py", '"x"', '"y"')
    alone = ws.run(testing.Selection(paths=(READER,)))
    assert outcomes(alone) == pytest_says(ws, READER) == {NODE: "passed"}
    assert alone.passed == 1
    assert ran(alone) == [READER]
    planned = {f.target: f.describe() for f in ws.plan(testing.Selection(paths=(READER,))).files}
    assert planned == {READER: "cached"}
    # the full run's answer is its own: the files the edit reaches run, the filler and the
    # cleaner before the reader
    summary = ws.run()
    assert outcomes(summary) == pytest_says(ws)
    assert {FILLER, CLEANER, READER} <= set(ran(summary))
    assert ran(ws.run()) == []


COUNTER = """
class Counted:
    made = 0

    def __init__(self):
        Counted.made += 1
"""


def test_a_counter_that_grew_is_no_change(ws: Workspace) -> None:
    """attrs counts every attribute it makes (`_CountingAttr.cls_counter`), at import and in
    tests: counted as a change, 16 of its 20 test files ran before every file that re-ran."""
    ws.write("pkg/counted.py", COUNTER)
    body = (
        "from pkg.counted import Counted\n\nMADE = Counted()\n\n\ndef test_it():\n    Counted()\n"
    )
    ws.write("tests/test_k1.py", body)
    ws.write("tests/test_k2.py", body)
    ws.run()
    polluters = Polluters.load(ws.root)
    assert polluters.ran == {} and polluters.state == {}
    ws.edit("tests/test_k2.py", "Counted()\n", "Counted()\n    assert True\n")
    assert ran(ws.run()) == ["tests/test_k2.py"]


def test_a_polluter_cut_short_by_exitfirst_stays_one(ws: Workspace) -> None:
    """A run polluter `-x` stopped before the test that changes the module was not seen changing
    it: taken for a whole run, it was forgotten (its content had changed), and the reader then
    ran without it."""
    write(ws, cleaner=True)
    ws.edit(CLEANER, "def test_clear", "def test_0():\n    assert True\n\n\ndef test_clear")
    ws.run()
    assert CLEANER in Polluters.load(ws.root).ran
    ws.edit(CLEANER, "assert True", "assert False")
    stopped = ws.run(testing.Selection(pytest_args=("-x",)))
    assert outcomes(stopped).get(f"{CLEANER}::test_0") == "failed"
    assert CLEANER in Polluters.load(ws.root).ran
    ws.edit(CLEANER, "assert False", "assert 1")
    ws.run()
    ws.edit("pkg/data.py", '"x"', '"y"')
    assert pytest_says(ws)[NODE] == "passed"
    assert outcomes(ws.run(testing.Selection(paths=(READER,)))) == {NODE: "passed"}


LOCKS = """
LOCKS = {}


def lock_for(name):
    return LOCKS.setdefault(name, object())


def plain():
    return 1
"""
LOCKER = "tests/test_a_lock.py"
PLAIN = "tests/test_plain.py"


def write_locks(ws: Workspace) -> None:
    """structlog's `WRITE_LOCKS`: a registry most tests never read, filled by an early file."""
    ws.write("pkg/locks.py", LOCKS)
    ws.write(LOCKER, "from pkg import locks\n\n\ndef test_lock():\n    locks.lock_for('a')\n")
    ws.write(PLAIN, "from pkg import locks\n\n\ndef test_plain():\n    assert locks.plain()\n")


def test_a_file_whose_tests_never_read_what_a_polluter_changed_runs_alone(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MAESTRO_TRACE", "always")  # a per-test record from the first run on 3.11
    write_locks(ws)
    ws.run()
    ws.run()
    assert Polluters.load(ws.root).ran_names == {LOCKER: {"pkg/locks.py": {"LOCKS"}}}
    ws.edit(PLAIN, "assert locks.plain()", "assert locks.plain() == 1")
    summary = ws.run()
    assert ran(summary) == [PLAIN]  # not after the locker: its tests read no LOCKS
    assert outcomes(summary)[f"{PLAIN}::test_plain"] == "passed"
    assert ran(ws.run()) == []


def test_a_file_whose_tests_start_reading_it_runs_again_after_the_polluter(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its last run read no name the polluter changed, so it runs alone; its tests now do (the
    edit calls code that reads the registry): it runs again, after the polluter, as the full
    run runs it, before anything is shown or stored."""
    monkeypatch.setenv("MAESTRO_TRACE", "always")
    write_locks(ws)
    ws.run()
    ws.run()
    ws.edit(
        PLAIN,
        "assert locks.plain()",
        "locks.lock_for('b')\n    assert len(locks.LOCKS) == 2",
    )
    truth = pytest_says(ws)
    assert truth[f"{PLAIN}::test_plain"] == "passed"
    summary = ws.run()
    assert outcomes(summary)[f"{PLAIN}::test_plain"] == "passed"  # alone it fails
    assert ran(ws.run()) == []
    # named alone, it answers as `pytest tests/test_plain.py`: the locker does not run first
    alone = ws.run(testing.Selection(paths=(PLAIN,)))
    assert outcomes(alone) == pytest_says(ws, PLAIN) == {f"{PLAIN}::test_plain": "failed"}


def test_a_class_attribute_read_by_a_computed_name_counts_as_read(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A test leaves a class attribute changed; another reads it with ``getattr(obj, name)``
    and a name built at run time: no code spells it, and it still runs after the first."""
    monkeypatch.setenv("MAESTRO_TRACE", "always")
    ws.write(
        "pkg/conf.py",
        "class Settings:\n    mode = 'plain'\n\n\ndef current(obj, name):\n"
        "    return getattr(obj, name)\n",
    )
    ws.write("tests/test_a_set.py", "from pkg import conf\n\n\ndef test_set():\n"
             "    conf.Settings.mode = 'fancy'\n")  # fmt: skip
    reader = "tests/test_b_read.py"
    ws.write(reader, "from pkg import conf\n\n\ndef test_read():\n"
             "    assert conf.current(conf.Settings(), 'mo' + 'de') == 'fancy'\n")  # fmt: skip
    node = f"{reader}::test_read"
    ws.run()
    ws.run()
    assert Polluters.load(ws.root).ran_names == {
        "tests/test_a_set.py": {"pkg/conf.py": {"Settings.mode"}}
    }
    ws.edit(reader, "== 'fancy'", "== 'fancy', 'the setting'")
    assert pytest_says(ws)[node] == "passed"
    summary = ws.run()
    assert outcomes(summary)[node] == "passed"
    assert ran(ws.run()) == []
