"""`maestro graph stats` as text: the stdlib writes exactly what rich would, to a file and to a
terminal (a cold run imports neither rich nor pydantic); wherever rich would lay the text out
otherwise (a table or line wider than the console, NO_COLOR, a dumb terminal, characters it
changes) rich prints it."""

from __future__ import annotations

import io
import sys
from pathlib import Path
from typing import Any

import pytest

from maestro.cli import consoles, graph_render
from maestro.graph.stats import STATS_SCHEMA

WORKSPACE = Path("/work/space")


def report(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "schema": STATS_SCHEMA,
        "root": str(WORKSPACE),
        "files": 6912,
        "python_files": 2823,
        "tests": 604,
        "declared_targets": 2,
        "edges": {"dist": 164, "global": 3624, "import": 9534},
        "distributions": 3,
        "unresolved_imports": 39,
        "reused_from_index": 0,
        "scanned": 2823,
        "build_seconds": 0.3264,
        "diagnostics": [],
        "syntax_unchecked": 2823,
        "targets": None,
    }
    return {**base, **changes}


DIAGNOSTICS = [
    {"path": "src/bad.py", "line": 1, "severity": "error", "message": "invalid syntax"},
    {"path": "docs", "line": 0, "severity": "warning", "message": "cannot list directory"},
    # markup and emoji codes are text here, printed as they are
    {"path": "a[b].py", "line": 3, "severity": "error", "message": "'[' [/x] [bold]no :smile:"},
]
REPORTS = {
    "plain": report(),
    "targets": report(targets=["tests/test_a.py", "tests/[x]/test_b.py", "//docs", "//é"]),
    "diagnostics": report(diagnostics=DIAGNOSTICS, syntax_unchecked=0),
    "one unchecked": report(syntax_unchecked=1, edges={}),
    "big": report(files=12_345_678, scanned=1_000_000, build_seconds=12.5, reused_from_index=7),
    "long root": report(root="/" + "x" * 150 + "/[dim]é"),
}


class Screen(io.StringIO):
    """sys.stdout for a test: a terminal or a file, as isatty() says."""

    def __init__(self, tty: bool) -> None:
        super().__init__()
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


@pytest.fixture(autouse=True)
def env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in ("TTY_COMPATIBLE", "FORCE_COLOR", "NO_COLOR", "COLUMNS", "COLORTERM"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TERM", "xterm-256color")
    return monkeypatch


def rich_text(report: dict[str, Any], tty: bool, mp: pytest.MonkeyPatch) -> str:
    screen = Screen(tty)
    mp.setattr(sys, "stdout", screen)
    mp.setattr(consoles, "console", consoles._Console(highlight=False))  # reads the env now
    graph_render.rich_stats(Path(report["root"]), report)
    mp.setattr(sys, "stdout", sys.__stdout__)
    return screen.getvalue()


def our_text(report: dict[str, Any], tty: bool) -> str | None:
    lines = graph_render.stats_lines(Path(report["root"]), report, Screen(tty))
    return None if lines is None else "".join(f"{line}\n" for line in lines)


def table_width(report: dict[str, Any]) -> int:
    rows = graph_render.stats_rows(report)
    return max(len(a) for a, _ in rows) + max(len(b) for _, b in rows) + 4


# with a terminal: a title wider than the table, or text that is not ASCII, is left to rich
LEFT_TO_RICH_ON_A_TERMINAL = {"targets", "long root"}


@pytest.mark.parametrize("tty", [False, True], ids=["file", "terminal"])
@pytest.mark.parametrize("name", list(REPORTS))
def test_the_lines_are_what_rich_prints(name: str, tty: bool, env: pytest.MonkeyPatch) -> None:
    data = REPORTS[name]
    width = table_width(data)
    # (on a terminal the notes are wider than this table: tests below take its width)
    for columns in (200,) if tty else (width, width + 1, 200):
        env.setenv("COLUMNS", str(columns))
        ours = our_text(data, tty)
        if tty and name in LEFT_TO_RICH_ON_A_TERMINAL:
            assert ours is None
            continue
        assert ours is not None
        assert ours == rich_text(data, tty, env), (name, columns)
        assert ("\x1b[" in ours) is tty
    # one column fewer: rich wraps the table, so rich prints it
    env.setenv("COLUMNS", str(width - 1))
    assert our_text(data, tty) is None
    assert rich_text(data, tty, env).count("\n") > REPORTS_LINES[name]


REPORTS_LINES = {name: len(graph_render.stats_rows(r)) + 1 for name, r in REPORTS.items()}


def test_on_a_terminal_a_line_wider_than_the_screen_is_left_to_rich(
    env: pytest.MonkeyPatch,
) -> None:
    width = 100
    env.setenv("COLUMNS", str(width))
    for extra, ours_too in ((0, True), (1, False)):
        message = "x" * (width - len("  error a.py:1: ") + extra)
        data = report(
            diagnostics=[{"path": "a.py", "line": 1, "severity": "error", "message": message}]
        )
        ours = our_text(data, True)
        assert (ours is not None) is ours_too
        if ours is not None:
            assert ours == rich_text(data, True, env)
        else:  # rich wraps it
            assert rich_text(data, True, env).count("\n") > rich_text(data, False, env).count("\n")


def test_on_a_terminal_a_table_as_wide_as_the_screen(env: pytest.MonkeyPatch) -> None:
    data = REPORTS["diagnostics"]  # no line wider than its table
    width = table_width(data)
    env.setenv("COLUMNS", str(width))
    ours = our_text(data, True)
    assert ours is not None and ours == rich_text(data, True, env)
    env.setenv("COLUMNS", str(width - 1))
    assert our_text(data, True) is None


def test_the_lines_the_cli_prints(env: pytest.MonkeyPatch) -> None:
    screen = Screen(False)
    graph_render.render_stats(WORKSPACE, REPORTS["diagnostics"], out=screen)
    # rows are padded to the table's width, as rich pads them (see the tests above)
    assert [line.rstrip() for line in screen.getvalue().splitlines()] == [
        "Build graph of /work/space",
        " files               6,912 (2,823 Python)",
        " test files          604",
        " declared targets    2",
        " edges: dist         164",
        " edges: global       3,624",
        " edges: import       9,534",
        " distributions       3",
        " unresolved imports  39",
        " built in            326 ms (0 files from the index, 2,823 scanned)",
        "",
        "3 diagnostics",
        "  error src/bad.py:1: invalid syntax",
        "  warning docs: cannot list directory",
        "  error a[b].py:3: '[' [/x] [bold]no :smile:",
    ]


@pytest.mark.parametrize(
    ("settings", "tty", "terminal", "ours"),
    [
        ({}, False, False, True),
        ({}, True, True, True),
        ({"TTY_COMPATIBLE": "1"}, False, True, False),
        ({"TTY_COMPATIBLE": "0"}, True, False, True),
        ({"TTY_COMPATIBLE": "0", "FORCE_COLOR": "1"}, False, False, True),
        ({"FORCE_COLOR": "1"}, False, True, False),
        ({"FORCE_COLOR": ""}, True, False, True),
        ({"NO_COLOR": "1"}, True, True, False),  # styles without colours
        ({"NO_COLOR": "1"}, False, False, True),
        ({"TERM": "dumb"}, True, True, False),  # no styles, 80 columns whatever COLUMNS says
        ({"TERM": "xterm"}, True, True, True),
        ({"COLORTERM": "truecolor"}, True, True, True),
        ({"COLUMNS": "0"}, False, False, False),  # rich's width would be 0 or 80
        ({"COLUMNS": "wide"}, False, False, False),
    ],
)
def test_rich_prints_where_it_would_decide_otherwise(
    settings: dict[str, str], tty: bool, terminal: bool, ours: bool, env: pytest.MonkeyPatch
) -> None:
    for name, value in settings.items():
        env.setenv(name, value)
    data = REPORTS["diagnostics"]
    env.setattr(sys, "stdout", Screen(tty))
    assert consoles._Console(highlight=False).is_terminal is terminal
    env.setattr(sys, "stdout", sys.__stdout__)
    text = our_text(data, tty)
    assert (text is not None) is ours
    if text is not None:
        assert text == rich_text(data, tty, env)


def test_text_rich_would_change_is_left_to_rich() -> None:
    tab = {"path": "a.py", "line": 1, "severity": "error", "message": "a\tb"}
    for tty in (False, True):
        assert our_text(report(diagnostics=[tab]), tty) is None
        assert our_text(report(root="/a\x1b[31mb"), tty) is None


def test_on_a_terminal_paths_and_messages_are_not_markup(env: pytest.MonkeyPatch) -> None:
    env.setenv("NO_COLOR", "1")  # left to rich
    data = report(diagnostics=DIAGNOSTICS, targets=["tests/[x]/test_b.py"])
    assert our_text(data, True) is None
    out = rich_text(data, True, env)
    assert "a[b].py:3: '[' [/x] [bold]no :smile:" in out
    assert "tests/[x]/test_b.py" in out
    assert "\x1b[1m3 diagnostics" in out  # styled: a terminal
