"""`maestro explain TEST`: why a test file or node would run now, or why it is served from cache.

Says it in words, from the node-level record stored with the last result:
``tests/test_config.py::test_x executed flask.config.Config.from_file, changed at
src/flask/config.py:211``; with ``--record`` also lists what the node executed and read.
"""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Any

from rich.markup import escape

from maestro.cli.consoles import console
from maestro.cli.test_run import _relative
from maestro.counts import plural
from maestro.errors import MaestroError, UnknownTargetError

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

    from maestro.cache import Cache
    from maestro.cache.action import ActionResult
    from maestro.engine.core import Engine
    from maestro.engine.testing import LastKeys, PlannedFile
    from maestro.policy.model import DecisionRecord


def node_verdict(
    planned: PlannedFile,
    node: str,
    since_last: Sequence[str] = (),
    last_run: ActionResult | None = None,
) -> tuple[bool, str]:
    """(runs, sentence) for one node id of a planned file; ``since_last``: the inputs that
    differ from its last run's (``last_run``; an edit undone since serves an older result)."""
    if planned.reason is None:
        if planned.promote:
            return False, f"{node} is served from the cache: it executed nothing that changed"
        if since_last and planned.cached is not None:
            stored = _stored_for(planned.cached, since_last, last_run, earlier=planned.earlier)
            return False, f"{node} is served from the cache: {stored}"
        if planned.cached is not None and (elsewhere := _elsewhere(planned.cached)):
            return False, f"{node} is served from the cache: {elsewhere}"
        return False, f"{node} is served from the cache: no input changed since its last run"
    reasons = planned.node_reasons
    if planned.run_nodes is None and len(reasons) > 1 and len(set(reasons.values())) == 1:
        # one reason for every node is said of the file, not of this node
        return True, f"{node} runs with its whole file: {planned.describe()}"
    if node in reasons:
        return True, f"{node} {reasons[node]}"
    if planned.run_nodes is not None and planned.reason == "failed last time":
        # nothing changed: the failed tests run again, the others' results hold
        return False, f"{node} is served from the cache: no input changed since its last run"
    if planned.run_nodes is not None:
        return False, f"{node} is served from the cache: it executed nothing that changed"
    return True, f"{node} runs with its whole file: {planned.describe()}"


def _runs_with(engine: Engine, target: str, pytest_args: tuple[str, ...] = ()) -> list[str]:
    """The files that make `target`, served when planned alone, run in a full `maestro test`:
    pytest collects it before them and what its import does (warnings filters, registries)
    must be there when they are collected, so it runs with them (engine/testing.py,
    `_with_polluters`). Empty when a full run serves it too."""
    from maestro.engine import testing

    full = engine.plan(testing.Selection(pytest_args=pytest_args), count=False)
    before = (testing.COLLECTED_BEFORE, testing.RUNS_BEFORE)
    if full.polluters is None or not any(
        f.target == target and f.runs and f.reason in before for f in full.files
    ):
        return []
    tests = engine.graph.tests
    return [
        f.target
        for f in full.files
        if f.runs
        and f.target != target
        and (
            target in full.polluters.before(f.target, tests) or target in testing.ran_polluters([f])
        )
    ]


def _named(paths: Sequence[str]) -> str:
    return ", ".join(paths[:3]) + (f" (+{len(paths) - 3} more)" if len(paths) > 3 else "")


def _polluter_sentence(node: str, target: str, runs_with: Sequence[str]) -> str:
    return (
        f"{node} runs with {_named(runs_with)}: pytest collects {target} before them and its "
        f"import (or its tests) changes state they see; `maestro test {target}` alone serves it "
        "from the cache"
    )


def _stored_for(
    served: ActionResult, since_last: Sequence[str], last_run: ActionResult | None, *, earlier: bool
) -> str:
    """Why a file whose inputs changed since its last run is served: a stored result was
    made with the inputs it has now (an edit undone, a branch switched back)."""
    from maestro.engine.testing import input_label

    names = [input_label(n) for n in since_last[:3]]
    more = f" (+{len(since_last) - 3} more)" if len(since_last) > 3 else ""
    last = f" ({_run_of(last_run)})" if last_run is not None else ""
    stored = (
        "an earlier result whose inputs all hold again is stored"
        if earlier
        else "a result for these exact inputs is stored"
    )
    return (
        f"{', '.join(names)}{more} changed since the last run{last}, and {stored} "
        f"(from the run of {_run_of(served)})"
    )


def _elsewhere(served: ActionResult) -> str | None:
    """What to say of a result another host ran (a teammate's or CI's, through the team
    cache): whose run it was; None for this host's own."""
    from maestro.cache.action import this_host

    if served.provenance.hostname == this_host():
        return None
    return f"the run of {_run_of(served)} stored a result for these exact inputs"


def _run_of(result: ActionResult) -> str:
    """When (and, if not here, where) a stored result's run started."""
    from maestro.cache.action import this_host

    when = result.timing.started_at.astimezone().strftime("%Y-%m-%d %H:%M:%S %Z")
    host = result.provenance.hostname
    return when if host == this_host() else f"{when} on {host}"


def _latest_run(
    cache: Cache, last: LastKeys, planned: PlannedFile
) -> tuple[ActionResult, dict[str, str]] | None:
    """The kept run of a served file that started after the served result's, and its inputs:
    the file ran since with other inputs (serving a result again makes it the baseline of
    the next change, so the last key alone would not tell)."""
    served = planned.cached
    if served is None:
        return None
    found: tuple[ActionResult, dict[str, str]] | None = None
    for hex_, inputs in last.history(planned.target):
        result = cache.get_action(hex_, count=False)
        latest = found[0] if found is not None else served
        if result is not None and result.timing.started_at > latest.timing.started_at:
            found = result, inputs
    return found


def _named_nodes(node: str, known: list[str], target: str, root: Path | None = None) -> list[str]:
    """The tests a node id names among the file's `known` ones (none known: the id as given):
    itself, or those of a parametrized function or a class it names."""
    if not known or node in known:
        return [node]
    found = [n for n in known if n.startswith((node + "[", node + "::"))]
    if not found and root is not None and _defines(root / target, node):
        # a test of the file that its last run left out (-k, -m, node ids): not "not a test"
        raise UnknownTargetError(
            f"{node} has no record: {target}'s last run ran {plural(len(known), 'test')}"
            " of it, not this one (a -k, -m or node-id selection leaves tests out)",
            hint=f"maestro test -- {node} runs and records it",
        )
    if not found:
        raise UnknownTargetError(
            f"{node} is not a test of {target} (its last run had {plural(len(known), 'test')})",
            hint=f"maestro explain {target} lists them",
        )
    return found


def _defines(path: Path, node: str) -> bool:
    """Whether the test file's source defines each function and class a node id names (a
    misspelt class before a test function the file has is no test of it)."""
    import re

    names = [part.partition("[")[0] for part in node.split("::")[1:]]
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    return bool(names) and all(
        name and re.search(rf"\b(?:def|class)\s+{re.escape(name)}\b", text) is not None
        for name in names
    )


def _record_of(planned: PlannedFile, previous: ActionResult | None) -> ActionResult | None:
    return planned.cached or planned.carried or previous


class Refused(Exception):
    """A MaestroError `maestro explain TEST` reports as pytest reports a usage error (the
    typer command: maestro/cli/explain_typer.py); any other MaestroError propagates."""

    def __init__(self, error: MaestroError) -> None:
        super().__init__(error.message)
        self.error = error


def explain_test(
    workspace: Path, test: str, given: Sequence[str], *, record: bool, as_json: bool
) -> None:
    """`maestro explain TEST [-- ARGS]` (``given``: the pytest arguments after `--`) for both
    routes: the lean entry point (maestro/cli/fast.py) and the typer command. Prints only once
    everything is computed: an error leaves nothing printed."""
    from contextlib import closing

    from maestro.cache.keys import changed_inputs
    from maestro.cli.fast import junit_of, paths_of, with_env_addopts
    from maestro.engine import testing
    from maestro.engine.core import Engine

    try:
        rel = _relative(workspace, [test], keep_missing=False)[0]
        target, sep, _ = rel.partition("::")
        with closing(Engine.open(workspace)) as engine:
            # read as `maestro test` reads them: its --junitxml and the paths it selects with
            # are no pytest arguments of the run's key
            with_addopts = with_env_addopts(given, os.environ)
            pytest_args = tuple(paths_of(junit_of(with_addopts)[0], workspace)[1])
            # what `maestro test` (the full run) does with it: the last run's context
            planned = engine.plan(
                testing.Selection(paths=(target,), pytest_args=pytest_args, full_run_answer=True)
            )
            if not planned.files:
                raise UnknownTargetError(f"{test} is not a test file of this workspace")
            # the plan has the files whose import or tests change what it sees before it
            pf = next((f for f in planned.files if f.target == target), planned.files[0])
            previous = testing.last_result(engine.cache, planned.last, pf.target)
            if previous is None and pf.target not in engine.graph.tests:
                # a module of the project: pytest would run it only if named, and nothing has
                raise UnknownTargetError(
                    f"{target} is not a test file: pytest does not collect it "
                    "(python_files, testpaths, --ignore, collect_ignore) and no run has named it",
                    hint=f"maestro impacted {target} lists the tests a change to it can break",
                )
            latest = _latest_run(engine.cache, planned.last, pf) if not pf.runs else None
            # served, yet a later run had other inputs (an edit undone since): what differs
            since_last = changed_inputs(latest[1], pf.key.inputs) if latest else []
            runs_with = [] if pf.runs else _runs_with(engine, pf.target, pytest_args)
    except MaestroError as exc:
        raise Refused(exc) from None
    result = _record_of(pf, previous)
    policy = _decisions(workspace, test=rel)
    nodes = [t.node_id for t in result.tests] if result else []
    if sep:
        try:
            nodes = _named_nodes(_stored_id(rel), nodes, pf.target, workspace)
        except MaestroError as exc:
            raise Refused(exc) from None
    said = pf.describe()
    if runs_with:
        said = f"collected before a file that runs ({_named(runs_with)})"
    rows: list[dict[str, Any]] = []
    for node in nodes:
        runs, sentence = node_verdict(pf, node, since_last, latest[0] if latest else None)
        if runs_with:
            runs, sentence = True, _polluter_sentence(node, pf.target, runs_with)
        row: dict[str, Any] = {"node": node, "runs": runs, "reason": sentence}
        row["opaque"] = _opaque_of(result, node)
        if record and result is not None:
            row.update(_node_record(result, node))
        rows.append(row)
    if as_json:
        payload = {
            "schema": "maestro.explain/1",
            "target": pf.target,
            "file": said,
            "changed": pf.changed,
            "changed_since_last_run": since_last,
            "runs_with": runs_with,
            "nodes": rows,
            "policy": [_policy_row(r) for r in policy],
        }
        console.print_json(json.dumps(payload))
        return
    # node ids, paths and reasons are text, not markup: `test_x[case0]` must keep its `[case0]`
    console.print(f"[bold]{escape(pf.target)}[/]: {escape(said)}", highlight=False)
    if not nodes:
        console.print("  [dim]no per-test record yet: the file runs as a whole[/]")
    for row in rows if record else _grouped(rows):
        style = "cyan" if row["runs"] else "green"
        verdict = "runs  " if row["runs"] else "cached"
        console.print(f"  [{style}]{verdict}[/] {escape(row['reason'])}", highlight=False)
        for note in row["opaque"]:
            console.print(escape(f"      depends on the whole workspace: {note}"), highlight=False)
        if record:
            for name in row.get("executed", []):
                console.print(escape(f"      executed {name}"), highlight=False)
            for path in row.get("reads", []):
                console.print(escape(f"      read {path}"), highlight=False)
    for r in policy:
        console.print(f"  [magenta]policy[/] {escape(r.summary)}", highlight=False)


_SHOWN = 3  # node ids named in a grouped line


def _grouped(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Nodes with the same verdict for the same reason, one line each group, in first-seen
    order: a file of 300 served tests is one line, not 300."""
    groups: dict[tuple[bool, str, tuple[str, ...]], list[dict[str, Any]]] = {}
    for row in rows:
        tail = row["reason"].removeprefix(row["node"]).strip()
        groups.setdefault((row["runs"], tail, tuple(row["opaque"])), []).append(row)
    out: list[dict[str, Any]] = []
    for (runs, tail, opaque), members in groups.items():
        if len(members) == 1:
            out.append(members[0])
            continue
        names = [m["node"].partition("::")[2] or m["node"] for m in members]
        shown = ", ".join(names[:_SHOWN])
        if len(names) > _SHOWN:
            shown += f" and {len(names) - _SHOWN} more"
        verb = tail.replace("is served", "are served", 1).replace(
            "runs with its whole file", "run with their whole file", 1
        )
        if verb.startswith("runs with "):  # _polluter_sentence's
            verb = verb.removeprefix("runs")
            verb = f"run{verb}"
        reason = f"{len(members)} tests ({shown}) {verb}"
        out.append({"node": "", "runs": runs, "reason": reason, "opaque": list(opaque)})
    return out


def _stored_id(node: str) -> str:
    """``node`` as results store it: redacted, as a run redacts (a parametrize id can hold a
    secret; the stored record and what is shown carry its marker instead)."""
    import os

    from maestro.redaction import Redactor

    return str(Redactor.from_environ(os.environ).redact(node))


def _decisions(workspace: Path, **query: str) -> list[DecisionRecord]:
    """The latest policy decisions (those that were not a plain allow, first)."""
    from maestro.policy.gate import decisions_for

    found = decisions_for(workspace, limit=50, **query)
    if "test" in query:
        found = [r for r in found if r.result != "allow" or r.rules][:5]
    return found


def _policy_row(record: DecisionRecord) -> dict[str, Any]:
    return record.model_dump(mode="json", by_alias=True)


def _opaque_of(result: ActionResult | None, node: str) -> list[str]:
    """Why what `node` read is unknown (so any workspace change re-runs it), if it is."""
    if result is None:
        return []
    own = next((list(t.opaque) for t in result.tests if t.node_id == node), [])
    if own or any(t.opaque for t in result.tests):
        return own
    return list(result.opaque)  # no per-test record: the file's reasons


def _node_record(result: ActionResult, node: str) -> dict[str, Any]:
    from maestro.engine.node_level import dotted

    for t in result.tests:
        if t.node_id == node:
            names = result.trace.names(t.executed) if result.trace else []
            return {
                "executed": [dotted(*n.split("::", 1)) for n in names],
                "reads": list(t.reads),
            }
    return {}
