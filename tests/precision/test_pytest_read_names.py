"""Names pytest itself reads from a conftest it imports (``pytest_plugins``, ``collect_ignore``,
``pytestmark``, ``__test__``) are read by no workspace code: an edit of one is not the change of
a name only its readers see, but of what every test in the conftest's scope runs with."""

from __future__ import annotations

from precision_helpers import Workspace
from project_python import plain_pytest

from maestro.engine import testing


def _outcomes(summary: testing.Summary) -> dict[str, str]:
    return {t.node_id: t.outcome for r, _ in summary.results() for t in r.tests}


def test_a_conftest_that_stops_loading_a_fixture_plugin_reruns_its_users(ws: Workspace) -> None:
    # `pytest_plugins = [...]` in the root conftest (a common way to share fixtures): emptied,
    # pytest says "fixture 'db' not found" (1 error); Maestro served '3 passed' from the cache,
    # the change being a new value of a name no workspace code reads
    ws.write("conftest.py", 'pytest_plugins = ["tests.fixtures.db"]\n')
    ws.write("tests/__init__.py", "")
    ws.write("tests/fixtures/__init__.py", "")
    ws.write(
        "tests/fixtures/db.py",
        'import pytest\n\n\n@pytest.fixture\ndef db():\n    return {"n": 1}\n',
    )
    ws.write("tests/test_db.py", 'def test_db(db):\n    assert db["n"] == 1\n')
    node = "tests/test_db.py::test_db"
    assert _outcomes(ws.run())[node] == "passed"
    ws.edit("tests/fixtures/db.py", '"n": 1', '"n": 2')  # a traced run: records per test
    assert _outcomes(ws.run())[node] == "failed"
    ws.edit("tests/fixtures/db.py", '"n": 2', '"n": 1')
    assert _outcomes(ws.run())[node] == "passed"

    ws.write("conftest.py", "pytest_plugins = []\n")
    done = plain_pytest(ws.interpreter.path, ws.root, "-q", "-rE")
    assert "ERROR tests/test_db.py::test_db" in done.stdout, done.stdout
    assert _outcomes(ws.run())[node] == "error"
