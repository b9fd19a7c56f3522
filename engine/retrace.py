"""Re-record, with a per-node record, the results an untraced run stored.

Before Python 3.12 the only C-level call hook is cProfile's, which about doubles a call-heavy
suite, so a test file's first run is untraced (`trace_env`): its result has no per-node record,
and the first change to any of its inputs re-runs the whole file. When idle, the daemon runs
those files again, traced, at low priority, and stores the traced result under the same key,
but only when every node's outcome is the one cached (`store_results(agree=True)`): a test whose
outcome flipped keeps the cached result, and its next change re-runs it whole as before. A
user's run cancels a re-recording in progress (its pytest process group is killed before
anything is stored; `Engine.execute` stores only after pytest exits), and so does a pytest the
user starts in the workspace themselves (daemon/foreign_runs.py). Since nobody waits for
it, it also records, with ``sys.settrace``, the lines the functions run outside the tests (an
import, a collection) run there, which a cold run before 3.12 cannot afford: a change to such a
function that none of those lines holds then re-runs only the nodes that executed it. A user's
run before 3.12 keeps no line records either (cProfile's record only): the files it ran are
re-recorded the same way once the daemon is idle again.

It is the daemon's work, not the user's: ``[tool.maestro] retrace = false`` turns it off, and it
is a ``background`` run for the policy (asked before each re-recording, never waiting), so a
closed run window holds it until the window opens. `maestro status` says which.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

from maestro.engine.runner import TRACE_ENV

if TYPE_CHECKING:
    from maestro.engine.core import Engine
    from maestro.engine.testing import Plan, PlannedFile, Reason, Summary

log = logging.getLogger(__name__)

# not a rule's refusal or a failure: a passing result that cannot judge a change per node
REASON: Reason = "cached result unusable"
NICE = 10


def wanted(engine: Engine, environ: Mapping[str, str] | None) -> bool:
    """Would this interpreter's runs lack a per-node or line record (worth re-recording)?"""
    return not_wanted(engine, environ) is None


def not_wanted(engine: Engine, environ: Mapping[str, str] | None) -> str | None:
    """Why this interpreter's runs need no re-recording (None: they do)."""
    if engine.interpreter.version >= (3, 12):
        return "Python 3.12+ traces every run"
    if environ is not None and TRACE_ENV in environ:
        return f"{TRACE_ENV} is set"
    return None


def untraced(planned: Plan, rerecord: Collection[str] = ()) -> list[PlannedFile]:
    """The whole files served from a passing cached result that has no per-node record, or
    that `rerecord` names (the results of a user's run before 3.12: no line records)."""
    return [
        f
        for f in planned.files
        if not f.runs
        and not f.promote
        and f.nodes is None
        and f.cached is not None
        and (f.cached.trace is None or f.target in rerecord)
    ]


def plan_retrace(planned: Plan, rerecord: Collection[str] = ()) -> Plan | None:
    """The plan that re-runs `untraced` files whole; None when there are none."""
    files = [replace(f, reason=REASON) for f in untraced(planned, rerecord)]
    if not files:
        return None
    return replace(planned, files=files, background=True)


async def retrace(
    engine: Engine,
    targets: Sequence[str] = (),
    *,
    pytest_args: Sequence[str] = (),
    environ: Mapping[str, str] | None = None,
    nice: int = NICE,
    rerecord: Collection[str] = (),
) -> Summary | None:
    """Re-run, traced, the untraced cached results of `targets` (default: every test file) and
    those `rerecord` names, with the user's `pytest_args` (they are in the key); store the
    traced results that agree."""
    import asyncio

    from maestro.engine.order import full_run
    from maestro.engine.testing import Selection

    if not wanted(engine, environ):
        return None
    # in the full run's order: the files are no paths a user named in an order of theirs
    targets = full_run(engine.graph.pytest, engine.graph.root).sorted(targets)
    selection = Selection(
        paths=tuple(targets), pytest_args=tuple(pytest_args), full_run_answer=True
    )
    # the run before it counted these files' hits already
    planned = await asyncio.to_thread(engine.plan, selection, environ=environ, count=False)
    sub = plan_retrace(planned, rerecord)
    if sub is None:
        return None
    log.info("re-recording %d test file(s) with a per-node record", len(sub.files))
    import os

    # traced whatever the last keys say (the variable is not keyed: it changes records only),
    # with line records of the code run outside the tests: slow, but nobody waits for it
    traced = {**(os.environ if environ is None else environ), TRACE_ENV: "lines"}
    summary = await engine.execute(sub, environ=traced, nice=nice, agree=True)
    stored = sum(1 for o in summary.files if o.stored)
    log.info("re-recorded %d of %d test file(s)", stored, len(sub.files))
    return summary
