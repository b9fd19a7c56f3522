"""What `maestro impacted`, `maestro why` and `maestro graph stats` print.

Both routes render with these functions: the full CLI (maestro/cli/graph_cmd.py, in process or
through the daemon, dumping its pydantic report) and the fast path (maestro/cli/fast.py, the
daemon's msgpack answer as it arrived, which is that same dump), so the output is the same by
construction. They write plain lines with the stdlib only: importing rich's console costs more
than the whole warm answer, and a reason chain needs no layout (a path of one-child nodes).
Lines are never wrapped, so they stay greppable; bold and dim go to a terminal only.
`graph stats` renders its report's JSON form too, as rich would lay it out.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TextIO

from maestro.counts import plural

SHOWN = 40
"""Impacted targets the text output shows (with their reason trees) unless --all."""

EXIT_DOES_NOT_DEPEND = 1

RERUNS_FEWER = (
    "note: `maestro test` re-runs only the tests that executed changed code or read a changed"
    " file, often fewer than listed here (`maestro stale` lists the test files it would run)"
)
"""Said under every list of impacted test files: the graph's answer (imports, reads) is wider
than what a run re-runs (the tests whose recorded inputs changed)."""

BRANCH = "└── "
INDENT = "    "


class Styles:
    """ANSI bold and dim where a terminal shows them (rich's rules: NO_COLOR, TERM=dumb)."""

    def __init__(self, out: TextIO) -> None:
        isatty = getattr(out, "isatty", None)
        self.on = bool(
            isatty is not None
            and isatty()
            and "NO_COLOR" not in os.environ
            and os.environ.get("TERM") != "dumb"
        )

    def bold(self, text: str) -> str:
        return f"\x1b[1m{text}\x1b[0m" if self.on else text

    def dim(self, text: str) -> str:
        return f"\x1b[2m{text}\x1b[0m" if self.on else text


def impacted_lines(report: Mapping[str, Any], styles: Styles, *, show_all: bool) -> list[str]:
    """An ImpactedReport (JSON form) as a summary line and one reason chain per target."""
    changes: list[Any] = report["changes"]
    impacted: list[Mapping[str, Any]] = report["impacted"]
    n_changes = len(changes)
    notes = [f"note: {n}" for n in report.get("notes") or ()]
    if not changes:
        return ["No changes."]
    if not impacted:
        return [f"Nothing impacted by {plural(n_changes, 'change')}.", *notes]
    tests = sum(1 for i in impacted if i["kind"] == "test")
    declared = len(impacted) - tests
    also = f" and {styles.bold(plural(declared, 'declared target'))}" if declared else ""
    elapsed = styles.dim(f"({float(report['elapsed_ms']):.1f} ms)")
    lines = [
        f"{styles.bold(plural(tests, 'test file'))}{also} impacted by "
        f"{plural(n_changes, 'change')} {elapsed}"
    ]
    shown = impacted if show_all else impacted[:SHOWN]
    for item in shown:
        lines.append(styles.bold(item["target"]))
        if not item["reason"]:
            lines.append(BRANCH + styles.dim("(changed itself)"))
        for depth, hop in enumerate(item["reason"]):
            arrow = styles.dim("→")
            lines.append(f"{INDENT * depth}{BRANCH}{hop['text']} {arrow} {hop['target']}")
    if len(shown) < len(impacted):
        more = len(impacted) - len(shown)
        lines.append(
            styles.dim(f"… and {more} more (--all to show every reason, --json for machines)")
        )
    if tests:
        notes.append(RERUNS_FEWER)
    return lines + notes


def why_lines(report: Mapping[str, Any], styles: Styles) -> list[str]:
    """A WhyReport (JSON form) as the chain of reasons, or that there is none."""
    target, path = report["target"], report["path"]
    if not report["depends"]:
        return [f"{target} does not depend on {path}."]
    lines = [f"{styles.bold(target)} depends on {styles.bold(path)}:"]
    lines += [f"  {hop['source']} {hop['text']} → {hop['target']}" for hop in report["reason"]]
    return lines


def render_impacted(
    report: Mapping[str, Any], *, show_all: bool = False, out: TextIO | None = None
) -> None:
    stream = out or sys.stdout
    stream.write(
        "".join(f"{line}\n" for line in impacted_lines(report, Styles(stream), show_all=show_all))
    )
    stream.flush()


def render_why(report: Mapping[str, Any], *, out: TextIO | None = None) -> int:
    """Print the answer; the command's exit code (1: does not depend)."""
    stream = out or sys.stdout
    stream.write("".join(f"{line}\n" for line in why_lines(report, Styles(stream))))
    stream.flush()
    return 0 if report["depends"] else EXIT_DOES_NOT_DEPEND


def print_stats(workspace: Path, report: Mapping[str, Any], *, as_json: bool) -> None:
    """`maestro graph stats`: the stable JSON (--json) or the table, from the report's JSON form
    (maestro.graph.stats; a daemon's answer is that too)."""
    if as_json:
        sys.stdout.write(f"{stats_json(report)}\n")
        sys.stdout.flush()
        return
    render_stats(workspace, report)


def stats_json(report: Mapping[str, Any]) -> str:
    """The stable JSON of `graph stats --json`, from the report's JSON form (every field of
    GraphStatsReport, in its order): what the model's ``model_dump_json(by_alias=True,
    indent=2)`` writes (a test holds them equal), without importing pydantic."""
    import json

    return json.dumps(report, indent=2, ensure_ascii=False)


def stats_rows(report: Mapping[str, Any]) -> list[tuple[str, str]]:
    edges: Mapping[str, int] = report["edges"]
    return [
        ("files", f"{report['files']:,} ({report['python_files']:,} Python)"),
        ("test files", f"{report['tests']:,}"),
        ("declared targets", f"{report['declared_targets']:,}"),
        *((f"edges: {kind}", f"{count:,}") for kind, count in edges.items()),
        ("distributions", f"{report['distributions']:,}"),
        ("unresolved imports", f"{report['unresolved_imports']:,}"),
        (
            "built in",
            f"{report['build_seconds'] * 1000:.0f} ms ({report['reused_from_index']:,} files "
            f"from the index, {report['scanned']:,} scanned)",
        ),
    ]


def unchecked_note(unchecked: int) -> str:
    return (
        f"syntax not checked yet in {unchecked:,} Python file{'s' * (unchecked != 1)} "
        "(--check-syntax compiles them)"
    )


def render_stats(workspace: Path, report: Mapping[str, Any], *, out: TextIO | None = None) -> None:
    """The stats as a table, then the targets (with --targets) and the diagnostics.

    Written with the stdlib, character for character as rich lays them out (importing rich's
    table and console costs a cold run more than the stats themselves): to a file as rich writes
    to one, and to a terminal with rich's padding and ANSI styles. Whatever rich would lay out
    otherwise (wrapped lines, a dumb terminal, NO_COLOR, text it changes) goes to rich, which
    prints to sys.stdout (``out`` is for the stdlib's lines only)."""
    stream = out or sys.stdout
    lines = stats_lines(workspace, report, stream)
    if lines is None:
        rich_stats(workspace, report)
        return
    stream.write("".join(f"{line}\n" for line in lines))
    stream.flush()


ITALIC, BOLD, DIM, RED, YELLOW = "3", "1", "2", "31", "33"


def stats_lines(workspace: Path, report: Mapping[str, Any], stream: TextIO) -> list[str] | None:
    """What rich prints for the stats to ``stream``, or None where this cannot say it exactly."""
    terminal = rich_is_terminal(stream)
    width = rich_width()
    if width is None or (terminal and not rich_styles_by_number()):
        return None
    rows = stats_rows(report)
    label_width = max(len(label) for label, _ in rows)
    value_width = max(len(value) for _, value in rows)
    table_width = label_width + value_width + 4
    title = f"Build graph of {workspace}"
    targets: list[str] = report.get("targets") or []
    diagnostics = [
        (d["severity"], f"{d['path']}:{d['line']}" if d["line"] else d["path"], d["message"])
        for d in report["diagnostics"]
    ]
    unchecked = report["syntax_unchecked"]
    note = unchecked_note(unchecked) if unchecked else ""
    texts = [title, *targets, *(f"  {s} {w}: {m}" for s, w, m in diagnostics), note]
    # rich expands tabs and drops control characters: text like that is left to it
    if table_width > width or not all(text.isprintable() for text in texts):
        return None
    if terminal:  # lines are wrapped at the width (in cells) and the title centred over the table
        if not all(text.isascii() and len(text) <= width for text in texts):
            return None
        if len(title) > table_width:
            return None
        pad = table_width - len(title)
        title = " " * (pad // 2) + title + " " * (pad - pad // 2)

    def styled(text: str, code: str) -> str:
        return f"\x1b[{code}m{text}\x1b[0m" if terminal else text

    lines = [styled(title, ITALIC)]
    lines += [f" {label.ljust(label_width)}  {value.ljust(value_width)} " for label, value in rows]
    lines += targets
    if diagnostics:
        lines += ["", styled(plural(len(diagnostics), "diagnostic"), BOLD)]
        for severity, where, message in diagnostics:
            colour = RED if severity == "error" else YELLOW
            lines.append(f"  {styled(severity, colour)} {where}: {message}")
    if note:
        lines += ["", styled(note, DIM)]
    return lines


def rich_styles_by_number() -> bool:
    """Whether rich, writing to a terminal, styles with plain SGR numbers as stats_lines does:
    the stream itself is the terminal (no TTY_COMPATIBLE or FORCE_COLOR), colours are on
    (NO_COLOR unset) and the terminal is not dumb (rich then writes no styles at 80 columns)."""
    env = os.environ
    return (
        env.get("TTY_COMPATIBLE", "") == ""
        and "FORCE_COLOR" not in env
        and env.get("NO_COLOR", "") == ""
        and env.get("TERM", "").lower() not in ("dumb", "unknown")
    )


def rich_is_terminal(stream: TextIO) -> bool:
    """rich.console.Console.is_terminal for a console writing to ``stream``."""
    tty_compatible = os.environ.get("TTY_COMPATIBLE", "")
    if tty_compatible in ("0", "1"):
        return tty_compatible == "1"
    force_color = os.environ.get("FORCE_COLOR")
    if force_color is not None:
        return force_color != ""
    isatty = getattr(stream, "isatty", None)
    try:
        return isatty is not None and bool(isatty())
    except ValueError:
        return False


def rich_width() -> int | None:
    """rich.console.Console.width (COLUMNS, else the first standard stream's terminal, else
    80); None where rich would decide otherwise."""
    if sys.platform == "win32":
        return None
    columns = os.environ.get("COLUMNS")
    if columns is not None:
        return int(columns) if columns.isdigit() and int(columns) > 0 else None
    for fd in (0, 1, 2):
        try:
            width = os.get_terminal_size(fd).columns
        except (AttributeError, ValueError, OSError):
            continue
        return width or 80
    return 80


def rich_stats(workspace: Path, report: Mapping[str, Any]) -> None:
    """The stats through rich (a terminal's styles and layout). Text objects: a path or a
    message is printed as it is, never read as markup or emoji codes."""
    from rich.table import Table
    from rich.text import Text

    from maestro.cli.consoles import console

    title = Text(f"Build graph of {workspace}", style="table.title")
    table = Table(title=title, show_header=False, box=None)
    for label, value in stats_rows(report):
        table.add_row(label, value)
    console.print(table)
    if targets := report.get("targets"):
        console.print(Text("\n".join(targets)))
    if diagnostics := report["diagnostics"]:
        console.print(Text.assemble("\n", (plural(len(diagnostics), "diagnostic"), "bold")))
        for d in diagnostics:
            where = f"{d['path']}:{d['line']}" if d["line"] else d["path"]
            style = "red" if d["severity"] == "error" else "yellow"
            console.print(Text.assemble("  ", (d["severity"], style), f" {where}: {d['message']}"))
    if unchecked := report["syntax_unchecked"]:
        console.print(Text("\n" + unchecked_note(unchecked), style="dim"))
