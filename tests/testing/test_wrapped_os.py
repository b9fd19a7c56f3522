"""A suite that wraps os's functions while its tests run (anyio's tests run under blockbuster,
which raises BlockingError when os.path.abspath, os.getcwd or os.stat is called inside an event
loop): the recorder's hooks run inside the test's own calls and must not go through them.
Real pytest children."""

from __future__ import annotations

from test_fidelity_trials import outcomes, pytest_says
from testing_helpers import Workspace


def test_a_test_forbidding_os_calls_passes_as_under_pytest(ws: Workspace) -> None:
    # anyio 4.16.0: under maestro test, tests/streams/test_file.py, test_memory.py, test_text.py
    # and test_tls.py failed with 'BlockingError: Blocking call to os.path.abspath' (the audit
    # hook's check of the code reading a file), where pytest passed them; a TLS test's server
    # thread then waited for ever and the run never finished.
    ws.write(
        "tests/test_strict.py",
        """
        import os
        import pathlib


        def forbidden(*args, **kwargs):
            raise RuntimeError("blocking call")


        def read_strictly(path):
            saved = os.path.abspath, os.getcwd
            os.path.abspath = os.getcwd = forbidden
            try:
                with open(path) as f:  # a relative path: resolved against the working directory
                    return f.read()
            finally:
                os.path.abspath, os.getcwd = saved


        def test_read_relative():
            assert read_strictly("tests/data.txt").strip() == "ok"


        def test_read_absolute():
            assert read_strictly(str(pathlib.Path("tests/data.txt").resolve())).strip() == "ok"
        """,
    )
    nodes = ["tests/test_strict.py::test_read_relative", "tests/test_strict.py::test_read_absolute"]
    truth = pytest_says(ws)
    assert [truth[n] for n in nodes] == ["passed", "passed"]
    assert outcomes(ws.run()) == truth
    ws.write("tests/data.txt", "changed\n")  # what both tests read
    truth = pytest_says(ws)
    assert [truth[n] for n in nodes] == ["failed", "failed"]
    assert outcomes(ws.run()) == truth
