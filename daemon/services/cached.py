"""``cached_results``: the stored result of test files for their *current* inputs, without
running anything, so an editor opened after a restart shows what the cache already knows. The keys
are computed as a run's plan computes them, on the shared graph under its lock, like ``stale``, but
nothing a plan records happens (no hit/miss counted, no "last key" moved): looking is not running.
The cache view never waits on the network (a team-cache result already mirrored counts)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from maestro.wire import CachedResultsParams, CachedResultsResult, RunFileResult

if TYPE_CHECKING:
    from maestro.daemon.services.tests import TestService
    from maestro.daemon.transport.server import RequestContext
    from maestro.graph.build import BuildGraph


async def cached_results(
    service: TestService, params: CachedResultsParams, ctx: RequestContext
) -> CachedResultsResult:
    from maestro.engine.testing import (
        Digests,
        Selection,
        env_allowlist_of,
        file_key,
        key_context,
        keyed_when_read_of,
        polluters_for,
        select,
    )

    if not params.paths:
        return CachedResultsResult(files=[])
    graph = await service.workspace.ready()
    interpreter = await service.interpreter(graph)
    cache = await service.run_cache(graph, wait_remote=False)

    def answer(g: BuildGraph) -> CachedResultsResult:
        digests = Digests(g)
        context = key_context(
            interpreter,
            (),
            env_allowlist_of(g),
            read_keyed=keyed_when_read_of(g),
            edited=g.installed_edited(),
        )
        polluters = polluters_for(g)
        files: list[RunFileResult] = []
        for target, nodes in select(g, Selection(paths=tuple(params.paths))).items():
            key = file_key(g, target, context, digests, polluters, nodes)
            found = cache.get_action(key.hex, count=False)
            if found is not None:
                dumped = cache.action_json(key.hex, found)
                files.append(RunFileResult(target=target, cached=True, result=dumped))
        return CachedResultsResult(files=files)

    return await service.workspace.query(answer, mutates=True)
