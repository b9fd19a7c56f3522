"""What `maestro impacted`, `maestro why` and `maestro graph stats` print.

Both routes render with these functions: the full CLI (maestro/cli/graph_cmd.py, in process or
through the daemon, dumping its pydantic report) and the fast path (maestro/cli/fast.py, the
daemon's msgpack answer as it arrived, which is that same dump), so the output is the same by
construction. They write plain lines with the stdlib only: importing rich's console costs more
than the whole warm answer, and a reason chain needs no layout (a path of one-child nodes).
Lines are never wrapped, so they stay greppable; bold and dim go to a terminal only.
`graph stats` renders its pydantic report (a rich table), on both routes too.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from maestro.reports import GraphStatsReport

SHOWN = 40
"""Impacted targets the text output shows (with their reason trees) unless --all."""

EXIT_DOES_NOT_DEPEND = 1

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


def plural(n: int, noun: str) -> str:
    return f"{n} {noun}{'s' * (n != 1)}"


def impacted_lines(report: Mapping[str, Any], styles: Styles, *, show_all: bool) -> list[str]:
    """An ImpactedReport (JSON form) as a summary line and one reason chain per target."""
    changes: list[Any] = report["changes"]
    impacted: list[Mapping[str, Any]] = report["impacted"]
    n_changes = len(changes)
    if not changes:
        return ["No changes."]
    if not impacted:
        return [f"Nothing impacted by {plural(n_changes, 'change')}."]
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
    return lines


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


def print_stats(workspace: Path, report: GraphStatsReport, *, as_json: bool) -> None:
    """`maestro graph stats`: the stable JSON (--json) or the table."""
    if as_json:
        text = report.model_dump_json(by_alias=True, indent=2, exclude={"etag", "unchanged"})
        sys.stdout.write(f"{text}\n")
        sys.stdout.flush()
        return
    render_stats(workspace, report)


def render_stats(workspace: Path, report: GraphStatsReport) -> None:
    """The stats as a table, then the targets (with --targets) and the diagnostics (rich)."""
    from rich.table import Table

    from maestro.cli.consoles import console

    table = Table(title=f"Build graph of {workspace}", show_header=False, box=None)
    table.add_row("files", f"{report.files:,} ({report.python_files:,} Python)")
    table.add_row("test files", f"{report.tests:,}")
    table.add_row("declared targets", f"{report.declared_targets:,}")
    for kind, count in report.edges.items():
        table.add_row(f"edges: {kind}", f"{count:,}")
    table.add_row("distributions", f"{report.distributions:,}")
    table.add_row("unresolved imports", f"{report.unresolved_imports:,}")
    table.add_row(
        "built in",
        f"{report.build_seconds * 1000:.0f} ms "
        f"({report.reused_from_index:,} files from the index, {report.scanned:,} scanned)",
    )
    console.print(table)
    if report.targets:
        console.print("\n".join(report.targets), highlight=False)
    if report.diagnostics:
        console.print(f"\n[bold]{len(report.diagnostics)} diagnostics[/bold]")
        for d in report.diagnostics:
            where = f"{d.path}:{d.line}" if d.line else d.path
            style = "red" if d.severity == "error" else "yellow"
            console.print(f"  [{style}]{d.severity}[/{style}] {where}: {d.message}")
    if unchecked := report.syntax_unchecked:
        console.print(
            f"\n[dim]syntax not checked yet in {unchecked:,} Python file{'s' * (unchecked != 1)} "
            "(--check-syntax compiles them)[/dim]",
            highlight=False,
        )
