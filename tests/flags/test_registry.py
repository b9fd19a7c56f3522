"""The registry, precedence, local settings and their audit trail, in process (real files)."""

from __future__ import annotations

import json
import os
import stat
import threading
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from maestro.cli.flags_cmd import FlagsCli, flags_app
from maestro.flags import (
    BUILTIN_FLAGS,
    ExpiredFlagError,
    Flag,
    FlagError,
    FlagSetting,
    FlagValueError,
    Inputs,
    Layer,
    Registry,
    Scope,
    TenantFlags,
    UnknownFlagError,
    WorkspaceFlags,
    builtin_registry,
)
from maestro.flags.resolve import resolve
from maestro.flags.store import AuditEntry, AuditLog, SettingsFile

TODAY = date(2026, 12, 3)
REG = builtin_registry()
SPEC = REG.get("ml.speculation.enabled")


def test_every_builtin_flag_is_governed() -> None:
    for flag in BUILTIN_FLAGS:
        assert flag.owner and flag.description and flag.scopes
        assert flag.expires > TODAY, f"{flag.name} has expired: renew or remove it"
        flag.check(flag.default)
    names = [f.name for f in REG]
    assert names == sorted(names) and len(set(names)) == len(names)


def test_unknown_names_suggest_close_ones_and_values_say_the_type() -> None:
    with pytest.raises(UnknownFlagError) as err:
        REG.get("ml.speculaton.enabled")
    assert "did you mean ml.speculation.enabled" in str(err.value.hint)
    with pytest.raises(FlagValueError, match="takes a boolean"):
        SPEC.parse("maybe")
    assert SPEC.parse("on") is True and SPEC.parse("0") is False
    threshold = REG.get("ml.predictive.threshold")
    with pytest.raises(FlagValueError, match=r"a number >= 0 and <= 1, not 1\.5"):
        threshold.parse("1.5")
    with pytest.raises(FlagValueError, match="one of tests, files, off"):
        REG.get("ml.fail-first").parse("fast")
    with pytest.raises(ValueError, match="declared twice"):
        Registry([SPEC, SPEC])


def inputs(**layers: object) -> Inputs:
    return Inputs(**layers)  # type: ignore[arg-type]


def test_precedence_tenant_editor_workspace_config_user_default() -> None:
    name = SPEC.name
    full = {
        "tenant": {name: FlagSetting(value=False)},
        "editor": {name: True},
        "workspace": {name: FlagSetting(value=False)},
        "config": {name: True},
        "user": {name: FlagSetting(value=False)},
    }
    order = ["tenant", "editor", "workspace", "config", "user"]
    for i, layer in enumerate(order):
        present = {k: v for k, v in full.items() if k in order[i:]}
        r = resolve(SPEC, inputs(**present), TODAY)
        assert r.layer == Layer(layer) and not r.killed, layer
        assert r.value == (full[layer][name].value if layer not in ("editor", "config")  # type: ignore[attr-defined]
                           else full[layer][name])  # fmt: skip
    r = resolve(SPEC, inputs(), TODAY)
    assert r.layer is Layer.DEFAULT and r.value is False and "default" in r.why


def test_a_kill_switch_at_any_scope_wins() -> None:
    name = SPEC.name
    tenant_on = {name: FlagSetting(value=True, reason="rollout")}
    for layer in ("workspace", "user"):
        killed = {name: FlagSetting(kill=True, reason="too hot", set_by="ana")}
        r = resolve(SPEC, inputs(tenant=tenant_on, **{layer: killed}), TODAY)
        assert r.killed and r.value is False and r.layer == Layer(layer)
        assert "kill-switch engaged" in r.why and "'too hot'" in r.why and "ana" in r.why
    fail_first = REG.get("ml.fail-first")
    r = resolve(fail_first, inputs(tenant={fail_first.name: FlagSetting(kill=True)}), TODAY)
    assert r.value == "off" and r.killed


def test_bad_or_out_of_scope_values_are_ignored_and_explained() -> None:
    narrow = Flag(
        name="x.narrow", owner="t", description="d", kind="bool", default=False,
        scopes=frozenset({Scope.TENANT}), expires=date(2030, 1, 1),
    )  # fmt: skip
    r = resolve(narrow, inputs(user={"x.narrow": FlagSetting(value=True)}), TODAY)
    assert r.layer is Layer.DEFAULT
    note = next(c.note for c in r.considered if c.layer is Layer.USER)
    assert "cannot be set at user scope" in note
    r = resolve(SPEC, inputs(workspace={SPEC.name: FlagSetting(value="yes")}), TODAY)
    assert r.layer is Layer.DEFAULT
    assert "takes a boolean" in next(c.note for c in r.considered if c.layer is Layer.WORKSPACE)


@pytest.fixture
def workspace(tmp_path: Path, state: Path) -> Path:
    root = tmp_path / "ws"
    root.mkdir()
    (root / "pyproject.toml").write_text(
        "[project]\nname = 'x'\n\n[tool.maestro.ml]\nfail-first = \"files\"\n\n"
        "[tool.maestro.ml.speculation]\nenabled = true\n"
    )
    return root


def test_config_keys_are_the_config_layer_and_local_sets_are_audited(
    workspace: Path, state: Path
) -> None:
    flags = WorkspaceFlags(workspace, today=lambda: TODAY)
    r = flags.resolve("ml.fail-first")
    assert r.value == "files" and r.layer is Layer.CONFIG and "pyproject.toml" in r.why
    assert flags.value("ml.speculation.enabled") is True

    flags.change("ml.fail-first", "off", scope=Scope.USER, reason="mine")
    assert flags.value("ml.fail-first") == "files"  # the workspace's config outranks the user
    entry = flags.change("ml.fail-first", "tests", scope=Scope.WORKSPACE, reason="try it")
    assert flags.resolve("ml.fail-first").layer is Layer.WORKSPACE
    assert entry.old is None and entry.new is not None and entry.new.value == "tests"
    entry = flags.change("ml.fail-first", None, scope=Scope.WORKSPACE, reason="done", clear=True)
    assert entry.old is not None and entry.old.value == "tests" and entry.new is None
    flags.change("ml.speculation.enabled", None, scope=Scope.USER, kill=True, reason="laptop hot")
    assert flags.resolve("ml.speculation.enabled").killed

    trail = flags.audit.read()
    assert [(e.flag, e.scope, e.reason) for e in trail] == [
        ("ml.fail-first", "user", "mine"),
        ("ml.fail-first", "workspace", "try it"),
        ("ml.fail-first", "workspace", "done"),
        ("ml.speculation.enabled", "user", "laptop hot"),
    ]
    assert all(e.who and e.at.tzinfo is not None for e in trail)
    for path in (flags.audit.path, state / "flags" / "user.json"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    assert stat.S_IMODE((state / "flags").stat().st_mode) == 0o700


def test_changes_are_refused_with_reasons(workspace: Path, state: Path) -> None:
    flags = WorkspaceFlags(workspace, today=lambda: TODAY)
    with pytest.raises(FlagError, match="reason is required"):
        flags.change("ml.fail-first", "off", scope=Scope.USER, reason="  ")
    with pytest.raises(FlagValueError):
        flags.change("ml.fail-first", "sometimes", scope=Scope.USER, reason="r")
    with pytest.raises(FlagError, match="tenant scope cannot be set from here"):
        flags.change("ml.fail-first", "off", scope=Scope.TENANT, reason="r")
    no_kill = Flag(
        name="x.plain", owner="t", description="d", kind="bool", default=True,
        scopes=frozenset(Scope), expires=date(2030, 1, 1),
    )  # fmt: skip
    custom = WorkspaceFlags(workspace, Registry([no_kill]), today=lambda: TODAY)
    with pytest.raises(FlagError, match="has no kill-switch"):
        custom.change("x.plain", None, scope=Scope.USER, kill=True, reason="r")
    late = WorkspaceFlags(workspace, today=lambda: date(2027, 7, 1))
    with pytest.raises(ExpiredFlagError, match="expired on 2027-06-30"):
        late.change("ml.fail-first", "off", scope=Scope.USER, reason="r")
    assert late.audit.read() == []


def test_the_audit_trail_is_append_only_and_bounded(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "audit.jsonl", max_bytes=4096)
    first_inode = None
    for i in range(200):
        log.append(
            AuditEntry(
                at=datetime.now(UTC), who="ana", flag="ml.fail-first", scope="user",
                target="user ana", new=FlagSetting(value="off"), reason=f"change {i}",
            )
        )  # fmt: skip
        if first_inode is None:
            first_inode = log.path.stat().st_ino
    assert log.path.stat().st_size <= 4096 and log.previous.stat().st_size <= 4096
    entries = log.read(limit=1000)
    assert entries[-1].reason == "change 199"
    reasons = [int(e.reason.split()[1]) for e in entries]
    assert reasons == sorted(reasons) and len(reasons) < 200  # the oldest generation dropped


def test_concurrent_sets_lose_nothing(tmp_path: Path) -> None:
    path = tmp_path / "flags.json"

    def writer(n: int) -> None:
        for i in range(10):
            SettingsFile(path).update(f"f{n}.k{i}", FlagSetting(value=True))

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(SettingsFile(path).read()) == 60


def test_the_tenant_layer_comes_from_the_daemon_saved_copy(workspace: Path) -> None:
    from maestro.flags.store import write_tenant_cache

    write_tenant_cache(
        workspace,
        TenantFlags(
            tenant="team",
            overrides={"ml.fail-first": FlagSetting(value="off", reason="flaky order")},
        ),
    )
    r = WorkspaceFlags(workspace, today=lambda: TODAY).resolve("ml.fail-first")
    assert r.value == "off" and r.layer is Layer.TENANT and "tenant team" in r.why


# --- the CLI -------------------------------------------------------------------------------------


def cli(*args: str, today: date = TODAY) -> tuple[int, str, str]:
    app = typer.Typer()
    app.add_typer(flags_app, name="flags")
    result = CliRunner().invoke(app, ["flags", *args], obj=FlagsCli(today=today))
    return result.exit_code, result.stdout, result.stderr


def test_cli_list_get_set_explain(workspace: Path) -> None:
    root = ["--root", str(workspace)]
    code, out, _ = cli("list", *root, "--json")
    assert code == 0
    listed = {f["name"]: f for f in json.loads(out)["flags"]}
    assert listed["ml.fail-first"]["value"] == "files"
    assert listed["ml.fail-first"]["layer"] == "config"

    code, out, err = cli("set", "ml.predictive.threshold", "0.2", *root, "--reason", "fewer skips")
    assert code == 0, err
    assert "unset -> 0.2" in out and "0.2 (workspace)" in out
    code, out, _ = cli("get", "ml.predictive.threshold", *root)
    assert (code, out.strip()) == (0, "0.2")
    code, out, _ = cli("explain", "ml.predictive.threshold", *root)
    assert code == 0 and "set at workspace layer" in out and "fewer skips" in out
    code, out, _ = cli("explain", "ml.predictive.threshold", *root, "--json")
    data = json.loads(out)
    assert data["layer"] == "workspace" and data["audit"][-1]["reason"] == "fewer skips"

    code, _, err = cli("get", "ml.fail_first", *root)
    assert code == 2 and "did you mean ml.fail-first" in err
    code, _, err = cli("set", "ml.predictive.threshold", "lots", *root, "--reason", "r")
    assert code == 2 and "takes a number >= 0 and <= 1" in err
    code, _, err = cli("set", "ml.predictive.threshold", "0.1", *root)
    assert code == 2 and "reason is required" in err
    code, _, err = cli("set", "ml.predictive.threshold", *root, "--reason", "r")
    assert code == 2 and "no value given" in err


def test_cli_warns_about_expired_flags(workspace: Path) -> None:
    root = ["--root", str(workspace)]
    late = date(2027, 7, 1)
    code, out, err = cli("list", *root, today=late)
    assert code == 0
    assert "warning: flag ml.speculation.enabled expired on 2027-06-30" in err
    assert "owner (ml)" in err or "(ml)" in err
    assert "EXPIRED" in out
    code, out, _ = cli("list", *root, "--json", today=late)
    assert any("ml.fail-first expired" in w for w in json.loads(out)["warnings"])
    code, _, err = cli("set", "ml.fail-first", "off", *root, "--reason", "r", today=late)
    assert code == 2 and "expired on 2027-06-30: it can no longer be set" in err
    code, _, err = cli("get", "cas.mirror.enabled", *root, today=late)
    assert code == 0 and "cas.mirror.enabled" not in err  # expires at the end of 2027


def test_flag_files_are_private(workspace: Path, state: Path) -> None:
    WorkspaceFlags(workspace, today=lambda: TODAY).change(
        "cas.mirror.enabled", False, scope=Scope.WORKSPACE, reason="offline week"
    )
    found = [p for p in state.rglob("flags.json")]
    assert found and all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in found)
    assert all(stat.S_IMODE(os.stat(p.parent).st_mode) == 0o700 for p in found)


def test_the_redaction_guardrail_reads_its_config_key_and_has_no_kill_switch(
    tmp_path: Path, state: Path
) -> None:
    root = tmp_path / "ws2"
    root.mkdir()
    (root / "maestro.toml").write_text("[secrets.redaction]\nenforce = false\n")
    flags = WorkspaceFlags(root, today=lambda: TODAY)
    r = flags.resolve("secrets.redaction.enforce")
    assert r.value is False and r.layer is Layer.CONFIG and "maestro.toml" in r.why
    assert not r.flag.has_kill_switch
    with pytest.raises(FlagError, match="has no kill-switch"):
        flags.change("secrets.redaction.enforce", None, scope=Scope.USER, kill=True, reason="r")
