"""`maestro cache ...`: inspect and maintain the local test cache (stats, verify, gc, DR drill)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from maestro.cli.common import JSON_OPTION, fail_on_error

cache_app = typer.Typer(
    help="Inspect and maintain the content-addressed test cache (MAESTRO_CACHE_DIR overrides "
    "its location).",
    no_args_is_help=True,
)
out = Console()
err = Console(stderr=True)


@cache_app.command()
@fail_on_error
def stats(
    as_json: JSON_OPTION = False,
) -> None:
    """Hits, misses, entries, size and the time cache hits saved."""
    from maestro.cache import Cache
    from maestro.cache.sizes import format_size

    with Cache.open() as cache:
        s = cache.stats()
        path = cache.path
    if as_json:
        out.print_json(s.model_dump_json())
        return
    table = Table(title=f"Cache at {path}", show_header=False)
    table.add_column(style="bold")
    table.add_column(justify="right")
    rate = f"{s.hit_rate:.1%}" if s.hit_rate is not None else "-"
    rows = [
        ("hits / misses", f"{s.hits} / {s.misses} ({rate})"),
        ("blobs", str(s.blobs)),
        ("action results", str(s.actions)),
        ("stored", format_size(s.bytes)),
        ("data file", format_size(s.file_bytes)),
        ("CPU time saved", f"{s.cpu_seconds_saved:.1f} s"),
        ("wall time saved", f"{s.wall_seconds_saved:.1f} s"),
        ("evictions", str(s.evictions)),
        ("quarantined", str(s.quarantined)),
    ]
    for name, value in rows:
        table.add_row(name, value)
    out.print(table)


@cache_app.command()
@fail_on_error
def verify() -> None:
    """Re-hash every blob and decode every action result; quarantine bad ones (exit 1 if any)."""
    from maestro.cache import Cache
    from maestro.cache.sizes import format_size

    with Cache.open() as cache:
        report = cache.verify()
    out.print(
        f"checked {report.blobs_checked} blobs and {report.actions_checked} action results "
        f"({format_size(report.bytes_checked)}) in {report.seconds:.1f} s: "
        f"{report.ok} ok, {len(report.corrupt)} corrupt"
    )
    if report.dangling_actions:
        out.print(f"{report.dangling_actions} action results miss a blob (served as misses)")
    if report.newer_schema:
        out.print(f"{report.newer_schema} action results were written by a newer Maestro")
    for repair in report.repairs:
        out.print(f"repaired: {repair}")
    if report.corrupt:
        table = Table(title="Quarantined")
        table.add_column("kind")
        table.add_column("key")
        table.add_column("reason")
        for problem in report.corrupt:
            table.add_row(problem.kind, problem.key, problem.reason)
        out.print(table)
        raise typer.Exit(1)


@cache_app.command()
@fail_on_error
def gc(
    max_size: Annotated[
        str, typer.Option("--max-size", help="Target size: 500MB, 2GiB, 1G (G = GiB).")
    ],
    purge_quarantine: Annotated[
        bool, typer.Option("--purge-quarantine", help="Also drop quarantined entries.")
    ] = False,
) -> None:
    """Evict least-recently-used entries down to a size; referenced blobs of kept results stay."""
    from maestro.cache import Cache
    from maestro.cache.sizes import format_size, parse_size

    target = parse_size(max_size)

    with Cache.open() as cache:
        report = cache.gc(target)
        purged = cache.purge_quarantine() if purge_quarantine else 0
    out.print(
        f"evicted {report.evicted_actions} action results and {report.evicted_blobs} blobs, "
        f"{format_size(report.before_bytes)} -> {format_size(report.after_bytes)}"
        + (f"; purged {purged} quarantined entries" if purge_quarantine else "")
    )


@cache_app.command()
@fail_on_error
def snapshot(
    dest: Annotated[Path, typer.Argument(help="New or empty directory for the snapshot.")],
) -> None:
    """Write a compacted copy of the cache plus a manifest of every digest."""
    from maestro.cache import Cache
    from maestro.cache.sizes import format_size

    with Cache.open() as cache:
        manifest = cache.snapshot(dest)
    out.print(
        f"snapshot: {manifest.blob_count} blobs, {manifest.action_count} action results, "
        f"{format_size(manifest.total_bytes)} stored, {format_size(manifest.data_bytes)} file "
        f"-> {dest}"
    )


@cache_app.command()
@fail_on_error
def restore(
    src: Annotated[Path, typer.Argument(help="A directory written by `maestro cache snapshot`.")],
    force: Annotated[
        bool, typer.Option("--force", help="Replace an existing cache (kept beside it).")
    ] = False,
) -> None:
    """Verify a snapshot entry by entry, then install it as the cache; refuses on any mismatch."""
    from maestro.cache import Cache

    report = Cache.restore(src, force=force)
    out.print(
        f"restored {report.manifest.blob_count} blobs and {report.manifest.action_count} "
        f"action results to {report.target} in {report.seconds:.1f} s (all digests verified)"
    )
    if report.replaced is not None:
        out.print(f"the previous cache was moved to {report.replaced}")
