"""`maestro graph stats` as text: off a terminal the stdlib writes exactly what rich would (a cold
run imports neither rich nor pydantic); wherever rich would lay the text out otherwise (a
terminal, a table wider than the console, characters it changes) rich prints it."""

from __future__ import annotations

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


def rich_text(
    report: dict[str, Any], capsys: pytest.CaptureFixture[str], mp: pytest.MonkeyPatch
) -> str:
    mp.setattr(consoles, "console", consoles._Console(highlight=False))  # reads COLUMNS now
    graph_render.rich_stats(Path(report["root"]), report)
    return capsys.readouterr().out


def plain_text(report: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> str | None:
    import sys

    lines = graph_render.plain_stats_lines(Path(report["root"]), report, sys.stdout)
    return None if lines is None else "".join(f"{line}\n" for line in lines)


def table_width(report: dict[str, Any]) -> int:
    rows = graph_render.stats_rows(report)
    return max(len(a) for a, _ in rows) + max(len(b) for _, b in rows) + 4


@pytest.fixture(autouse=True)
def no_terminal_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("TTY_COMPATIBLE", "FORCE_COLOR", "NO_COLOR", "COLUMNS"):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize("name", list(REPORTS))
def test_off_a_terminal_the_lines_are_what_rich_prints(
    name: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    data = REPORTS[name]
    width = table_width(data)
    for columns in (width, width + 1, 200):
        monkeypatch.setenv("COLUMNS", str(columns))
        plain = plain_text(data, capsys)
        assert plain is not None
        assert plain == rich_text(data, capsys, monkeypatch), (name, columns)
    # one column fewer: rich wraps the table, so rich prints it
    monkeypatch.setenv("COLUMNS", str(width - 1))
    assert plain_text(data, capsys) is None
    wrapped = rich_text(data, capsys, monkeypatch)
    assert wrapped.count("\n") > plain.count("\n")


def test_the_lines_the_cli_prints(capsys: pytest.CaptureFixture[str]) -> None:
    graph_render.render_stats(WORKSPACE, REPORTS["diagnostics"])
    # rows are padded to the table's width, as rich pads them (see the test above)
    assert [line.rstrip() for line in capsys.readouterr().out.splitlines()] == [
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
    ("env", "terminal", "plain"),
    [
        ({}, False, True),
        ({"TTY_COMPATIBLE": "1"}, True, False),
        ({"TTY_COMPATIBLE": "0", "FORCE_COLOR": "1"}, False, True),
        ({"FORCE_COLOR": "1"}, True, False),
        ({"FORCE_COLOR": ""}, False, True),
        ({"COLUMNS": "0"}, False, False),  # rich's width would be 0 or 80: left to it
        ({"COLUMNS": "wide"}, False, False),
    ],
)
def test_rich_prints_where_it_would_style_or_decide_the_width(
    env: dict[str, str],
    terminal: bool,
    plain: bool,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert (plain_text(REPORTS["plain"], capsys) is not None) is plain
    assert consoles._Console(highlight=False).is_terminal is terminal


def test_text_rich_would_change_is_left_to_rich(capsys: pytest.CaptureFixture[str]) -> None:
    tab = {"path": "a.py", "line": 1, "severity": "error", "message": "a\tb"}
    assert plain_text(report(diagnostics=[tab]), capsys) is None
    assert plain_text(report(root="/a\x1b[31mb"), capsys) is None


def test_on_a_terminal_paths_and_messages_are_not_markup(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TTY_COMPATIBLE", "1")
    data = report(diagnostics=DIAGNOSTICS, targets=["tests/[x]/test_b.py"])
    assert plain_text(data, capsys) is None
    out = rich_text(data, capsys, monkeypatch)
    assert "a[b].py:3: '[' [/x] [bold]no :smile:" in out
    assert "tests/[x]/test_b.py" in out
    assert "\x1b[31merror\x1b[0m" in out  # styled: a terminal
