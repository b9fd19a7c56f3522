"""Fail-first inside a file and exact deselection: the plugin reorders tests by the runner's
ranking without splitting a module or a class, drops exactly the node ids it is given, and
ignores a selection file it cannot read."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from maestro.engine.events import Event, TestStart
from maestro.engine.interpreter import Interpreter
from maestro.engine.runner import SELECT_ENV, run_pytest_sync

WriteWorkspace = Callable[[dict[str, str]], Path]

FILES = {
    "tests/test_a.py": """
import pytest

SETUPS = []


@pytest.fixture(scope="class")
def per_class():
    SETUPS.append(1)
    return len(SETUPS)


def test_first():
    pass


class TestGroup:
    def test_one(self, per_class):
        assert per_class == 1  # the class fixture is set up once: the class was not split

    def test_two(self, per_class):
        assert per_class == 1


@pytest.mark.parametrize("x", ["p::q", "r"])
def test_param(x):
    pass


def test_last():
    pass
""",
    "tests/test_b.py": """
def test_b1():
    pass


def test_b2():
    pass
""",
}


def started(root: Path, interpreter: Interpreter, args: list[str], **kw: object) -> list[str]:
    seen: list[str] = []

    def on_event(event: Event) -> None:
        if isinstance(event, TestStart):
            seen.append(event.nodeid)

    report = run_pytest_sync(root, interpreter, args, on_event=on_event, **kw)  # type: ignore[arg-type]
    assert report.exit_code == 0, report.stdout.decode()
    return seen


def test_ranked_tests_run_first_and_groups_stay_together(
    workspace: WriteWorkspace, interpreter: Interpreter
) -> None:
    root = workspace(FILES)
    scores = {
        "tests/test_a.py::test_last": 0.9,
        "tests/test_a.py::TestGroup::test_two": 0.8,
        "tests/test_a.py::test_param[p::q]": 0.7,
        "tests/test_b.py::test_b2": 0.6,
        "tests/gone.py::test_x": 0.95,  # not collected: ignored
    }
    seen = started(root, interpreter, ["tests/test_a.py", "tests/test_b.py"], test_scores=scores)
    assert seen == [
        "tests/test_a.py::test_last",
        "tests/test_a.py::TestGroup::test_two",  # its class comes next, whole
        "tests/test_a.py::TestGroup::test_one",
        "tests/test_a.py::test_param[p::q]",
        "tests/test_a.py::test_first",  # unranked: collected order, after the ranked ones
        "tests/test_a.py::test_param[r]",
        "tests/test_b.py::test_b2",  # a file ranks as its best test
        "tests/test_b.py::test_b1",
    ]


def test_equal_scores_keep_the_collected_order(
    workspace: WriteWorkspace, interpreter: Interpreter
) -> None:
    """A ranking that cannot tell tests apart (no history yet) must not shuffle them."""
    root = workspace(FILES)
    tied = dict.fromkeys(
        ["tests/test_a.py::test_last", "tests/test_a.py::TestGroup::test_one",
         "tests/test_a.py::test_first"], 0.1,
    )  # fmt: skip
    seen = started(root, interpreter, ["tests/test_a.py"], test_scores=tied)
    assert seen == [
        "tests/test_a.py::test_first",
        "tests/test_a.py::TestGroup::test_one",
        "tests/test_a.py::TestGroup::test_two",
        "tests/test_a.py::test_last",
        "tests/test_a.py::test_param[p::q]",  # unscored: after the scored ones
        "tests/test_a.py::test_param[r]",
    ]


def test_no_order_keeps_the_collected_order(
    workspace: WriteWorkspace, interpreter: Interpreter
) -> None:
    root = workspace(FILES)
    seen = started(root, interpreter, ["tests/test_a.py"])
    assert seen == [
        "tests/test_a.py::test_first",
        "tests/test_a.py::TestGroup::test_one",
        "tests/test_a.py::TestGroup::test_two",
        "tests/test_a.py::test_param[p::q]",
        "tests/test_a.py::test_param[r]",
        "tests/test_a.py::test_last",
    ]


@pytest.mark.parametrize(
    "content",
    [
        "{not json",
        '["tests/test_b.py::test_b2"]',
        '{"scores": 1, "deselect": "x"}',
        '{"scores": {"tests/test_b.py::test_b2": "high"}}',
    ],
)
def test_an_unreadable_order_is_ignored(
    workspace: WriteWorkspace, interpreter: Interpreter, content: str
) -> None:
    root = workspace({**FILES, "order.json": content})
    env = {SELECT_ENV: str(root / "order.json")}
    seen = started(root, interpreter, ["tests/test_b.py"], extra_env=env)
    assert seen == ["tests/test_b.py::test_b1", "tests/test_b.py::test_b2"]


def test_the_order_file_is_removed(
    workspace: WriteWorkspace, interpreter: Interpreter, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    root = workspace(FILES)
    temp = tmp_path / "tmp"
    temp.mkdir()
    monkeypatch.setenv("TMPDIR", str(temp))
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)
    scores = {"tests/test_b.py::test_b2": 0.5}
    seen = started(root, interpreter, ["tests/test_b.py"], test_scores=scores)
    assert seen[0] == "tests/test_b.py::test_b2"
    assert list(temp.iterdir()) == []


def test_deselect_drops_exactly_the_given_ids(
    workspace: WriteWorkspace, interpreter: Interpreter
) -> None:
    files = {
        "tests/test_c.py": "def test_c():\n    pass\n\n\ndef test_cc():\n    pass\n",
        **FILES,
    }
    root = workspace(files)
    seen = started(
        root, interpreter, ["tests/test_c.py", "tests/test_b.py"],
        deselect=["tests/test_c.py::test_c", "tests/test_b.py::test_b1"],
        test_scores={"tests/test_b.py::test_b2": 0.5},
    )  # fmt: skip
    # `--deselect tests/test_c.py::test_c` would also have dropped test_cc (a prefix match);
    # the file with a ranked test comes first, the unranked one keeps its place after it
    assert seen == ["tests/test_b.py::test_b2", "tests/test_c.py::test_cc"]
