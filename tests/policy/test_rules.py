"""The rules the issue names, as real Rego (built-in and workspace modules) through the engine."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from maestro.policy import CacheInput, PluginInput, PolicyEngine, RunInput, SelectInput
from maestro.policy.model import RunningRun
from maestro.policy.windows import window_states

WINDOWS = """
[tool.maestro.policy.windows.day]
tz = "Europe/Berlin"
start = "07:00"
end = "19:00"
days = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
kinds = ["background", "speculative"]
"""


def _ms(dt: datetime) -> int:
    return int(dt.timestamp() * 1000)


def _run(engine: PolicyEngine, root: Path, now: datetime, kind: str = "background") -> RunInput:
    from maestro.policy.sources import workspace_config

    windows = window_states(workspace_config(root), now)
    return RunInput(kind=kind, now_ms=_ms(now), windows=windows)  # type: ignore[arg-type]


def test_window_denies_background_run_with_retry_at_next_start_across_dst(
    workspace: Callable[..., Path],
) -> None:
    root = workspace(WINDOWS)
    engine = PolicyEngine.open(root)
    berlin = ZoneInfo("Europe/Berlin")
    # Saturday 28 March 2026, 20:00 CET; clocks go forward that night (02:00 -> 03:00)
    now = datetime(2026, 3, 28, 20, 0, tzinfo=berlin)
    decision = engine.decide(_run(engine, root, now))
    assert decision.result == "deny"
    [rule] = decision.fired("deny")
    assert rule.rule == "windows.closed"
    assert "start it yourself" in rule.remediation
    # the window opens Sunday 07:00 CEST = 05:00 UTC: 10 h after 20:00 CET (19:00 UTC), not 11
    opens = datetime(2026, 3, 29, 5, 0, tzinfo=UTC)
    assert decision.retry_after_ms == _ms(opens) - _ms(now) == 10 * 3600 * 1000
    # autumn (25 October 2026, clocks go back): 07:00 CET = 06:00 UTC, 12 h after 20:00 CEST
    autumn = datetime(2026, 10, 24, 20, 0, tzinfo=berlin)
    d2 = engine.decide(_run(engine, root, autumn))
    assert d2.retry_after_ms == 12 * 3600 * 1000


def test_window_open_allows_and_interactive_is_not_windowed(
    workspace: Callable[..., Path],
) -> None:
    root = workspace(WINDOWS)
    engine = PolicyEngine.open(root)
    noon = datetime(2026, 3, 29, 12, 0, tzinfo=ZoneInfo("Europe/Berlin"))
    assert engine.decide(_run(engine, root, noon)).result == "allow"
    night = datetime(2026, 3, 29, 23, 0, tzinfo=ZoneInfo("Europe/Berlin"))
    assert engine.decide(_run(engine, root, night, kind="interactive")).result == "allow"


CAP_MODULE = """# METADATA
# title: Tests that share the database
package maestro.workspace.run

import rego.v1

# METADATA
# title: One run at a time under tests/db
# custom:
#   id: caps.db_serial
#   remediation: tests/db share one database; wait for the running suite or run elsewhere
queue contains {"rule": "caps.db_serial", "msg": "at most 1 concurrent run under tests/db"} if {
\tsome p in input.paths
\tstartswith(p, "tests/db/")
\tsome r in input.running
\tsome q in r.paths
\tstartswith(q, "tests/db/")
}
"""


def test_cap_from_a_workspace_module_queues_the_second_run_and_says_why(
    workspace: Callable[..., Path],
) -> None:
    root = workspace("", {"caps.rego": CAP_MODULE})
    engine = PolicyEngine.open(root)
    first = RunInput(execution_id="a", paths=["tests/db/test_orm.py"], now_ms=1)
    assert engine.decide(first).result == "allow"
    running = [RunningRun(execution_id="a", kind="interactive", paths=first.paths, started_ms=1)]
    second = RunInput(execution_id="b", paths=["tests/db/test_query.py"], running=running, now_ms=2)
    decision = engine.decide(second)
    assert decision.result == "queue"
    [rule] = decision.fired("queue")
    assert (rule.rule, rule.layer) == ("caps.db_serial", "workspace")
    assert rule.message == "at most 1 concurrent run under tests/db"
    assert rule.remediation.startswith("tests/db share one database")
    assert rule.title == "One run at a time under tests/db"
    other = RunInput(paths=["tests/api/test_x.py"], running=running, now_ms=3)
    assert engine.decide(other).result == "allow"


def test_cap_from_settings_uses_the_builtin_rule(workspace: Callable[..., Path]) -> None:
    root = workspace('[tool.maestro.policy.caps.db_serial]\npath = "tests/db"\nmax = 1\n')
    engine = PolicyEngine.open(root)
    running = [RunningRun(execution_id="a", kind="interactive", paths=[], started_ms=1)]
    decision = engine.decide(RunInput(paths=["tests/db/t.py"], running=running, now_ms=2))
    assert decision.result == "queue"
    assert decision.fired("queue")[0].rule == "caps.db_serial"
    assert "the run starts by itself" in decision.fired("queue")[0].remediation


def test_force_include_selects_a_test_the_graph_did_not(workspace: Callable[..., Path]) -> None:
    root = workspace(
        '[tool.maestro.policy.force_include.security]\nwhen = ["src/auth/"]\n'
        'include = ["tests/security/"]\n'
    )
    engine = PolicyEngine.open(root)
    inp = SelectInput(changed=["src/auth/tokens.py"], selected=["tests/test_tokens.py"])
    decision = engine.decide(inp)
    # a path Maestro expands to the test files under it (the daemon test checks the plan)
    assert decision.targets("include") == ["tests/security/"]
    assert decision.fired("include")[0].rule == "force_include.security"
    unrelated = inp.model_copy(update={"changed": ["src/other.py"]})
    assert engine.decide(unrelated).targets("include") == []


def test_never_skip_keeps_a_critical_test_in_predictive_mode(
    workspace: Callable[..., Path],
) -> None:
    engine = PolicyEngine.open(workspace())
    inp = SelectInput(
        mode="predictive",
        skipped=["tests/test_pay.py", "tests/test_misc.py"],
        markers={"tests/test_pay.py": ["critical"], "tests/test_misc.py": ["slow"]},
    )
    decision = engine.decide(inp)
    assert decision.targets("keep") == ["tests/test_pay.py"]
    assert decision.fired("keep")[0].rule == "never_skip.marker"
    assert engine.decide(inp.model_copy(update={"mode": "normal"})).targets("keep") == []


def test_flaky_results_are_not_cached(workspace: Callable[..., Path]) -> None:
    engine = PolicyEngine.open(workspace())
    flaky = CacheInput(action="store", target="tests/t.py", markers=["flaky"])
    decision = engine.decide(flaky)
    assert decision.result == "deny"
    assert decision.fired("deny")[0].rule == "cache.no_cache_marker"
    assert engine.decide(flaky.model_copy(update={"markers": []})).result == "allow"


def test_only_ci_uploads_when_the_team_says_so(workspace: Callable[..., Path]) -> None:
    root = workspace("[tool.maestro.policy]\nupload_ci_only = true\n")
    engine = PolicyEngine.open(root)
    laptop = CacheInput(action="upload", target="tests/t.py", ci=False)
    decision = engine.decide(laptop)
    assert decision.result == "deny"
    assert decision.fired("deny")[0].rule == "cache.ci_only_upload"
    assert engine.decide(laptop.model_copy(update={"ci": True})).result == "allow"
    # storing locally is not an upload
    assert engine.decide(laptop.model_copy(update={"action": "store"})).result == "allow"
    # without the setting, anyone may upload
    assert PolicyEngine.open(workspace("")).decide(laptop).result == "allow"


def test_an_unsigned_plugin_is_refused_unless_the_workspace_lists_it(
    workspace: Callable[..., Path],
) -> None:
    unsigned = PluginInput(name="myplug", version="1.0", sha256="ab" * 32, signed=False)
    decision = PolicyEngine.open(workspace()).decide(unsigned)
    assert decision.result == "deny"
    [rule] = decision.fired("deny")
    assert rule.rule == "plugin.unsigned" and rule.message == "plugin myplug 1.0 is not signed"
    assert "allow_unsigned_plugins" in rule.remediation
    listed = PolicyEngine.open(
        workspace('[tool.maestro.policy]\nallow_unsigned_plugins = ["myplug"]\n')
    )
    assert listed.decide(unsigned).result == "allow"
    assert listed.decide(unsigned.model_copy(update={"name": "other"})).result == "deny"
    signed = unsigned.model_copy(update={"name": "other", "signed": True, "signer": "acme"})
    assert listed.decide(signed).result == "allow"
