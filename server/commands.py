"""``workspace/executeCommand`` commands, all prefixed ``maestro.``. Run commands answer at once
with the run's id (``RunAccepted``); progress goes through work-done progress and
``maestro/runProgress``, failures through diagnostics, the tests' results through
``maestro/testResults`` batches and the outcome through ``maestro/runFinished`` (the run's counts
and files)."""

from __future__ import annotations

from typing import Any

from lsprotocol import types

from maestro import nodeids
from maestro.errors import UnknownTargetError
from maestro.server import methods
from maestro.server.discovery import discover, flatten
from maestro.server.impacted import (
    FORMER_WHY,
    cache_stats_of,
    explain,
    impacted_targets,
    target_of,
)
from maestro.server.methods import (
    CacheStatsInfo,
    CancelResult,
    ExplainResult,
    RestartResult,
    RunAccepted,
    RunKind,
    StatusInfo,
    command,
)
from maestro.server.runs import manager
from maestro.server.server import MaestroServer, Workspace
from maestro.wire import RunTestsParams


def _str_arg(args: tuple[Any, ...], index: int) -> str | None:
    if len(args) > index and isinstance(args[index], str) and args[index]:
        return str(args[index])
    if len(args) > index and isinstance(args[index], dict):
        value = args[index].get("uri") or args[index].get("id") or args[index].get("target")
        return str(value) if value else None
    return None


def _default_ws(ls: MaestroServer, root: str | None = None) -> Workspace:
    return ls.ws_named(root)


def run_paths(
    ls: MaestroServer,
    ws: Workspace,
    paths: list[str],
    *,
    kind: RunKind,
    label: str,
    pytest_args: list[str] | None = None,
) -> RunAccepted:
    run = manager(ls).start(
        ws, RunTestsParams(paths=paths, pytest_args=pytest_args or []), kind=kind, label=label
    )
    return run.accepted()


def _unsaved_only(ls: MaestroServer, ws: Workspace, node: str) -> str | None:
    """Why ``node`` cannot run when it is a test of its file's unsaved text only (pytest runs the
    saved file, which does not have it); None otherwise."""
    rel = node.split("::", 1)[0]
    text = ls.buffers(ws).get(rel)
    if text is None:
        return None
    try:
        saved = (ws.root / rel).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        saved = ""
    base = nodeids.base(node)
    if base not in {i.nodeid for i in flatten(discover(rel, text))}:
        return None
    if base in {i.nodeid for i in flatten(discover(rel, saved))}:
        return None
    return (
        f"{base} is not in the saved {rel}: save it to run this test (pytest runs the saved files)"
    )


def run_impacted_of(
    ls: MaestroServer, ws: Workspace, uri: str | None, *, kind: RunKind = "impacted"
) -> RunAccepted:
    """Start a run of what ``uri`` (or, without one, the working tree and every unsaved
    buffer) impacts; the selection is made inside the run, so the command answers at once.
    The daemon is given the changed files, as `maestro test --impacted` gives them: it runs
    the impacted test files in the full run's order. Named one by one, in the rows' order
    (nearest first), they ran in an order of their own, whose results are shown but not
    cached."""

    async def prepare() -> RunTestsParams | str:
        report = await impacted_targets(
            ls, ws, [uri] if uri else None, None, cache_state=False, tests_only=True
        )
        if not report["impacted"]:
            # an extension's C source reaches no test until it is rebuilt: say so
            return "; ".join(["no impacted tests", *report["notes"]])
        # absolute: the daemon reads a relative path against its own folder first, and a
        # deleted file is not there to say it belongs to the workspace
        changed = [str(ws.root / c.path) for c in report["changes"]]
        # test files that used a deleted file and ran again without it: no record names it
        # now, so they are named themselves (their results are served when current)
        changed += [
            str(ws.root / r["target"]) for r in report["impacted"] if r["why"] == FORMER_WHY
        ]
        return RunTestsParams(paths=changed, impacted=True)

    label = "run impacted tests" if kind == "impacted" else "run impacted tests (on save)"
    return manager(ls).start(ws, None, kind=kind, label=label, prepare=prepare).accepted()


def register(server: MaestroServer) -> None:
    @command(server, methods.RUN_NODE)
    async def run_node(ls: MaestroServer, *args: Any) -> RunAccepted:
        """Arguments: node id (``tests/test_a.py::test_x`` or ``<file uri>::test_x``), [doc uri]."""
        node = _str_arg(args, 0)
        if not node:
            raise UnknownTargetError("maestro.runNode needs a node id")
        uri = _str_arg(args, 1)
        if uri and not node.startswith("file:"):
            ws = ls.ws_of_uri(uri)[0]
        else:
            ws, _, node = target_of(ls, node)
        note = _unsaved_only(ls, ws, node)
        if note is not None:

            async def prepare() -> RunTestsParams | str:
                ls.window_show_message(
                    types.ShowMessageParams(
                        type=types.MessageType.Warning, message=f"Maestro: {note}"
                    )
                )
                return note

            label = f"run {node}"
            return manager(ls).start(ws, None, kind="node", label=label, prepare=prepare).accepted()
        return run_paths(ls, ws, [node], kind="node", label=f"run {node}")

    @command(server, methods.RUN_FILE)
    async def run_file(ls: MaestroServer, *args: Any) -> RunAccepted:
        """Arguments: file URI (or a path relative to the first workspace folder)."""
        target = _str_arg(args, 0)
        if not target:
            raise UnknownTargetError("maestro.runFile needs a file")
        ws, rel, _ = target_of(ls, target)
        return run_paths(ls, ws, [rel], kind="file", label=f"run {rel}")

    @command(server, methods.RUN_IMPACTED)
    async def run_impacted(ls: MaestroServer, *args: Any) -> RunAccepted:
        """Arguments: [document URI]. Without one: the working tree plus every unsaved buffer."""
        uri = _str_arg(args, 0)
        ws = ls.ws_of_uri(uri)[0] if uri else _default_ws(ls)
        return run_impacted_of(ls, ws, uri)

    @command(server, methods.RUN_ALL)
    async def run_all(ls: MaestroServer, *args: Any) -> RunAccepted:
        """Arguments: [workspace root path or URI]."""
        ws = _default_ws(ls, _str_arg(args, 0))
        return run_paths(ls, ws, [], kind="all", label="run all tests")

    @command(server, methods.CANCEL)
    async def cancel(ls: MaestroServer, *args: Any) -> CancelResult:
        """Arguments: [run id]; without one every active run is cancelled."""
        return {"cancelled": manager(ls).cancel(_str_arg(args, 0))}

    @command(server, methods.CACHE_STATS_COMMAND)
    async def cache_stats(ls: MaestroServer, *args: Any) -> CacheStatsInfo:
        return await cache_stats_of(_default_ws(ls, _str_arg(args, 0)))

    @command(server, methods.EXPLAIN_COMMAND)
    async def explain_cmd(ls: MaestroServer, *args: Any) -> ExplainResult:
        """Arguments: target (node id, relative path or URI), [input path]."""
        target = _str_arg(args, 0)
        if not target:
            raise UnknownTargetError("maestro.explain needs a target")
        result = await explain(ls, target, _str_arg(args, 1))
        ls.log_to_client(
            f"maestro explain {result['target']}: {result['decision']}\n" + result["text"]
        )
        return result

    @command(server, methods.STATUS_COMMAND)
    async def status_cmd(ls: MaestroServer, *args: Any) -> StatusInfo:
        from maestro.server.status import status

        return await status(ls)

    @command(server, methods.RESTART)
    async def restart(ls: MaestroServer, *args: Any) -> RestartResult:
        """Stop the daemon of a workspace (default: the first folder); the next query starts it."""
        import asyncio

        from maestro.daemon.lifecycle import stop_daemon

        ws = _default_ws(ls, _str_arg(args, 0))
        pid = await asyncio.to_thread(stop_daemon, ws.root)
        client = await ws.link.client()
        return {"root": str(ws.root), "stopped": pid, "pid": client.info.pid}
