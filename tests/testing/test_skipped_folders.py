"""A folder whose conftest skips at import (``pytest.importorskip`` at its top, babel 2.19.0's
tests/benchmarks/conftest.py without pytest-benchmark): pytest's walk of the suite reports the
folder skipped, once, and runs the rest. Real pytest children, real LMDB; plain pytest is asked
for the truth first."""

from __future__ import annotations

import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

from project_python import project_python
from test_custom_collectors import CONFTEST
from test_fidelity_trials import outcomes, pytest_says
from testing_helpers import Workspace

MAESTRO = str(Path(sys.executable).with_name("maestro"))

SKIPPING_CONFTEST = 'import pytest\n\npytest.importorskip("no_such_module_for_maestro")\n'


def _cases(path: Path) -> list[tuple[str, str, str]]:
    """(classname, name, outcome) of each `<testcase>` of a JUnit file, sorted."""
    found = []
    for case in ET.parse(path).getroot().iter("testcase"):
        kinds = [c.tag for c in case if c.tag in ("skipped", "failure", "error")]
        found.append((case.get("classname", ""), case.get("name", ""), "".join(kinds)))
    return sorted(found)


def test_a_folder_whose_conftest_skips_is_one_skip_as_in_pytest(
    ws: Workspace, tmp_path: Path
) -> None:
    # maestro test named the folder's files to pytest, which then stopped before the session on
    # the conftest's skip ('pytest exited with status 1 before the session started', exit 3)
    ws.write("maestro.toml", f"interpreter = {str(project_python())!r}\n")
    ws.write("tests/bench/conftest.py", SKIPPING_CONFTEST)
    ws.write("tests/bench/test_b.py", "def test_b():\n    assert False\n")
    ws.write("tests/bench/test_c.py", "def test_c():\n    assert False\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAESTRO_")}
    plain, ours = tmp_path / "pytest.xml", tmp_path / "maestro.xml"
    subprocess.run(
        [str(project_python()), "-m", "pytest",
            "-q", "-p", "no:cacheprovider", f"--junitxml={plain}"],
        cwd=ws.root, env=env, capture_output=True, timeout=120,
    )  # fmt: skip
    truth = _cases(plain)
    assert ("", "tests.bench", "skipped") in truth and len(truth) == 6
    env.update(
        MAESTRO_DAEMON="off",
        MAESTRO_CACHE_DIR=str(tmp_path / "cache"),
        MAESTRO_STATE_DIR=str(tmp_path / "state"),
    )
    for _ in range(2):  # a run, then the same answer from the cache
        done = subprocess.run(
            [MAESTRO, "test", "--junit-xml", str(ours)],
            cwd=ws.root, env=env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr
        assert "5 passed, 1 skipped" in done.stdout
        assert _cases(ours) == truth
    assert "0 to run" in done.stdout


def test_a_skipping_folder_beside_a_collecting_conftest_runs_the_rest(ws: Workspace) -> None:
    # babel: a root conftest collects files itself (doctests), so its collection probe loads
    # every folder's conftests, and the skip ended it: 'could not ask the conftests defining
    # pytest_collect_file (conftest.py) which files they collect', exit 3, no test ran
    ws.write("tests/conftest.py", CONFTEST)
    ws.write("tests/specs/test_simple.yaml", "hello: ok\n")
    ws.write("tests/bench/conftest.py", SKIPPING_CONFTEST)
    ws.write("tests/bench/test_spec.yaml", "never: broken\n")
    truth = {n: o for n, o in pytest_says(ws).items() if "::" in n}
    assert truth["tests/specs/test_simple.yaml::hello"] == "passed"
    said = outcomes(ws.run())
    assert {n: o for n, o in said.items() if "::" in n} == truth
