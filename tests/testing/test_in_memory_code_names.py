"""Code compiled under a name that is no file (Mako's in-memory templates: `memory:0x7f...`, a
new name in every process) is no input of its test. When a traceback of it was formatted,
linecache looked the name up (in the working folder, then along sys.path) and the recorder kept
each miss as an absent file the test depends on: `maestro explain` and the "inputs changed"
reasons listed `memory:0x...` names, other ones after every run (Mako user trial). A file the
test really asks about (`os.path.exists`) stays an input: creating it re-runs the test."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from project_python import project_python

MAESTRO = str(Path(sys.executable).with_name("maestro"))

IN_MEMORY = """
import uuid


def formatted():
    import traceback

    name = f"memory:{uuid.uuid4().hex[:12]}"
    code = compile("def f():\\n    raise ValueError('x')\\n", name, "exec")
    ns = {}
    exec(code, ns)
    try:
        ns["f"]()
    except ValueError:
        return traceback.format_exc()
"""

TEST = """
import os
import subprocess
import sys

from helpers import formatted


def test_in_process():
    assert "ValueError" in formatted()
    assert not os.path.exists("tests/flag.txt")


def test_in_a_child():
    code = "import sys; sys.path.insert(0, 'tests'); from helpers import formatted; formatted()"
    subprocess.run([sys.executable, "-c", code], check=True)
    assert not os.path.exists("tests/flag.txt")
"""


def _maestro(root: Path, tmp_path: Path, *args: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAESTRO_")}
    env.update(
        MAESTRO_DAEMON="off",
        MAESTRO_TRACE="always",  # a per-test record: explain --record lists each test's reads
        MAESTRO_CACHE_DIR=str(tmp_path / "cache"),
        MAESTRO_STATE_DIR=str(tmp_path / "state"),
    )
    done = subprocess.run(
        [MAESTRO, *args], cwd=root, env=env, capture_output=True, text=True, timeout=180
    )
    return done.stdout + done.stderr


def test_names_of_in_memory_code_are_no_inputs(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    (root / "tests").mkdir(parents=True)
    (root / "maestro.toml").write_text(f"interpreter = {str(project_python())!r}\n")
    (root / "pytest.ini").write_text("[pytest]\npythonpath = tests\n")
    (root / "tests/helpers.py").write_text(IN_MEMORY)
    (root / "tests/test_mem.py").write_text(TEST)
    said = _maestro(root, tmp_path, "test")
    assert "2 passed" in said, said
    for node in ("test_in_process", "test_in_a_child"):
        said = _maestro(
            root, tmp_path, "explain", f"tests/test_mem.py::{node}", "--json", "--record"
        )
        (row,) = json.loads(said[said.index("{") : said.rindex("}") + 1])["nodes"]
        assert "tests/flag.txt" in row["reads"], row
        assert not [r for r in row["reads"] if "memory:" in r], row["reads"]
    # the real dependency stays: the file the tests ask about appears, both re-run and fail
    (root / "tests/flag.txt").write_text("")
    said = _maestro(root, tmp_path, "test")
    assert "2 failed" in said and "memory:" not in said, said
