"""`maestro test` through the daemon prints what the in-process path prints:
same plan lines, failures, summary, exit code and JUnit; the client's allowlisted environment
reaches the tests, not the daemon's."""

from __future__ import annotations

import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from sync_helpers import Workspace

pytestmark = pytest.mark.slow

FILES = {
    "pkg/__init__.py": "",
    "pkg/a.py": "def add(a, b):\n    return a + b\n",
    "tests/test_ok.py": "from pkg.a import add\n\n\ndef test_add():\n    assert add(1, 2) == 3\n",
    "tests/test_fail.py": (
        "from pkg.a import add\n\n\ndef test_good():\n    assert add(2, 2) == 4\n\n\n"
        "def test_bad():\n    assert add(1, 1) == 3\n"
    ),
    "tests/test_env.py": (
        "import os\n\n\ndef test_flag():\n    assert os.environ.get('MY_FLAG') == 'on'\n"
    ),
}


@pytest.fixture
def ws() -> Iterator[Workspace]:
    base = Path(tempfile.mkdtemp(prefix="mvd", dir="/tmp"))
    workspace = Workspace(base, "v", None, "", "")
    workspace.setup(FILES, remote=False, maestro_extra='env-allowlist = ["MY_FLAG"]')
    try:
        yield workspace
    finally:
        workspace.stop_daemon()
        shutil.rmtree(base, ignore_errors=True)


def _norm(text: str) -> str:
    return re.sub(r"pytest\s+\d+\.\d+s", "pytest <wall>", text)


def _norm_xml(data: bytes) -> bytes:
    return re.sub(rb'(time|timestamp)="[^"]*"', rb'\1="?"', data)


def test_identical_output_with_and_without_daemon(ws: Workspace) -> None:
    started = ws.maestro("daemon", "start")  # started WITHOUT MY_FLAG in its environment
    assert started.returncode == 0, started.stderr
    log = next((ws.base / "v" / "s").rglob("daemon.log"))

    first = ws.test(MY_FLAG="on")
    assert first.returncode == 1, first.stdout + first.stderr
    assert "run 1:" in log.read_text(), "the run did not go through the daemon"
    assert "FAILED tests/test_fail.py::test_bad" in first.stdout
    assert "test_flag" not in first.stdout  # the client's MY_FLAG reached pytest

    junit = {m: ws.root / f"{m}.xml" for m in ("daemon", "local")}
    via = ws.test("--junit-xml", str(junit["daemon"]), MY_FLAG="on")
    assert "run 2:" in log.read_text()
    local = ws.test("--no-daemon", "--junit-xml", str(junit["local"]), MY_FLAG="on")
    assert (via.returncode, local.returncode) == (1, 1)
    assert "2 cached" in via.stdout and "1 to run" in via.stdout
    assert _norm(via.stdout) == _norm(local.stdout)
    assert _norm(via.stderr) == _norm(local.stderr)
    assert _norm_xml(junit["daemon"].read_bytes()) == _norm_xml(junit["local"].read_bytes())

    # Fully cached: byte for byte (JUnit: but its render-time timestamp).
    sel = ("tests/test_ok.py", "tests/test_env.py")
    via = ws.test(*sel, "--junit-xml", str(junit["daemon"]), MY_FLAG="on")
    local = ws.test(*sel, "--no-daemon", "--junit-xml", str(junit["local"]), MY_FLAG="on")
    assert (via.returncode, via.stdout) == (local.returncode, local.stdout) == (0, local.stdout)
    stamp = re.compile(rb'timestamp="[^"]*"')
    assert stamp.sub(b"", junit["daemon"].read_bytes()) == stamp.sub(
        b"", junit["local"].read_bytes()
    )

    # Usage errors: same message, same exit code (4).
    via = ws.test("tests/nope.py")
    local = ws.test("tests/nope.py", "--no-daemon")
    assert via.returncode == local.returncode == 4
    assert via.stdout + via.stderr == local.stdout + local.stderr
