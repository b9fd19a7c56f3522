"""Hand-written memos the same-file memo rule must keep catching (docs/action-key.md: a function
of the changed function's file whose code names it re-runs the nodes that executed it).

Each case is a shape a narrowing of the rule could be tempted to spare, and each is a memo: one
test runs the builder and keeps what it derived, the next is served from what was kept and
never runs the builder. After a change to the builder plain pytest fails both, so both must
re-run.

- python-dateutil's ``parser._parse_numeric_token`` calls ``_find_hms_idx`` in an ``elif`` test
  and stores what follows from it only in the ``res`` and ``ymd`` objects its caller passes;
  ``_parse`` makes them afresh for each parse, but nothing in the record or in the function's
  own code says so: the same code given an object its caller keeps is a memo
  (`test_a_memo_kept_in_what_the_caller_passes`).
- A builder whose result is only tested for truth still decides what is kept
  (`test_a_builder_called_only_in_a_condition`).

- A check one call further up (it names a helper of the builder, not the builder), and a check
  in another file (a module dict filled from an imported builder): without following namers
  transitively and into importing files, both gave a stale pass
  (`test_a_memo_further_up_or_in_another_file`).
"""

from __future__ import annotations

import pytest
from precision_helpers import Workspace, ran_nodes

BOTH = ["tests/test_kept.py::test_one", "tests/test_kept.py::test_two"]

KEPT_TESTS = (
    "from pkg.kept import hour\n\n\ndef test_one():\n    assert hour(['7']) == 7\n\n\n"
    "def test_two():\n    assert hour(['7']) == 7  # served from what test_one kept\n"
)

# dateutil's shape: the result object is checked first; a helper fills it from the builder's
# index (`_assign_hms`), so the checking function itself stores nothing
IN_AN_ATTRIBUTE = """
    class Result:
        def __init__(self):
            self.hour = None


    def find_idx(tokens):
        return 0 if tokens else None


    def assign(res, tokens, index):
        res.hour = int(tokens[index])


    def parse_token(tokens, res):
        if res.hour is not None:
            pass
        elif find_idx(tokens) is not None:
            assign(res, tokens, find_idx(tokens))
        return res.hour


    KEPT = Result()


    def hour(tokens):
        return parse_token(tokens, KEPT)
    """

# a registry the caller owns, handed to the checking function
IN_A_DICT = """
    def find_idx(tokens):
        return 0 if tokens else None


    def parse_token(tokens, seen):
        key = tuple(tokens)
        if key not in seen:
            seen[key] = find_idx(tokens)
        return seen[key]


    KEPT = {}


    def hour(tokens):
        index = parse_token(tokens, KEPT)
        return None if index is None else int(tokens[index])
    """


@pytest.mark.parametrize(
    "source",
    [
        pytest.param(IN_AN_ATTRIBUTE, id="attribute"),
        pytest.param(IN_A_DICT, id="dict", marks=pytest.mark.extended),
    ],
)
def test_a_memo_kept_in_what_the_caller_passes(ws: Workspace, source: str) -> None:
    """The checking function keeps the builder's result only in a parameter; the object is the
    caller's, kept at module level: test_two is served from it."""
    ws.write("pkg/kept.py", source)
    ws.write("tests/test_kept.py", KEPT_TESTS)
    assert ws.run().failed == 0
    ws.edit("pkg/kept.py", "return 0 if tokens else None", "return None")
    plan = next(f for f in ws.plan().files if f.target == "tests/test_kept.py")
    assert "which names the changed pkg.kept.find_idx" in plan.node_reasons.get(BOTH[1], "")
    summary = ws.run()
    assert ran_nodes(summary) == BOTH
    assert summary.failed == 2  # as plain pytest: nothing kept a result since the change


@pytest.mark.extended
def test_a_builder_called_only_in_a_condition(ws: Workspace) -> None:
    """Only the truth of check's result is used, and it decides what is_valid keeps."""
    ws.write(
        "pkg/kept.py",
        """
        _VALID = set()


        def check(word):
            return word.isalpha()


        def is_valid(word):
            if word in _VALID:
                return True
            if check(word):
                _VALID.add(word)
                return True
            return False


        def hour(tokens):
            return 7 if is_valid("abc") else None
        """,
    )
    ws.write("tests/test_kept.py", KEPT_TESTS)
    assert ws.run().failed == 0
    ws.edit("pkg/kept.py", "return word.isalpha()", "return word.isdigit()")
    summary = ws.run()
    assert ran_nodes(summary) == BOTH
    assert summary.failed == 2


# Memos the builder's own namers do not show: the check names a helper of the builder, or it is
# in a module that imports the builder. Plain pytest fails both nodes.
ONE_CALL_UP = """
    import re


    class _Memo:
        def __init__(self):
            self._memo = {}

        def __call__(self, flags):
            if flags not in self._memo:
                self._memo[flags] = self._make(flags)
            return self._memo[flags]

        def _make(self, flags):
            return self._build(flags)

        def _build(self, flags):
            return re.compile("7", flags)


    matcher = _Memo()


    def hour(tokens):
        return 7 if matcher(re.I).match(tokens[0]) else None
    """

IN_ANOTHER_FILE = """
    import re

    from pkg.build import build

    _MEMO = {}


    def hour(tokens):
        if re.I not in _MEMO:
            _MEMO[re.I] = build(re.I)
        return 7 if _MEMO[re.I].match(tokens[0]) else None
    """


@pytest.mark.extended
@pytest.mark.parametrize(
    ("source", "builder", "reason"),
    [
        (
            ONE_CALL_UP,
            "pkg/kept.py",
            "executed pkg.kept._Memo.__call__, which names pkg.kept._Memo._make, which names the "
            "changed pkg.kept._Memo._build",
        ),
        (
            IN_ANOTHER_FILE,
            "pkg/build.py",
            "executed pkg.kept.hour, which names the changed pkg.build.build",
        ),
    ],
    ids=["one-call-up", "another-file"],
)
def test_a_memo_further_up_or_in_another_file(
    ws: Workspace, source: str, builder: str, reason: str
) -> None:
    """A memo that keeps what a helper of the builder returns, and one in a module that imports
    the builder: after a change to the builder, test_two (served from the memo: it ran neither
    the builder nor its helper) re-runs, and fails as under plain pytest."""
    ws.write("pkg/kept.py", source)
    ws.write(
        "pkg/build.py", "import re\n\n\ndef build(flags):\n    return re.compile('7', flags)\n"
    )
    ws.write("tests/test_kept.py", KEPT_TESTS)
    assert ws.run().failed == 0
    ws.edit(builder, "compile('7'" if builder == "pkg/build.py" else 'compile("7"', "compile('8'")
    plan = next(f for f in ws.plan().files if f.target == "tests/test_kept.py")
    assert reason in plan.node_reasons.get(BOTH[1], "")
    summary = ws.run()
    assert ran_nodes(summary) == BOTH


def test_a_changed_init_spares_other_classes_init_in_importing_files(ws: Workspace) -> None:
    """Every ``__init__`` calling ``super().__init__()`` names one: a change to the base's does not
    re-run a node that only built an unrelated class of a module importing the base's."""
    ws.write("pkg/base.py", "class Base:\n    def __init__(self):\n        self.x = 1\n")
    ws.write(
        "pkg/other.py",
        "from pkg.base import Base\n\n\nclass Plain:\n    def __init__(self):\n"
        "        super().__init__()\n        self.y = 2\n\n\ndef make_base():\n    return Base()\n",
    )
    ws.write(
        "tests/test_kept.py",
        "from pkg.other import Plain, make_base\n\n\ndef test_one():\n"
        "    assert make_base().x == 1\n\n\ndef test_two():\n    assert Plain().y == 2\n",
    )
    assert ws.run().failed == 0
    ws.edit("pkg/base.py", "self.x = 1", "self.x = 3")
    summary = ws.run()
    assert ran_nodes(summary) == [BOTH[0]]
    assert summary.failed == 1
