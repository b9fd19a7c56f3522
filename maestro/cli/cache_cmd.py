"""`maestro cache ...`: inspect and maintain the local test cache (stats, verify, gc, DR drill)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from maestro.cli.common import JSON_OPTION, fail_on_error
from maestro.counts import plural

cache_app = typer.Typer(
    help="Inspect and maintain the content-addressed test cache (MAESTRO_CACHE_DIR overrides "
    "its location).",
    no_args_is_help=True,
)
out = Console()
err = Console(stderr=True)


def _workspace_states() -> list[Path]:
    """The state directory of every workspace Maestro has run in (each keeps its own
    fingerprint store beside its last keys)."""
    from maestro.paths import state_dir

    try:
        return sorted(p for p in (state_dir() / "workspaces").iterdir() if p.is_dir())
    except OSError:
        return []


def _kept_versions() -> tuple[int, int, int]:
    """The file versions the workspaces' fingerprint stores keep: (workspaces, versions, bytes)."""
    from maestro.engine.testing import FINGERPRINTS_DIR
    from maestro.graph.fingerprints import FingerprintStore, StoreUsage

    total, count = StoreUsage(), 0
    for state in _workspace_states():
        if (state / FINGERPRINTS_DIR).is_dir():
            total += FingerprintStore(state / FINGERPRINTS_DIR).usage()
            count += 1
    return count, total.versions, total.bytes


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
    workspaces, versions, kept = _kept_versions()
    if as_json:
        data = s.model_dump(mode="json")
        data["kept_versions"] = {"workspaces": workspaces, "versions": versions, "bytes": kept}
        out.print_json(data=data)
        return
    table = Table(title=f"Cache at {path}", show_header=False)
    table.add_column(style="bold")
    table.add_column(justify="right")
    rate = f"{s.hit_rate:.1%}" if s.hit_rate is not None else "-"
    where = plural(workspaces, "workspace")
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
        # what a change is diffed against, per workspace (`gc` drops those no result needs)
        ("kept file versions", f"{versions} in {where} ({format_size(kept)})"),
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
    """Evict least-recently-used entries down to a size; referenced blobs of kept results stay.
    Also drops the file versions each workspace keeps to diff changes against that none of its
    stored keys names any more."""
    from maestro.cache import Cache
    from maestro.cache.sizes import format_size, parse_size
    from maestro.engine.testing import GC_GRACE_S, prune_versions
    from maestro.graph.fingerprints import StoreUsage

    target = parse_size(max_size)

    with Cache.open() as cache:
        report = cache.gc(target)
        purged = cache.purge_quarantine() if purge_quarantine else 0
    out.print(
        f"evicted {report.evicted_actions} action results and {report.evicted_blobs} blobs, "
        f"{format_size(report.before_bytes)} -> {format_size(report.after_bytes)}"
        + (f"; purged {purged} quarantined entries" if purge_quarantine else "")
    )
    dropped, held = StoreUsage(), StoreUsage()
    for state in _workspace_states():
        gone, kept = prune_versions(state, grace_s=GC_GRACE_S)
        dropped, held = dropped + gone, held + kept
    out.print(
        f"dropped {dropped.versions} kept file versions no stored result is diffed against "
        f"({format_size(dropped.bytes)}); {held.versions} kept ({format_size(held.bytes)})"
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
