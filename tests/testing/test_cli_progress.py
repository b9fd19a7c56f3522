"""The progress of `maestro test`: in a terminal a bar whose count never passes its total;
elsewhere (a CI log, a file) pytest's letters, a line per test file, as the tests finish."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from maestro.cli import common
from maestro.cli.test_render import Display, PlannedRow

MAESTRO = str(Path(sys.executable).with_name("maestro"))
ANSI = r"\x1b\[[0-9;?]*[A-Za-z]"  # a terminal's control sequence


def test_a_module_level_skip_counts_in_the_total(monkeypatch: pytest.MonkeyPatch) -> None:
    # pytest reports a module-level skip while collecting, before the items are known: structlog
    # showed "856/855" after its 855 tests and test_twisted.py's skip.
    monkeypatch.setattr(common.console, "_force_terminal", True)
    with Display() as display:
        display.plan([PlannedRow(target="tests/test_a.py", runs=True, describe="no cached result")])
        display.progress_event({"event": "test_result", "nodeid": "tests/test_skipped.py"})
        files = {"tests/test_a.py": ["tests/test_a.py::test_one", "tests/test_a.py::test_two"]}
        display.progress_event({"event": "collected", "files": files})
        for node in files["tests/test_a.py"]:
            display.progress_event({"event": "test_start", "nodeid": node})
            display.progress_event({"event": "test_result", "nodeid": node})
        assert (display.done, display.total) == (3, 3)


HELD = """
import os
import time


def test_first():
    pass


def test_held():
    # until the test sees the first file's progress in maestro's output
    deadline = time.monotonic() + 60
    while not os.path.exists({release!r}) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert os.path.exists({release!r})


def test_fails():
    assert 0
"""


def test_output_to_a_file_shows_each_test_as_it_finishes(tmp_path: Path) -> None:
    # a CI log: no bar, and before this a hung run printed nothing where pytest prints its dots
    ws = tmp_path / "ws"
    (ws / "tests").mkdir(parents=True)
    release = tmp_path / "release"
    (ws / "tests/test_a.py").write_text("def test_a():\n    pass\n")
    (ws / "tests/test_b.py").write_text(HELD.format(release=str(release)))
    subprocess.run(["git", "init", "-q"], cwd=ws, check=True)
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    env.update(
        MAESTRO_DAEMON="off",
        MAESTRO_STATE_DIR=str(tmp_path / "state"),
        MAESTRO_CACHE_DIR=str(tmp_path / "cache"),
    )
    log = tmp_path / "log.txt"
    with log.open("wb") as out:
        proc = subprocess.Popen([MAESTRO, "test"], cwd=ws, env=env, stdout=out, stderr=out)
        try:
            deadline = time.monotonic() + 120
            while "tests/test_b.py ." not in log.read_text() and time.monotonic() < deadline:
                assert proc.poll() is None, log.read_text()
                time.sleep(0.05)
            seen = log.read_text()
            release.touch()
            assert proc.wait(timeout=120) == 1
        finally:
            if proc.poll() is None:
                proc.kill()
    assert "tests/test_a.py .\n" in seen and seen.rstrip().endswith("tests/test_b.py ."), seen
    assert "tests/test_b.py ..F\n" in log.read_text(), log.read_text()


def test_a_file_run_again_gets_a_line_of_its_own(capsys: pytest.CaptureFixture[str]) -> None:
    # hpack: a partial run's failures re-checked by the whole file printed one line of 30
    # letters and 6 F for a 17-test file with 3 failures
    nodes = [f"tests/test_t.py::test_{i}" for i in range(4)]
    with Display() as display:
        display.plan([PlannedRow(target="tests/test_t.py", runs=True, describe="inputs changed")])
        display.progress_event({"event": "collected", "files": {"tests/test_t.py": nodes[2:]}})
        for node, outcome in zip(nodes[2:], ["failed", "passed"], strict=True):
            display.progress_event({"event": "test_result", "nodeid": node, "outcome": outcome})
        display.progress_event({"event": "collected", "files": {"tests/test_t.py": nodes}})
        for node, outcome in zip(nodes, ["passed", "passed", "failed", "passed"], strict=True):
            display.progress_event({"event": "test_result", "nodeid": node, "outcome": outcome})
    lines = capsys.readouterr().out.splitlines()
    assert lines[-2:] == ["tests/test_t.py F.", "tests/test_t.py (run again) ..F."], lines


EDITS_ITS_INPUT = """
import subprocess

from pkg.a import X


def test_first():
    pass


def test_edits_what_it_imported():
    subprocess.run(["sh", "-c", "echo '# edited' >> pkg/a.py"], check=True)
    assert X == 1
"""


def test_a_warning_at_the_end_of_the_run_starts_on_its_own_line(tmp_path: Path) -> None:
    # cookiecutter 2.7.1 in a CI log: "tests/test_hooks.py ............inputs changed while the
    # tests ran, their results are not cached: /tmp/..." (the warning after the progress letters)
    ws = tmp_path / "ws"
    (ws / "tests").mkdir(parents=True)
    (ws / "pkg").mkdir()
    (ws / "pkg/__init__.py").write_text("")
    (ws / "pkg/a.py").write_text("X = 1\n")
    (ws / "tests/test_edit.py").write_text(EDITS_ITS_INPUT)
    subprocess.run(["git", "init", "-q"], cwd=ws, check=True)
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    env.update(
        MAESTRO_DAEMON="off",
        MAESTRO_STATE_DIR=str(tmp_path / "state"),
        MAESTRO_CACHE_DIR=str(tmp_path / "cache"),
    )
    done = subprocess.run(
        [MAESTRO, "test"], cwd=ws, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout
    lines = done.stdout.splitlines()
    assert "tests/test_edit.py .." in lines, lines
    warning = "inputs changed while the tests ran, their results are not cached: pkg/a.py"
    assert f"note: {warning}" in lines, lines


def test_a_warning_at_the_end_of_the_run_goes_above_the_progress_bar(tmp_path: Path) -> None:
    # in a terminal the same warning was written after the bar's text, on the bar's line
    import pty

    ws = tmp_path / "ws"
    (ws / "tests").mkdir(parents=True)
    (ws / "pkg").mkdir()
    (ws / "pkg/__init__.py").write_text("")
    (ws / "pkg/a.py").write_text("X = 1\n")
    (ws / "tests/test_edit.py").write_text(EDITS_ITS_INPUT)
    subprocess.run(["git", "init", "-q"], cwd=ws, check=True)
    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "CI")}
    env.update(
        MAESTRO_DAEMON="off",
        MAESTRO_STATE_DIR=str(tmp_path / "state"),
        MAESTRO_CACHE_DIR=str(tmp_path / "cache"),
        TERM="xterm",
        COLUMNS="100",
    )
    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        [MAESTRO, "test"], cwd=ws, env=env, stdin=follower, stdout=follower, stderr=follower
    )
    os.close(follower)
    seen = b""
    try:
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # the terminal closed: the run is over
                break
            if not chunk:
                break
            seen += chunk
        assert proc.wait(timeout=120) == 0, seen
    finally:
        os.close(leader)
        if proc.poll() is None:
            proc.kill()
    text = seen.decode()
    at = text.find("inputs changed while the tests ran")
    start = text.rfind("note:", 0, at)
    assert start > 0, text
    assert re.sub(ANSI, "", text[start:at]) == "note: ", repr(text[start - 80 : at + 20])
    # on a line of its own: after the bar's line ended, or the bar's line erased
    assert re.sub(ANSI, "", text[:start]).endswith(("\n", "\r")), repr(text[start - 80 : at])
