"""The policy's gates for a run made without the daemon (`maestro test --no-daemon`, a
terminal's first run, CI): the same ``run`` admission and ``serve`` and ``store`` decisions the
daemon asks, so that a run is refused, and a result served and stored, alike either way.

Opening the policy costs a second or more (regopy, compiling the workspace's rules in a child),
as much as a small suite: it is opened only when a decision could deny. The built-in cache rules
deny ``serve`` and ``store`` for their ``no_cache_markers`` only (``flaky``), so without
workspace rules or settings a file that carries none of them is allowed without asking, and a
run whose files carry none never opens it. With rules or settings of its own, every run asks
(its serve and store decisions), so the policy is opened in the background as the run starts:
the child's check and the compile overlap the run's planning instead of following it.
"""

from __future__ import annotations

import logging
import threading
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

from maestro.errors import MaestroError
from maestro.policy.markers import MARKERS_FILE, MEMO_DIR, MarkerScanner
from maestro.policy.sources import WORKSPACE_DIR, builtin_defaults, workspace_config

if TYPE_CHECKING:
    from maestro.engine.testing import Plan, PlannedFile
    from maestro.policy.gate import PolicyGate

log = logging.getLogger(__name__)


def has_workspace_policy(root: Path) -> bool:
    """Settings (``[tool.maestro.policy]``) or rules (``.maestro/policy/*.rego``) of its own."""
    folder = root / WORKSPACE_DIR
    return bool(workspace_config(root)) or (folder.is_dir() and any(folder.glob("*.rego")))


class LocalGates:
    """One run's gates; close it (``contextlib.closing``)."""

    def __init__(self, root: Path, *, ci: bool = False) -> None:
        self.root = root
        self.ci = ci
        self.execution_id = uuid.uuid4().hex
        self.scanner = MarkerScanner(root)
        try:
            self._every = has_workspace_policy(root)
        except MaestroError:  # unreadable settings: ask, and let opening the policy report it
            self._every = True
        self._marks = frozenset(builtin_defaults().get("no_cache_markers", ()))
        self._gate: PolicyGate | None = None
        self._failed = False
        self._lock = threading.Lock()
        self._opening: threading.Thread | None = None
        if self._every:  # every served or stored file will be asked: open it meanwhile
            self._opening = threading.Thread(
                target=self._open_ahead, name="policy-open", daemon=True
            )
            self._opening.start()

    def _asks(self, target: str, digest: str | None = None) -> bool:
        return self._every or not self._marks.isdisjoint(self.scanner.found(target, digest))

    def _open_ahead(self) -> None:
        try:
            self._open()
        except Exception:  # the caller opens it again and gets the error itself
            log.debug("opening the policy ahead failed", exc_info=True)

    def _open(self) -> PolicyGate | None:
        with self._lock:
            if self._gate is None and not self._failed:
                from maestro.policy.gate import PolicyGate

                try:
                    self._gate = PolicyGate.for_workspace(self.root, isolate=True)
                except MaestroError as exc:  # a warning, as the daemon's cache gates do
                    log.warning("the policy's cache gates are not applied: %s", exc)
                    self._failed = True
            return self._gate

    def admit(self, paths: list[str]) -> None:
        """Raise PolicyDeniedError when the workspace's policy denies this run, as the daemon
        would. Only the workspace's own rules and settings can: the built-in ``run`` rules
        window background and speculative runs and cap concurrent ones, and this run is
        neither. A ``queue`` answer waits for runs this process cannot see: it runs."""
        if not self._every:
            return
        gate = self._open()
        if gate is None:
            return
        from maestro.policy.gate import run_denied

        inp = gate.run_input(self.execution_id, paths, "interactive")
        decision, record = gate.decide(inp, targets=paths)
        if decision.result == "deny":
            raise run_denied(decision, record, self.execution_id)
        if decision.result == "queue":
            log.info(
                "run %s: %s; no run is known here to wait for", self.execution_id, record.summary
            )

    def serve(self, planned: Plan) -> None:
        """Make the files whose cached result the policy will not serve run for real."""
        from maestro.paths import workspace_state_dir

        # scans by content digest (the plan's key inputs), kept for the next run: a run would
        # otherwise read every test file it serves to look for markers
        self.scanner.keep_in(workspace_state_dir(self.root) / MEMO_DIR / MARKERS_FILE)
        served = [f for f in planned.files if f.reason is None]
        asked = any(self._asks(f.target, f.key.inputs.get(f.target)) for f in served)
        self.scanner.save()
        if not asked:
            return
        gate = self._open()
        if gate is not None:
            from maestro.policy.gate import deny_serving

            deny_serving(gate, planned, self.execution_id, self.scanner, ci=self.ci)

    def store(self, planned: PlannedFile) -> bool:
        """Whether this file's new result may be stored (``Engine.store_gate``)."""
        if not self._asks(planned.target):
            return True
        gate = self._open()
        if gate is None:
            return True
        from maestro.policy.model import CacheInput

        inp = CacheInput(
            execution_id=self.execution_id,
            action="store",
            target=planned.target,
            markers=self.scanner.markers(planned.target),
            ci=self.ci,
        )
        decision, _ = gate.decide(inp, targets=[planned.target])
        return decision.result == "allow"

    def close(self) -> None:
        if self._opening is not None:
            self._opening.join()
        with self._lock:
            if self._gate is not None:
                self._gate.close()
                self._gate = None
