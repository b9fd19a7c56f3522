"""A traced run on 3.12+ leaves sys.monitoring's tool id 3 to the tests, as plain pytest does:
Hypothesis's explain phase (hypothesis.internal.scrutineer) traces a failing test with that id.
User trial of anyio 4.16.0 (Python 3.12, ``filterwarnings = error``): a Hypothesis test that
fails said 'hypothesis.errors.HypothesisWarning: avoiding tracing test function because tool id
3 is already taken by tool maestro' where plain pytest shows the assertion and the falsifying
example; without ``error`` the warning is one more in the count than pytest's. The recorder
took ids 4 and 3; it now takes 4 and 5 (the optimizer's, free here) and 3 only when 5 is not."""

from __future__ import annotations

from precision_helpers import Workspace

from maestro.engine.interpreter import Interpreter

TEST = """\
import sys


def test_tool_three_is_free():
    # what Hypothesis asks before tracing a failing example
    assert sys.monitoring.get_tool(3) is None, sys.monitoring.get_tool(3)
"""


def test_a_traced_run_leaves_tool_id_3_to_the_tests(
    ws: Workspace, interpreter312: Interpreter
) -> None:
    ws.write("tests/test_tools.py", TEST)
    ws312 = Workspace(ws.root, interpreter312)
    summary = ws312.run()
    assert summary.failed == 0, summary
