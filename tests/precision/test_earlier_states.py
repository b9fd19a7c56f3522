"""An earlier state of the workspace, put back after several edits, is served again.

A developer edits a module several times, running the tests each time, then puts it back (git
checkout, undo). When an edit changed what a test file reads, the file's lookup key after the
undo names other inputs than the result from before the edits; that result is served again
when every input its run recorded holds, however many edits ago it was stored (while the cache
holds it), and never when one does not."""

from __future__ import annotations

from pathlib import Path

import msgpack
import pytest
from precision_helpers import FILES, Workspace, ran_nodes

from maestro.cache import Cache
from maestro.cache.keys import ActionKey, KeyContext, action_key
from maestro.engine import testing

READS_AFTER_A_CALL = (
    "import pathlib\n\nfrom pkg import calc\n\n\ndef test_reads():\n"
    "    assert calc.triple(1) == 3\n"
    "    assert pathlib.Path('tests/values.txt').read_text().strip() == 'ok'\n"
)

# each edit is run; the first makes test_reads fail before it reads its data file
EDITS = [
    ("return x * 3", "return x * 4"),
    ("return x * RATE", "return RATE * x"),
    ("return double(x) + 1", "return 1 + double(x)"),
    ("RATE = 2", "RATE = 1 + 1"),
]


def edit_four_times_then_undo(ws: Workspace) -> None:
    ws.write("tests/test_data.py", READS_AFTER_A_CALL)
    assert ws.run().failed == 0
    for old, new in EDITS:
        ws.edit("pkg/calc.py", old, new)
        ws.run()
    ws.write("pkg/calc.py", FILES["pkg/calc.py"])  # the tree of the first run again


def test_a_state_four_edits_back_is_served_again(ws: Workspace) -> None:
    edit_four_times_then_undo(ws)
    undone = ws.run()
    assert ran_nodes(undone) == []
    assert (undone.failed, undone.passed) == (0, 5)
    # still keyed by what that run read: its data file changes the test's outcome
    ws.edit("tests/values.txt", "ok", "changed")
    summary = ws.run()
    assert ran_nodes(summary) == ["tests/test_data.py::test_reads"]
    assert summary.failed == 1


def test_a_state_four_edits_back_is_not_served_past_a_conftest_added_since(
    ws: Workspace,
) -> None:
    edit_four_times_then_undo(ws)
    ws.write("tests/conftest.py", "import pytest\n\n\n@pytest.fixture(autouse=True)\n"
             "def broken():\n    raise RuntimeError('set-up fails')\n")  # fmt: skip
    summary = ws.run()
    assert summary.passed == 0
    assert summary.errors == 5


def test_a_state_four_edits_back_is_not_served_when_its_data_differs(ws: Workspace) -> None:
    edit_four_times_then_undo(ws)
    ws.edit("tests/values.txt", "ok", "changed")
    summary = ws.run()
    assert "tests/test_data.py::test_reads" in ran_nodes(summary)
    assert summary.failed == 1


SCRATCH = (
    "import pathlib\nimport tempfile\n\nfrom pkg import calc\n\n\ndef test_scratch():\n"
    "    folder = pathlib.Path(tempfile.mkdtemp())\n"
    "    for n in range(150):  # a tool looking for its settings in a fresh folder\n"
    "        try:\n"
    "            open(folder / f'settings{n}.cfg')\n"
    "        except FileNotFoundError:\n"
    "            pass\n"
    "    folder.rmdir()\n"
    "    assert calc.triple(1) == 3\n"
)


def test_a_state_four_edits_back_is_served_when_each_run_looked_for_other_missing_files(
    ws: Workspace,
) -> None:
    # each run records 150 files that were not there, in a folder new at each run (absent
    # once it is removed): an earlier key differs from the last in all of them
    ws.write("tests/test_scratch.py", SCRATCH)
    edit_four_times_then_undo(ws)
    undone = ws.run()
    assert ran_nodes(undone) == []
    assert (undone.failed, undone.passed) == (0, 6)


def _keys(target: str, n: int) -> list[ActionKey]:
    """Keys of ``target`` as a long session of edits gives them: each edit one more file
    version, and now and then an input read or no longer read."""
    keys = []
    for i in range(n):
        inputs = {target: f"t{i % 3}", "pkg/a.py": f"a{i}", "@python": "cpython 3.12.1"}
        if i % 4 == 0:
            inputs["tests/data.txt"] = "d"
        inputs[f"/tmp/scratch{i}/settings.cfg"] = "absent"  # a fresh folder's, gone since
        keys.append(action_key(target, _CONTEXT, inputs))
    return keys


_CONTEXT = KeyContext("8", "cpython", "3.12.1", "linux-x86_64", "env")


def test_the_earlier_keys_kept_are_bounded_and_are_each_key_s_own_inputs(tmp_path: Path) -> None:
    last = testing.LastKeys(tmp_path / "last", {})
    keys = _keys("tests/test_x.py", 60)
    for key in keys:
        last.set(key)
    last.save()
    stored = testing.LastKeys(tmp_path / "last", msgpack.unpackb((tmp_path / "last").read_bytes()))
    history = stored.history("tests/test_x.py")
    assert [k for k, _ in history] == [k.hex for k in reversed(keys[-testing.LAST_KEYS_KEPT :])]
    earlier = stored.earlier("tests/test_x.py")
    assert len(earlier) == testing.EARLIER_KEPT
    newest = history[0][1]
    by_hex = {k.hex: k for k in keys}
    for hex_, differ in earlier:
        # each value by its head: enough to tell most changes apart, and the result's own
        # inputs map decides; a missing file and one not recorded read alike
        assert len(differ) <= 3
        rebuilt = {n: v[:16] for n in {*newest, *differ} if (v := differ.get(n, newest.get(n)))}
        inputs = by_hex[hex_].inputs
        assert {n: v for n, v in rebuilt.items() if v != "absent"} == {
            n: v[:16] for n, v in inputs.items() if v != "absent"
        }
    expected = [k.hex for k in reversed(keys[: -testing.LAST_KEYS_KEPT])][: testing.EARLIER_KEPT]
    assert [k for k, _ in earlier] == expected


def test_a_result_stored_for_other_inputs_than_its_key_s_is_not_served(ws: Workspace) -> None:
    # the cache entry of the state four edits back, replaced by a result whose inputs map is not
    # that key's (a corrupt or foreign entry): the earlier state is not served from it
    edit_four_times_then_undo(ws)
    last = testing.LastKeys.load(ws.root)
    earlier = dict(last.earlier("tests/test_data.py"))
    assert earlier
    with Cache.open() as cache:
        for hex_ in earlier:
            result = cache.get_action(hex_, count=False)
            if result is not None:
                other = {**result.inputs, "tests/values.txt": "0" * 64}
                cache.put_action(hex_, result.model_copy(update={"inputs": other}))
    summary = ws.run()
    assert "tests/test_data.py::test_reads" in ran_nodes(summary)
    assert (summary.failed, summary.passed) == (0, 5)


def test_an_earlier_key_kept_with_values_of_another_type_is_passed_over(tmp_path: Path) -> None:
    # a last-keys file msgpack reads whole, but whose kept differences are not names and
    # digests (written by something else): no earlier key of it is tried, the run goes on
    keys = _keys("tests/test_x.py", 6)
    last = testing.LastKeys(tmp_path / "last", {})
    for key in keys[:-1]:
        last.set(key)
    entry = last.data["tests/test_x.py"]
    good = entry[3][0]
    entry[3] = [["0" * 64, {"pkg/a.py": 5}], ["1" * 64, {7: "a0"}], good]
    assert last.earlier("tests/test_x.py") == [(good[0], good[1])]
    last.set(keys[-1])  # keeps the good one, drops the others
    assert [k for k, _ in last.earlier("tests/test_x.py")][-1] == good[0]


def _outcome(summary: testing.Summary, node: str) -> str | None:
    results = (f.result for f in summary.files if f.result is not None)
    return next((t.outcome for r in results for t in r.tests if t.node_id == node), None)


def test_a_state_four_edits_back_is_not_served_when_a_variable_it_read_differs(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws.write("tests/test_env.py", "import os\n\nfrom pkg import calc\n\n\ndef test_env():\n"
             "    assert calc.triple(1) == 3\n"
             "    assert os.environ.get('DEMO_MODE', 'good') == 'good'\n")  # fmt: skip
    edit_four_times_then_undo(ws)
    monkeypatch.setenv("DEMO_MODE", "bad")
    assert _outcome(ws.run(), "tests/test_env.py::test_env") == "failed"  # as plain pytest


def test_a_state_four_edits_back_is_not_served_when_a_folder_it_listed_has_a_new_file(
    ws: Workspace,
) -> None:
    ws.write("tests/cases/a.txt", "a")
    ws.write("tests/test_glob.py", "import pathlib\n\nfrom pkg import calc\n\n\ndef test_glob():\n"
             "    assert calc.triple(1) == 3\n"
             "    assert len(list(pathlib.Path('tests/cases').glob('*.txt'))) == 1\n")  # fmt: skip
    edit_four_times_then_undo(ws)
    ws.write("tests/cases/b.txt", "b")
    assert _outcome(ws.run(), "tests/test_glob.py::test_glob") == "failed"  # as plain pytest
