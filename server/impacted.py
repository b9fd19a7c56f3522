"""Custom requests over the graph and the cache: ``maestro/impactedTargets``,
``maestro/cacheStats`` and ``maestro/explain``.

Impacted targets follow the editor: a document whose buffer differs from the disk is sent as a
buffer (daemon ``impacted`` with ``buffers``), a saved one as a path; without documents the
change set is the git working tree plus every unsaved buffer.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from typing import Any, Literal
from urllib.parse import quote

from maestro.cache.stats import CacheStats
from maestro.errors import GitError, MaestroError, UnknownTargetError
from maestro.nodeids import base as base_nodeid
from maestro.nodeids import file_of
from maestro.reports import ChangeModel, ImpactedReport, ImpactModel
from maestro.server import methods, policy
from maestro.server.methods import (
    CacheCell,
    ExplainCache,
    ExplainParams,
    ExplainResult,
    ImpactedResult,
    ImpactedRow,
    ImpactedTargetsParams,
    LastSummary,
    WorkspaceParams,
    serve,
)
from maestro.server.server import MaestroServer, Workspace
from maestro.wire import (
    CACHE_STATS,
    IMPACTED,
    STALE,
    WHY,
    Empty,
    ImpactedParams,
    StaleParams,
    StaleResult,
    WhyParams,
)

log = logging.getLogger(__name__)

STALE_BUDGET_S = 2.0
_URI_SAFE = re.compile(r"[\w./-]*", re.ASCII)  # quote() is skipped for such paths


async def stale_state(ls: MaestroServer, ws: Workspace, budget_s: float) -> StaleResult | None:
    """The daemon's stale list, memoised until the graph changes or a run ends; waits at most
    ``budget_s`` (the computation goes on in the background and serves the next request)."""
    if ws.stale is not None:
        return ws.stale
    if ws.stale_task is None:
        generation = ws.generation

        async def fetch() -> StaleResult | None:
            try:
                result = await ws.link.call(STALE, StaleParams())
            except MaestroError as exc:
                log.info("no cache state for %s: %s", ws.root, exc.message)
                return None
            if ws.generation == generation:
                ws.stale = result
            return result

        ws.stale_task = asyncio.ensure_future(fetch())
    try:
        return await asyncio.wait_for(asyncio.shield(ws.stale_task), budget_s)
    except TimeoutError:
        return None


async def impacted_reports(
    ls: MaestroServer, ws: Workspace, uris: list[str] | None, since: str | None, hops: int | None
) -> tuple[list[ImpactedReport], set[str], methods.ChangeSource]:
    """The daemon's reports for the editor's change set, the unsaved paths and the source kind."""
    calls: list[ImpactedParams] = []
    unsaved: dict[str, str] = {}
    source: methods.ChangeSource
    if since:
        calls.append(ImpactedParams(since=since, hops=hops))
        source = "since"
    elif uris:
        unsaved = ls.buffers(ws, uris)
        clean = [ls.ws_of_uri(u)[1] for u in uris]
        clean = [rel for rel in clean if rel not in unsaved]
        if clean:
            calls.append(ImpactedParams(paths=clean, hops=hops))
        source = "buffers" if unsaved and not clean else "paths" if not unsaved else "mixed"
    else:
        unsaved = ls.buffers(ws)
        calls.append(ImpactedParams(hops=hops))
        source = "workingTree"
    if unsaved:
        calls.append(ImpactedParams(buffers=unsaved, hops=hops))

    async def one(params: ImpactedParams) -> ImpactedReport | None:
        try:
            return await memoised(ws, params)
        except GitError as exc:  # not a git repository: the buffers still count
            if params.paths is None and params.buffers is None and params.since is None:
                log.info("no working-tree changes for %s: %s", ws.root, exc.message)
                return None
            raise

    found = await asyncio.gather(*(one(p) for p in calls))
    return [r for r in found if r is not None], set(unsaved), source


MEMO_SIZE = 32


async def memoised(ws: Workspace, params: ImpactedParams) -> ImpactedReport:
    """The daemon's answer, reusing the last one for the same request while its etag holds (the
    daemon checks it against its graph version and the change records it computes anew, so an
    edit anywhere or a file that changed on disk is a fresh answer). Buffers are keyed by path:
    the daemon's etag names what the answer reads of them, which for a source file is not its
    text, so typing into a hub file is answered from the memo after the first keystroke."""
    key = (
        tuple(params.paths or ()),
        params.paths is None,
        params.since,
        params.hops,
        tuple(sorted(params.buffers)) if params.buffers is not None else None,
    )
    # the same question already on its way (a lens and a view ask at once): share its answer
    exact = (key, tuple(sorted(params.buffers.items())) if params.buffers else None)
    running = ws.impacted_inflight.get(exact)
    if running is None:
        running = asyncio.ensure_future(_ask(ws, params, key))
        ws.impacted_inflight[exact] = running

        def done(task: asyncio.Future[ImpactedReport]) -> None:
            if ws.impacted_inflight.get(exact) is task:
                del ws.impacted_inflight[exact]
            if not task.cancelled():
                task.exception()  # retrieved: every waiter got it already

        running.add_done_callback(done)
    return await asyncio.shield(running)


async def _ask(ws: Workspace, params: ImpactedParams, key: tuple[Any, ...]) -> ImpactedReport:
    held = ws.impacted_memo.get(key)
    if held is not None:
        report = await ws.link.call(IMPACTED, params.model_copy(update={"etag": held.etag}))
        if report.unchanged and report.etag == held.etag:
            return held
    else:
        report = await ws.link.call(IMPACTED, params)
    if report.unchanged:  # not ours (a restarted daemon cannot match): ask for the rows
        report = await ws.link.call(IMPACTED, params)
    if report.etag:
        memo = ws.impacted_memo
        memo.pop(key, None)
        if len(memo) >= MEMO_SIZE:
            memo.pop(next(iter(memo)))
        memo[key] = report
    return report


def merge(reports: list[ImpactedReport]) -> tuple[list[ChangeModel], list[ImpactModel]]:
    """One change list and one row per target (its nearest reason) over several reports."""
    if len(reports) == 1:  # the daemon's rows are unique and ordered by (distance, target)
        return reports[0].changes, reports[0].impacted
    changes: dict[str, ChangeModel] = {}
    best: dict[str, ImpactModel] = {}
    for report in reports:
        for c in report.changes:
            changes[c.path] = c
        for i in report.impacted:
            if i.target not in best or i.distance < best[i.target].distance:
                best[i.target] = i
    return list(changes.values()), sorted(best.values(), key=lambda i: (i.distance, i.target))


async def impacted_targets(
    ls: MaestroServer,
    ws: Workspace,
    uris: list[str] | None = None,
    since: str | None = None,
    *,
    cache_state: bool | str = True,
    tests_only: bool = False,
    reasons: bool = False,
) -> ImpactedResult:
    """The rows an editor shows. A hub change impacts hundreds of tests: each row carries its
    reason as one line (`why`); the structured hops only when asked for (`reasons: true`), since
    encoding them dominated the response time on large trees."""
    started = time.perf_counter()
    reports, unsaved, source = await impacted_reports(ls, ws, uris, since, None if reasons else 0)
    changes, impacts = merge(reports)
    former: list[ImpactModel] = []
    if uris and not since:
        former = former_readers(ws, [ls.ws_of_uri(u)[1] for u in uris], impacts)
        impacts = impacts + former if former else impacts
    if cache_state == "refresh" and impacts:
        stale = await stale_state(ls, ws, STALE_BUDGET_S)
    else:  # the daemon's `stale` holds its graph lock while it hashes: only on demand
        stale = ws.stale if cache_state else None
    # a re-asked answer the daemon confirmed is the same report object: its rows are too,
    # unless the cache state, the results or the unsaved buffers changed
    shape = (tests_only, reasons)
    inputs = (reports, stale, ws.results.version, unsaved, [i.target for i in former])
    held = ws.rows_memo.get(shape)
    if held is not None and _same(held[0], inputs):
        rows: list[ImpactedRow] = held[1]
    else:
        rows = _rows(ls, ws, impacts, unsaved, stale, tests_only=tests_only, reasons=reasons)
        ws.rows_memo[shape] = (inputs, rows)
    return {
        "root": str(ws.root),
        "source": source,
        "changes": changes,
        "impacted": rows,
        "count": sum(1 for r in rows if r["kind"] == "test"),
        "notes": list(dict.fromkeys(n for r in reports for n in r.notes)),
        "daemonMs": round(sum(r.elapsed_ms for r in reports), 3),
        "elapsedMs": round((time.perf_counter() - started) * 1000, 3),
    }


def _same(held: tuple[Any, ...], inputs: tuple[Any, ...]) -> bool:
    """The same reports and cache state (by identity), results version, unsaved paths and
    remembered targets."""
    (reports, stale, version, unsaved, targets) = held
    (reports2, stale2, version2, unsaved2, targets2) = inputs
    return (
        len(reports) == len(reports2)
        and all(a is b for a, b in zip(reports, reports2, strict=True))
        and stale is stale2
        and version == version2
        and unsaved == unsaved2
        and targets == targets2
    )


FORMER_WHY = "used it before it was deleted (its last run was without it)"
FORMER_SIZE = 256  # paths whose test files are remembered


def former_readers(ws: Workspace, rels: list[str], impacts: list[ImpactModel]) -> list[ImpactModel]:
    """Rows for the test files that used a deleted file of ``rels`` and ran again since: their
    new records no longer name it, so the daemon's answer drops them, although the deletion is
    what changed them. Each asked path's test files are remembered; a deleted one keeps them
    while they exist."""
    reached: dict[str, list[str]] = {}
    for i in impacts:
        if i.kind == "test":
            reached.setdefault(i.changed, []).append(i.target)
    named = {i.target for i in impacts}
    added: list[ImpactModel] = []
    for rel in rels:
        now = reached.get(rel, [])
        deleted = not (ws.root / rel).exists()
        before = ws.former_readers.pop(rel, [])
        if deleted:
            now = [*now, *(t for t in before if (ws.root / t).is_file())]
        kept = list(dict.fromkeys(now))
        if kept:
            ws.former_readers[rel] = kept
            if len(ws.former_readers) > FORMER_SIZE:
                ws.former_readers.pop(next(iter(ws.former_readers)))
        for target in kept if deleted else []:
            if target not in named:
                named.add(target)
                added.append(
                    ImpactModel(
                        target=target, kind="test", changed=rel, distance=1, why=FORMER_WHY,
                        reason=[],
                    )
                )  # fmt: skip
    return added


def _rows(
    ls: MaestroServer,
    ws: Workspace,
    impacts: list[ImpactModel],
    unsaved: set[str],
    stale: StaleResult | None,
    *,
    tests_only: bool,
    reasons: bool,
) -> list[ImpactedRow]:
    """One row per impacted target: its reason in a line, cache state and last outcomes."""
    stale_by = {s.target: s for s in stale.stale} if stale else {}
    by_file = ws.results.by_file()
    root_uri = ls.uri_of(ws, "").rstrip("/") + "/"
    # shared by the rows: they are only encoded
    unknown: CacheCell = {"state": "unknown", "describe": "", "changed": []}
    cached: CacheCell = {"state": "cached", "describe": "cached", "changed": []}
    never_run: LastSummary = {"failed": 0, "passed": 0, "tests": 0}
    rows: list[ImpactedRow] = []
    for i in impacts:
        is_test = i.kind == "test"
        if tests_only and not is_test:
            continue
        target, changed = i.target, i.changed
        is_unsaved = changed in unsaved
        cache: CacheCell
        if is_unsaved:
            cache = {
                "state": "unsaved",
                "describe": f"unsaved changes in {changed}",
                "changed": [changed],
            }
        elif stale is None or not is_test:
            cache = unknown
        elif target in stale_by:
            s = stale_by[target]
            cache = {"state": "stale", "describe": s.describe or s.reason, "changed": s.changed}
        else:
            cache = cached
        last = by_file.get(target) if is_test else None
        row: ImpactedRow = {
            "target": target,
            "uri": root_uri + (target if _URI_SAFE.fullmatch(target) else quote(target))
            if is_test
            else None,
            "kind": i.kind,
            "changed": changed,
            "distance": i.distance,
            "unsaved": is_unsaved,
            "why": i.why,
            "cache": cache,
            "last": {
                "failed": sum(1 for t in last if t.failing),
                "passed": sum(1 for t in last if t.outcome == "passed"),
                "tests": len(last),
            }
            if last
            else never_run,
        }
        if reasons:
            row["reason"] = i.reason
        rows.append(row)
    return rows


def workspace_for(ls: MaestroServer, params: WorkspaceParams) -> Workspace:
    """The workspace of the params' first document, else of their root, else the first folder."""
    uris = params.documents()
    if uris:
        return ls.ws_of_uri(uris[0])[0]
    return ls.ws_named(params.root)


# --- explain ---------------------------------------------------------------------------------


def target_of(ls: MaestroServer, raw: str) -> tuple[Workspace, str, str]:
    """(workspace, test file, node id or file) of a node id, relative path or URI."""
    if raw.startswith("file:"):
        path, _, node = raw.partition("::")
        ws, rel = ls.ws_of_uri(path)
        return ws, rel, f"{rel}::{node}" if node else rel
    folders = ls.folders()
    if not folders:
        raise UnknownTargetError("no workspace folder is open")
    ws = ls.ws(folders[0])
    return ws, file_of(raw), raw


async def explain(ls: MaestroServer, raw: str, path: str | None = None) -> ExplainResult:
    """Why a test is selected, skipped, cached or re-run: the reason chain, the cache state and
    the cache-key inputs that changed since its last stored result."""
    ws, file, node = target_of(ls, raw)
    missing = await _missing(ls, ws, file, node)
    if missing is not None:
        return {
            "root": str(ws.root), "target": node, "file": file, "decision": "unknown",
            "selected": False, "impact": None,
            "cache": {"state": "unknown", "reason": None, "describe": "", "changedInputs": []},
            "last": [], "why": None, "reasons": [missing], "decisions": [], "text": missing,
        }  # fmt: skip
    impact_report = await impacted_targets(ls, ws, None, None, cache_state=False)
    impact = next((r for r in impact_report["impacted"] if r["target"] == file), None)
    try:  # fresh, not the memo: explain must see a save the watcher has not reported yet
        stale: StaleResult | None = await ws.link.call(STALE, StaleParams())
        ws.stale = stale
    except MaestroError as exc:
        log.info("no cache state for %s: %s", ws.root, exc.message)
        stale = None
    stale_row = next((s for s in stale.stale if s.target == file), None) if stale else None
    last = ws.results.of_node(node) if node != file else ws.results.of_file(file)
    plan = ws.results.files.get(file)
    reasons: list[str] = []
    cache_state: Literal["cached", "stale", "unknown"]
    decision: methods.Decision
    if impact is not None:
        said = f"selected: {impact['changed']} changed"
        # a test file that is itself the change: its chain says only that again
        chain = impact["why"]
        reasons.append(
            said if chain in ("", f"{impact['changed']} changed") else f"{said}; {chain}"
        )
    else:
        reasons.append("not impacted by the current changes (git working tree and unsaved edits)")
    if stale is None:
        cache_state = "unknown"
        reasons.append("cache state unknown (the daemon could not compute it)")
    elif stale_row is not None:
        cache_state = "stale"
        reasons.append(f"re-runs: {stale_row.describe or stale_row.reason}")
        if stale_row.changed:
            reasons.append("cache-key inputs changed: " + ", ".join(stale_row.changed))
    else:
        cache_state = "cached"
        reasons.append("cached: a result for the current inputs is stored; it is replayed")
    # what a run of the test (or of all tests) does: a test with no stored result it may serve
    # (one that failed last time) re-runs, impacted or not; only a run of the impacted tests
    # skips a test no change reaches
    if cache_state == "stale":
        decision = "re-run"
        if impact is None:
            reasons[0] += "; a run of the impacted tests skips it, any other run re-runs it"
    elif cache_state == "cached":
        decision = "cached"
    elif impact is None:
        decision = "skipped (not impacted)"
    else:
        decision = "re-run"
    if plan is not None:
        reasons.append(f"last run ({plan.run_id}): {plan.describe}")
    why = None
    if path:
        why = report = await ws.link.call(WHY, WhyParams(target=file, path=path))
        reasons.append(
            " -> ".join(h.text for h in report.reason)
            if report.depends
            else f"{file} does not depend on {path}"
        )
    decisions = await policy.decisions_about(ws, node)
    for d in decisions[:3]:
        reasons.append(f"policy: {d.summary}")
    return {
        "root": str(ws.root),
        "target": node,
        "file": file,
        "decision": decision,
        "selected": impact is not None,
        "impact": impact,
        "cache": ExplainCache(
            state=cache_state,
            reason=stale_row.reason if stale_row else None,
            describe=stale_row.describe if stale_row else ("cached" if stale else ""),
            changedInputs=stale_row.changed if stale_row else [],
        ),
        "last": [s.to_json() for s in last],
        "why": why,
        "reasons": reasons,
        "decisions": decisions,
        "text": "\n".join(reasons),
    }


async def _missing(ls: MaestroServer, ws: Workspace, file: str, node: str) -> str | None:
    """Why there is nothing to explain (no such test file, or no such test in it), else None."""
    if not await ls.is_test_file(ws, file):
        return f"{file} is not a test file of {ws.root} (nothing ran or is cached for it)"
    if node == file:
        return None
    wanted = base_nodeid(node)
    items = ls.test_items(ls.uri_of(ws, file), file)
    if not any(i.nodeid == wanted for item in items for i in item.walk()) and not (
        # pytest collects tests the text does not show (made by a metaclass or a loop over
        # data files, inherited from another module's class): their results know them
        ws.results.of_node(wanted)
    ):
        return f"{file} has no test {wanted.split('::', 1)[1]} (as the file reads now)"
    if wanted != node:
        # parameter ids come from collection, not from the text: the last known results of
        # the function tell which exist (none known: nothing to say)
        known = {s.nodeid for s in ws.results.of_node(wanted)}
        if known and node not in known:
            return (
                f"{wanted.split('::', 1)[1]} has no parameter set {node[len(wanted) :]} "
                f"(its last results have {len(known)})"
            )
    return None


def register(server: MaestroServer) -> None:
    @serve(server, methods.IMPACTED_TARGETS)
    async def impacted_request(ls: MaestroServer, params: ImpactedTargetsParams) -> ImpactedResult:
        ws = workspace_for(ls, params)
        return await impacted_targets(
            ls,
            ws,
            params.documents() or None,
            params.since,
            cache_state=params.cache_state,
            tests_only=params.tests_only,
            reasons=params.reasons,
        )

    @serve(server, methods.CACHE_STATS)
    async def cache_stats(ls: MaestroServer, params: WorkspaceParams) -> methods.CacheStatsInfo:
        return await cache_stats_of(workspace_for(ls, params))

    @serve(server, methods.EXPLAIN)
    async def explain_request(ls: MaestroServer, params: ExplainParams) -> ExplainResult:
        target = params.subject()
        if not target:
            raise UnknownTargetError(
                "maestro/explain needs a target", hint="pass target: a node id, path or URI"
            )
        return await explain(ls, target, params.path)


async def cache_stats_of(ws: Workspace) -> methods.CacheStatsInfo:
    stats: CacheStats = await ws.link.call(CACHE_STATS, Empty())
    return methods.CacheStatsInfo(root=str(ws.root), **stats.model_dump(exclude={"hit_rate"}))
