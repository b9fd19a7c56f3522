"""The policy at the daemon's gates: may a run start (or wait), which tests it must add or keep,
which results are cached or uploaded. The daemon composes; maestro.policy knows no processes.

Runs are admitted before they join the run queue: a ``queue`` decision waits until a running
run ends and asks again (the waited time is recorded), a ``deny`` refuses the request with the
rule's remediation and retry advice. Decisions are made off the event loop (the engine is
synchronous) and kept in the workspace's decision log.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from maestro.errors import CoordinatorError, MaestroError, PolicyError
from maestro.nodeids import file_of
from maestro.policy.model import CacheInput, RunInput, RunKind, RunningRun, SelectInput
from maestro.policy.protocol import (
    POLICY_DECISIONS,
    POLICY_INCIDENT,
    POLICY_INCIDENT_CURRENT,
    PolicyDecisionsParams,
    PolicyDecisionsResult,
    PolicyIncidentResult,
)
from maestro.tasks import cancel_and_wait

if TYPE_CHECKING:
    from maestro.cache.action import ActionResult
    from maestro.coordinator.client import CoordinatorClient
    from maestro.daemon.app import DaemonApp
    from maestro.daemon.transport.server import RequestContext
    from maestro.engine.core import Engine
    from maestro.engine.testing import Plan, PlannedFile, Selection
    from maestro.policy.bundle import BundleStore, Incident
    from maestro.policy.gate import MarkerScanner, PolicyGate
    from maestro.policy.model import Decision, DecisionRecord
    from maestro.wire import Empty, PredictiveInfo

log = logging.getLogger(__name__)

SELECTED_IN_INPUT = 100
DEFAULT_REFRESH_S = 60.0
SOURCES_POLL_S = 1.0
"""How often the daemon looks (a few stat calls) whether the workspace's policy changed, so it
recompiles and decides the recent plans' serve inputs again before the next run asks
(``.maestro/`` is not watched: the watcher leaves it out of the graph's changes)."""


class PolicyService:
    def __init__(self, app: DaemonApp) -> None:
        self.app = app
        self.root = app.root
        self._gate: PolicyGate | None = None
        self._markers: MarkerScanner | None = None
        self._open_lock = asyncio.Lock()
        self._running: dict[str, RunningRun] = {}
        self._ended = asyncio.Condition()
        self.bundles: BundleStore | None = None
        self._client: CoordinatorClient | None = None
        self._client_for: tuple[str, str, str] | None = None
        self._kept_local_for: tuple[str, str, str] | None = None  # told once per key
        self._sent = 0  # decision log position already sent to the coordinator
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._notes: dict[str, list[str]] = {}  # execution id -> decisions not a plain allow
        self._stamp: tuple[tuple[str, int, int], ...] = ()  # workspace policy files in force
        self._reloading: asyncio.Task[None] | None = None
        self._watch: asyncio.Task[None] | None = None

    async def gate(self) -> PolicyGate | None:
        """The workspace's gate, opened once (None, logged, when the log cannot be opened)."""
        async with self._open_lock:
            if self._gate is None:
                from maestro.policy.gate import MarkerScanner, PolicyGate
                from maestro.policy.model import prepare

                try:
                    gate = await asyncio.to_thread(
                        PolicyGate.for_workspace, self.root, isolate=True, resident=True
                    )
                    await asyncio.to_thread(self._open_bundles, gate)
                    await asyncio.to_thread(prepare)
                except PolicyError:
                    log.exception("policy gate unavailable: decisions are not enforced")
                    return None
                # each new set (a workspace edit, a team bundle) decides the recent plans'
                # serve inputs in the background: the next plan finds them decided
                gate.engine.warm_on_install = True
                # a set that changed while no daemon ran: its plans' served files, kept by
                # the last daemon, are decided now
                await asyncio.to_thread(gate.engine.start_warm)
                self._gate = gate
                self._markers = MarkerScanner(self.root)
                self._stamp = await asyncio.to_thread(self._sources_stamp)
            else:
                await self._reload_if_changed(self._gate)
            return self._gate

    def _sources_stamp(self) -> tuple[tuple[str, int, int], ...]:
        """What the workspace layer is made of, by name, mtime and size (a few stat calls)."""
        from maestro.policy.sources import WORKSPACE_DIR

        paths = [self.root / "pyproject.toml", self.root / "maestro.toml"]
        folder = self.root / WORKSPACE_DIR
        if folder.is_dir():
            paths += sorted(folder.glob("*.rego"))
        out = []
        for path in paths:
            try:
                st = path.stat()
            except OSError:
                continue
            out.append((path.name, st.st_mtime_ns, st.st_size))
        return tuple(out)

    async def _reload_if_changed(self, gate: PolicyGate) -> None:
        """Recompile when the workspace's policy changed; a set that does not compile (or
        crashes rego-cpp in the child that checks it) leaves the last good one in force. A
        reload in progress (started by the poll or another request) is waited for: a decision
        after a change is the new policy's."""
        while True:
            running = self._reloading
            if running is not None and not running.done():
                await asyncio.shield(running)
                continue
            stamp = await asyncio.to_thread(self._sources_stamp)
            if stamp == self._stamp:
                return
            if self._reloading is not running:  # another caller started one meanwhile
                continue
            self._stamp = stamp
            self._reloading = asyncio.create_task(self._reload(gate), name="policy-reload")

    async def _reload(self, gate: PolicyGate) -> None:
        try:
            policy = await asyncio.to_thread(gate.engine.reload)
        except MaestroError as exc:  # logged by the engine, kept in last_error
            log.error("workspace policy not reloaded, the last good one stays in force: %s", exc)
            return
        except Exception:
            log.exception("workspace policy not reloaded, the last good one stays in force")
            return
        log.info("workspace policy reloaded (%s)", policy.digest)

    async def _watch_sources(self) -> None:
        """Reload (and so decide the recent serve inputs again) soon after the workspace's
        policy changed, not at the next run."""
        while True:
            await asyncio.sleep(SOURCES_POLL_S)
            gate = self._gate
            if gate is None:
                continue
            try:
                await self._reload_if_changed(gate)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("policy change check failed")

    async def stop(self, app: DaemonApp) -> None:
        task, self._task = self._task, None
        await cancel_and_wait(task)
        watch, self._watch = self._watch, None
        await cancel_and_wait(watch)
        reloading, self._reloading = self._reloading, None
        await cancel_and_wait(reloading)
        if self._client is not None:
            await self._client.close()
        if self._gate is not None:
            self._gate.engine.warm_on_install = False  # a warm-up in progress stops
            await asyncio.to_thread(self._gate.engine.wait_warm, 5.0)
            self._gate.close()

    # --- team bundle and decision upload -----------------------------------------------------

    async def startup(self, app: DaemonApp) -> None:
        """Start the coordinator sync in the background: the daemon answers at once."""
        self._loop = asyncio.get_running_loop()
        self._task = asyncio.create_task(self._sync_forever(), name="policy-sync")
        self._watch = asyncio.create_task(self._watch_sources(), name="policy-watch")

    def _open_bundles(self, gate: PolicyGate) -> None:
        """The team layer: the persisted last good bundle goes in force (no network needed)."""
        keys = self._trusted_keys(self._bundle_settings(gate))
        if not keys:
            return
        from maestro.paths import workspace_state_dir
        from maestro.policy.bundle import BundleStore

        folder = workspace_state_dir(self.root) / "policy-bundle"
        self.bundles = BundleStore(folder, gate.engine, keys)
        self.bundles.listeners.append(self._forward_incident)
        self.bundles.warm_start()

    def _bundle_settings(self, gate: PolicyGate) -> dict[str, object]:
        policy = gate.engine.current
        config = policy.sources.data.get("workspace", {}) if policy is not None else {}
        found = config.get("bundle", {}) if isinstance(config, dict) else {}
        return found if isinstance(found, dict) else {}

    def _trusted_keys(self, settings: Mapping[str, object]) -> dict[str, object]:
        """``[tool.maestro.policy.bundle] keys = {kid = "path/to/public.pem"}`` (two at once
        while keys rotate)."""
        keys: dict[str, object] = {}
        table = settings.get("keys", {})
        if not isinstance(table, dict) or not table:
            return keys  # no team bundle: PyJWT and cryptography stay unloaded
        from maestro.policy.bundle import load_public_key

        for kid, path in table.items():
            try:
                keys[str(kid)] = load_public_key(self.root / str(path))
            except PolicyError as exc:
                log.error("policy bundle key %s not loaded: %s", kid, exc)
        return keys

    def _forward_incident(self, incident: Incident) -> None:
        # listeners run in the thread that applied the bundle; the server lives on the loop
        loop = self._loop
        if loop is not None:
            loop.call_soon_threadsafe(self.app.broadcast, POLICY_INCIDENT, incident)

    async def _sync_forever(self) -> None:
        # the gate (rego-cpp, the workspace's policy) opens after the daemon's first answer: a
        # run asks for it at once, a query after a restart does not need it. Opened at the
        # first run instead, its import and compile would delay that run.
        await self.app.first_answer()
        gate = await self.gate()
        if gate is None:
            return
        refresh_s = float(str(self._bundle_settings(gate).get("refresh_s", DEFAULT_REFRESH_S)))
        while True:
            try:
                await self.sync_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("policy sync with the coordinator failed")
            await asyncio.sleep(refresh_s)

    async def sync_once(self) -> None:
        """Fetch the team bundle (by ETag) and send the decisions not sent yet."""
        from maestro.config import load_settings
        from maestro.errors import PolicyBundleError

        loaded = await asyncio.to_thread(load_settings, self.root)
        remote = loaded.config.remote
        key = os.environ.get(remote.api_key_env) if remote is not None else None
        if remote is None or not key:
            return
        client = await self._coordinator(remote.url, remote.tenant, key)
        client.enforce = loaded.config.secrets.redaction.enforce
        try:
            token = await client.token()
        except MaestroError as exc:
            log.warning("policy sync: no coordinator token (%s); the held policy stays", exc)
            return
        if self.bundles is not None:
            with contextlib.suppress(PolicyBundleError):  # quarantined: the incident is raised
                await self.bundles.fetch(remote.url, remote.tenant, token)
        await self._send_decisions(client, remote.url, remote.tenant)

    async def _coordinator(self, url: str, tenant: str, key: str) -> CoordinatorClient:
        from maestro.coordinator.client import CoordinatorClient

        if self._client is None or self._client_for != (url, tenant, key):
            if self._client is not None:
                await self._client.close()
            self._client = CoordinatorClient(url, tenant, key, timeout_s=10)
            self._client_for = (url, tenant, key)
        return self._client

    async def _send_decisions(self, client: CoordinatorClient, url: str, tenant: str) -> None:
        from maestro.cache.remote import WRITE_ROLES
        from maestro.coordinator.client import EgressBlockedError

        gate = self._gate
        if gate is None or gate.log is None:
            return
        info = client.token_info
        if info is not None and info.role not in WRITE_ROLES:  # a developer's read key
            self._say_kept_local(info.role)
            return
        last, records = await asyncio.to_thread(gate.log.after, self._sent)
        if not records:
            return
        # records hold inputs redacted by known values only: the full redactor (detectors too)
        # runs here, and the client's last scan right before they leave
        payload = client.redactor.redact_json(
            {
                "decisions": [
                    r.model_dump(mode="json", by_alias=True, exclude={"summary"}) for r in records
                ]
            }
        )
        try:
            await client.post_decisions(payload)
        except EgressBlockedError as exc:  # would be blocked on every retry: dropped, counted
            log.warning("policy decisions dropped: %s", exc.message)
        except CoordinatorError as exc:
            if exc.status == 403:  # this key may not write them: no retry will change that
                self._say_kept_local(info.role if info is not None else None)
                return
            log.warning("policy decisions not sent: %s", exc)
            return
        except MaestroError as exc:
            log.warning("policy decisions not sent: %s", exc)
            return
        self._sent = last

    def _say_kept_local(self, role: str | None) -> None:
        """Once per key: its role may not send decisions, which stay in the local log."""
        if self._kept_local_for == self._client_for:
            return
        self._kept_local_for = self._client_for
        log.info(
            "policy decisions stay local: the API key's role (%s) may not send them to the "
            "coordinator (a read-write key does)",
            role or "unknown",
        )

    # --- run ---------------------------------------------------------------------------------

    async def admit(
        self, execution_id: str, paths: list[str], *, kind: RunKind = "interactive",
        on_queued: Callable[[int], object] | None = None,
    ) -> None:  # fmt: skip
        """Wait while the policy queues this run; raise PolicyDeniedError when it denies."""
        from maestro.policy.gate import run_denied

        gate = await self.gate()
        if gate is None:
            return
        queued: DecisionRecord | None = None
        since = time.monotonic()
        while True:
            inp = self._run_input(gate, execution_id, paths, kind)
            decision, record = await asyncio.to_thread(gate.decide, inp, targets=paths)
            if decision.result != "queue":
                self._note(record)
            if decision.result == "deny":
                self._notes.pop(execution_id, None)
                raise run_denied(decision, record, execution_id)
            if decision.result == "allow":
                break
            if queued is None:
                queued = record
                log.info("run %s %s", execution_id, record.summary)
                if on_queued is not None:
                    on_queued(len(self._running))
            async with self._ended:
                await self._ended.wait()
        if queued is not None and gate.log is not None:
            queued.waited_ms = int((time.monotonic() - since) * 1000)
            await asyncio.to_thread(gate.log.update, queued)
            self._note(queued)
        self._running[execution_id] = RunningRun(
            execution_id=execution_id, kind=kind, paths=paths, started_ms=_now_ms()
        )

    async def refuse_speculation(self, execution_id: str, budget_s: float) -> str | None:
        """Admit a speculative run now or say why not (it never waits: a later save retries)."""
        refused = await self.refuse_unattended(execution_id, "speculative", budget_s)
        return refused[0] if refused is not None else None

    async def refuse_unattended(
        self, execution_id: str, kind: RunKind, budget_s: float | None = None
    ) -> tuple[str, int | None] | None:
        """Admit a run nobody waits for (speculative, background) now, or say why not and in
        how many ms to ask again (None: unknown). It never waits: its caller retries."""
        gate = await self.gate()
        if gate is None:
            return None
        inp = self._run_input(gate, execution_id, [], kind)
        inp.speculation_budget_s = budget_s
        decision, record = await asyncio.to_thread(gate.decide, inp)
        # not counted as running: it holds the run lock and yields to explicit runs anyway
        if decision.result == "allow":
            return None
        return record.summary, decision.retry_after_ms

    async def finished(self, execution_id: str) -> None:
        self._running.pop(execution_id, None)
        async with self._ended:
            self._ended.notify_all()

    def _run_input(
        self, gate: PolicyGate, execution_id: str, paths: list[str], kind: RunKind
    ) -> RunInput:
        return gate.run_input(execution_id, paths, kind, list(self._running.values()))

    # --- select ------------------------------------------------------------------------------

    async def select(
        self,
        engine: Engine,
        planned: Plan,
        selection: Selection,
        environ: Mapping[str, str] | None,
        execution_id: str,
    ) -> Decision | None:
        """The plan's policy gates: force-include (:meth:`_select`), then the cache decision
        ``serve`` for every file the plan would serve from the cache (:meth:`serve`)."""
        gate = await self.gate()
        if gate is None:
            return None
        decision = await self._select(gate, engine, planned, selection, environ, execution_id)
        await self.serve(planned, execution_id, ci=bool((environ or {}).get("CI")))
        return decision

    async def serve(self, planned: Plan, execution_id: str, *, ci: bool = False) -> list[str]:
        """Ask ``cache`` / ``serve`` for each file the plan serves from the cache; a file it
        denies runs for real (its whole file). Only decisions that are not a plain allow are
        recorded: a plan serves hundreds of files, each asked at every run (the policy set's
        memo answers the repeats). Returns the targets that now run."""
        from maestro.policy.gate import deny_serving

        gate, scanner = self._gate, self._markers
        if gate is None or scanner is None or all(f.reason is not None for f in planned.files):
            return []
        records = await asyncio.to_thread(deny_serving, gate, planned, execution_id, scanner, ci=ci)
        for record in records:
            self._note(record)
        denied = [t for r in records if r.result != "allow" for t in r.targets]
        if denied:
            log.info("policy: %d cached results not served, run for real", len(denied))
        return denied

    async def _select(
        self,
        gate: PolicyGate,
        engine: Engine,
        planned: Plan,
        selection: Selection,
        environ: Mapping[str, str] | None,
        execution_id: str,
    ) -> Decision:
        """Add the test files force-include rules name (planned with the same options); the
        decision also names what is quarantined (:func:`maestro.policy.quarantine.apply`)."""
        from dataclasses import replace

        from maestro.engine.changes import from_git

        changed = {c.path for c in selection.changes or ()}
        changed |= {c for f in planned.files for c in f.changed}
        if selection.impacted and selection.changes is None:
            try:
                found = await asyncio.to_thread(from_git, engine.graph.root, selection.since)
                changed |= {c.path for c in found}
            except Exception:
                log.debug("no git changes for the select decision", exc_info=True)
        selected = [f.target for f in planned.files]
        # rego-cpp converts the whole input per decision (~0.1 ms a string): a large plan's
        # file list is kept in the record, not sent to Rego
        shown = selected if len(selected) <= SELECTED_IN_INPUT else []
        marked = await asyncio.to_thread(self._marked, gate, selected)
        inp = SelectInput(
            execution_id=execution_id, changed=sorted(changed), selected=shown, marked=marked
        )
        decision, record = await asyncio.to_thread(gate.decide, inp, targets=selected)
        self._note(record)
        paths = [p for p in decision.targets("include") if (engine.graph.root / p).exists()]
        if not paths:
            return decision
        more = replace(selection, paths=tuple(paths), impacted=False, since=None, changes=None)
        try:
            added = await asyncio.to_thread(engine.plan, more, environ=environ)
        except MaestroError as exc:
            log.warning("force-included paths not planned: %s", exc)
            return decision
        have = set(selected)
        new = [f for f in added.files if f.target not in have]
        planned.files.extend(new)
        log.info("policy added %d test files under %s", len(new), ", ".join(paths))
        return decision

    def _marked(self, gate: PolicyGate, targets: list[str]) -> dict[str, list[str]]:
        """Tests carrying a marker the settings quarantine (none scanned when none is)."""
        from maestro.policy.quarantine import marked_tests

        policy = gate.engine.current
        merged = policy.data["config"].get("merged", {}) if policy is not None else {}
        wanted = set(merged.get("quarantine_markers") or ())
        if not wanted or self._markers is None:
            return {}
        out: dict[str, list[str]] = {}
        for target in targets:
            if wanted & set(self._markers.markers(target)):
                out.update(marked_tests(self.root, target, wanted))
        return out

    def _note(self, record: DecisionRecord) -> None:
        """Keep the sentence of a decision that was not a plain allow, for the run's result."""
        if record.result != "allow" or record.rules:
            if len(self._notes) > 256:  # uploads decided after their run ended: bounded
                self._notes.pop(next(iter(self._notes)))
            notes = self._notes.setdefault(record.execution_id, [])
            if (text := record.summary) not in notes:
                notes.append(text)

    def notes(self, execution_id: str) -> list[str]:
        """The run's decisions that were not a plain allow (taken: asked once, at its end)."""
        return self._notes.pop(execution_id, [])

    async def never_skip(
        self,
        before: list[PlannedFile],
        planned: Plan,
        info: PredictiveInfo,
        execution_id: str,
    ) -> PredictiveInfo:
        """Put back the files predictive mode skipped that a never-skip rule keeps."""
        gate = await self.gate()
        if gate is None or self._markers is None:
            return info
        kept_now = {f.target for f in planned.files}
        skipped = [f.target for f in before if f.target not in kept_now]
        skipped += [f.target for f in planned.files if f.deselect]
        if not skipped:
            return info
        markers = await asyncio.to_thread(self._markers.of, skipped)
        if not markers:
            return info
        inp = SelectInput(
            execution_id=execution_id, mode="predictive", skipped=sorted(markers),
            markers=markers,
        )  # fmt: skip
        decision, record = await asyncio.to_thread(gate.decide, inp, targets=skipped)
        self._note(record)
        keep = set(decision.targets("keep"))
        if not keep:
            return info
        for f in planned.files:
            if f.target in keep:
                f.deselect = ()
        planned.files.extend(f for f in before if f.target in keep and f.target not in kept_now)
        order = {f.target: i for i, f in enumerate(before)}
        planned.files.sort(key=lambda f: order.get(f.target, len(order)))
        note = f"kept by policy (never_skip): {', '.join(sorted(keep))}"
        return info.model_copy(
            update={
                "skipped": [r for r in info.skipped if r.target not in keep],
                "skipped_tests": [t for t in info.skipped_tests if file_of(t.node_id) not in keep],
                "note": f"{info.note}; {note}" if info.note else note,
            }
        )

    # --- cache -------------------------------------------------------------------------------

    def cache_gate(
        self, execution_id: str, *, ci: bool = False
    ) -> tuple[Callable[[PlannedFile], bool], Callable[[str, ActionResult], bool]] | None:
        """(may this file's result be stored, may this result be uploaded), for one run; None
        before the gate is open. Called from the run's threads."""
        gate, scanner = self._gate, self._markers
        if gate is None or scanner is None:
            return None

        def decide(action: str, target: str) -> bool:
            inp = CacheInput(
                execution_id=execution_id, action=action,
                target=target, markers=scanner.markers(target), ci=ci,
            )  # fmt: skip
            decision, record = gate.decide(inp, targets=[target])
            self._note(record)
            return decision.result == "allow"

        def store(planned: PlannedFile) -> bool:
            return decide("store", planned.target)

        def upload(action_hex: str, result: ActionResult) -> bool:
            target = next((file_of(t.node_id) for t in result.tests), "")
            return decide("upload", target)

        return store, upload

    # --- explain -----------------------------------------------------------------------------

    async def decisions(
        self, params: PolicyDecisionsParams, ctx: RequestContext
    ) -> PolicyDecisionsResult:
        gate = await self.gate()
        if gate is None:
            return PolicyDecisionsResult(decisions=[], error="the policy gate is unavailable")
        found = await asyncio.to_thread(
            gate.decisions, execution_id=params.execution_id, test=params.test, limit=params.limit
        )
        current = gate.engine.current
        error = gate.engine.last_error
        return PolicyDecisionsResult(
            decisions=found,
            policy=current.digest if current is not None else "",
            error=str(error) if error is not None else None,
        )

    async def current_incident(self, params: Empty, ctx: RequestContext) -> PolicyIncidentResult:
        """The open bundle incident: the gate is opened first, so a warm start's is known."""
        await self.gate()
        bundles = self.bundles
        return PolicyIncidentResult(incident=bundles.incident if bundles is not None else None)


def _now_ms() -> int:
    return int(time.time() * 1000)


def install(app: DaemonApp) -> PolicyService:
    service = PolicyService(app)
    app.provide(PolicyService, service, start=service.startup, stop=service.stop)
    app.register(POLICY_DECISIONS, service.decisions)
    app.register(POLICY_INCIDENT_CURRENT, service.current_incident)
    return service
