"""The daemon fetches the team's model from the coordinator by itself.

Every `every_s` (`[tool.maestro.remote] team_model_every_s`, default 600 s; 0: only `maestro
model pull`) the tenant's published model is fetched on the sync engine's loop, verified
(digest, skops' trusted types, the daemon's own load: coordinator/team_model.py) and installed
beside the workspace's own models; a model that fails a check is refused and the workspace keeps
ranking with its own. No fetch while the coordinator asks for backoff (Retry-After). What the
last fetch did and which model ranks are in `maestro status` (`remote.team_model`).
"""

from __future__ import annotations

import concurrent.futures
import logging
import time
from dataclasses import KW_ONLY, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from maestro.errors import MaestroError
from maestro.tasks import run_every
from maestro.wire import TeamModelCounts, TeamModelStatus

if TYPE_CHECKING:
    from maestro.cache.remote import RemoteSync

log = logging.getLogger(__name__)

EVERY_S = 600.0
FETCH_TIMEOUT_S = 120.0


@dataclass(eq=False)
class TeamModelFetcher:
    """Fetches and installs the team model every `every_s` (see the module docstring)."""

    engine: RemoteSync
    model_dir: Path
    _: KW_ONLY
    every_s: float = EVERY_S
    timeout_s: float = FETCH_TIMEOUT_S
    counters: TeamModelCounts = field(default_factory=TeamModelCounts, init=False)

    def status(self) -> TeamModelStatus:
        return TeamModelStatus(every_s=self.every_s, **dict(self.counters))

    def rank(self) -> None:
        """Which model ranks now (blocking: it loads the model as ranking will)."""
        from maestro.model.team import ranking_model

        ranking = ranking_model(self.model_dir)
        self.counters.ranking, self.counters.description = ranking.source, ranking.describe()

    def fetch(self) -> str:
        """One fetch (blocking: waits for the engine's loop); returns what it did."""
        from maestro.model.team import (
            UntrustedTeamModelError,
            fetch_team_model,
            team_dir,
        )
        from maestro.model.train import ModelStore

        c = self.counters
        c.fetches += 1
        c.last_fetch_at = time.time()
        outcome: str
        if self.engine.backoff_until() is not None:
            outcome = "skipped: the coordinator asked to back off"
        else:
            before = ModelStore(team_dir(self.model_dir)).current_version()
            future = self.engine.submit(fetch_team_model(self.engine.client, self.model_dir))
            if future is None:
                outcome = "skipped: the sync is stopping"
            else:
                try:
                    info = future.result(timeout=self.timeout_s)
                except concurrent.futures.TimeoutError:
                    future.cancel()
                    outcome = f"failed: no answer within {self.timeout_s:g} s"
                except UntrustedTeamModelError as exc:
                    outcome = f"refused: {exc.message}"
                except MaestroError as exc:
                    outcome = f"failed: {exc.message}"
                except OSError as exc:
                    outcome = f"failed: {exc}"
                else:
                    if info is None:
                        outcome = "none published"
                    elif info.version != before:
                        outcome = f"installed v{info.version} (digest {info.digest[:12]})"
                    else:
                        outcome = f"unchanged (v{info.version})"
        c.last_fetch = outcome
        if outcome.startswith(("refused", "failed")):
            log.warning("team model fetch %s", outcome)
        else:
            log.info("team model fetch: %s", outcome)
        self.rank()
        return outcome

    async def run_forever(self) -> None:
        """A fetch soon after the start, then every `every_s`, until cancelled."""
        await run_every(self.every_s, self.fetch, "team model fetch")
