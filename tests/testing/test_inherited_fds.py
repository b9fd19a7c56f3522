"""A test sees the file descriptors plain pytest gives it: the ones Maestro's pytest process
inherits (its events pipe, its lifeline, its process-group lock) sit above the low numbers that
pytest's capture takes and that programs use by convention. User trial of argcomplete 3.8.0: its
completer writes debug output to descriptor 9 (`os.fdopen(9, "w")`, as bash's completion hook
opens it) and closes it; under `maestro test` descriptors 8 and 9 were Maestro's own pipes, so
the test process stopped reporting after 18 tests: "no tests ran", "1 file did not finish" (exit
2) where `pytest test/test.py -k ...` reports every test; here a test writing to descriptor 9
failed ("OSError: [Errno 9] Bad file descriptor": Maestro's lifeline, a pipe's read end) where
pytest passes it. The real console script beside plain pytest on the lean project interpreter."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from project_python import plain_pytest, project_python

MAESTRO = str(Path(sys.executable).with_name("maestro"))

TESTS = """
import json, os

def _kind(fd):
    try:
        target = os.readlink(f"/proc/self/fd/{{fd}}")
    except OSError:
        return None
    if target.startswith("pipe:"):
        return "pipe"
    if target == "/dev/null" or target.endswith("(deleted)"):
        return target.split("#")[0]
    return "file"

def test_descriptors_are_pytests():
    kinds = {{fd: _kind(fd) for fd in range(3, 64)}}
    with open({out!r}, "a") as f:
        f.write(json.dumps({{k: v for k, v in kinds.items() if v}}) + "\\n")

def test_debug_output_to_descriptor_9():
    # argcomplete's CompletionFinder._init_debug_stream, then its debug() calls
    try:
        stream = os.fdopen(9, "w", closefd=False)
    except OSError:
        return
    stream.write("debug: completing\\n")
    stream.flush()

def test_after_it():
    pass
"""


def test_a_test_sees_the_descriptors_plain_pytest_gives_it(isolated: Path) -> None:
    root = isolated / "ws"
    (root / "tests").mkdir(parents=True)
    (root / "maestro.toml").write_text(f"interpreter = {str(project_python())!r}\n")
    layouts = isolated / "layouts.jsonl"
    (root / "tests/test_fds.py").write_text(TESTS.format(out=str(layouts)))

    plain = plain_pytest(project_python(), root)
    assert "3 passed" in plain.stdout, plain.stdout
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "PYTEST_ADDOPTS")}
    for daemon in ("off", "auto"):
        env["MAESTRO_DAEMON"] = daemon
        done = subprocess.run(
            [MAESTRO, "test", "--no-cache"], cwd=root, env=env, capture_output=True, text=True,
            timeout=300,
        )  # fmt: skip
        said = done.stdout + done.stderr
        assert "3 passed" in said and done.returncode == 0, said
    subprocess.run([MAESTRO, "daemon", "stop"], cwd=root, env=env, capture_output=True, timeout=60)
    first, *ours = [json.loads(line) for line in layouts.read_text().splitlines()]
    for layout in ours:
        # nothing of Maestro's among them (a lock file, its pipes), and pytest's own where
        # pytest puts them
        assert "file" not in layout.values(), layout
        assert layout == first, (layout, first)
