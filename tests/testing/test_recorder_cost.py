"""What the recorder's audit hook costs a test: for each file a test opens, the hook walks the
frames above the call up to the first workspace frame (the module the read is charged to). The
walk must raise no audit event of its own per frame: each one calls every audit hook again, the
recorder's included (id() raised "builtins.id" for every frame walked, which on click's suite was
about a third of the recorder's CPU). The read is still recorded."""

from __future__ import annotations

from testing_helpers import Workspace

from maestro.engine import testing

# The helper runs under a file name outside the workspace (as an installed library would): the
# walk from the read passes its 60 frames before it reaches the test's own frame.
TEST = '''
import sys

HELPER = """
def deep(n, path):
    if n:
        return deep(n - 1, path)
    with open(path) as f:
        return f.read()
"""
space = {}
exec(compile(HELPER, "/nonexistent-library/helper.py", "exec"), space)


def test_deep_read():
    ids = []

    def count(event, args):
        if event == "builtins.id":
            ids.append(event)

    sys.addaudithook(count)  # after the recorder's: it sees what the recorder's hook raises
    del ids[:]
    text = space["deep"](60, "tests/data.txt")
    seen = len(ids)
    assert text.strip() == "ok"
    assert seen <= 2, f"{seen} id() audit events while one file was opened"
'''


def test_a_read_deep_in_library_frames_raises_no_audit_event_per_frame(ws: Workspace) -> None:
    ws.write("tests/test_deep.py", TEST)
    summary = ws.run(testing.Selection(paths=("tests/test_deep.py",)))
    outcomes = {t.node_id: t.outcome for r, _ in summary.results() for t in r.tests}
    assert outcomes == {"tests/test_deep.py::test_deep_read": "passed"}, summary.results()
    assert "tests/data.txt" in ws.graph().index.dynamic.get("tests/test_deep.py", [])
