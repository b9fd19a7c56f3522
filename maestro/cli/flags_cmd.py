"""`maestro flags list|get|set|explain`: the feature-flag registry from the terminal.

Values are resolved in process from the same layers the daemon uses (docs/flags.md): the
tenant's overrides as the workspace daemon last polled them, this workspace's and this user's
settings, the configuration's older keys, the defaults. Every command warns about expired
flags on stderr. `set --scope tenant` changes the override on the coordinator (admin key).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from maestro.cli.common import (
    JSON_OPTION,
    ROOT_OPTION,
    console,
    err_console,
    fail_on_error,
    resolve_root,
)
from maestro.errors import WorkspaceError

if TYPE_CHECKING:  # imported when a flags command runs: every other command skips the registry
    from maestro.flags import FlagValue, Registry, Resolution, WorkspaceFlags


class ScopeChoice(StrEnum):
    """The --scope values (maestro.flags.Scope, without importing the registry to parse argv)."""

    USER = "user"
    WORKSPACE = "workspace"
    TENANT = "tenant"


flags_app = typer.Typer(
    no_args_is_help=True, help="Feature flags: list, get, set, explain (owner, scope, expiry)."
)
FLAG_NAME = Annotated[str, typer.Argument(help="flag name, e.g. ml.speculation.enabled")]


@dataclass
class FlagsCli:
    """What the commands resolve against; tests pass their own as the click context's obj."""

    registry: Registry | None = None
    today: date | None = None


def _flags(ctx: typer.Context, root: Path | None, *, need_root: bool = False) -> WorkspaceFlags:
    from maestro.flags import WorkspaceFlags, builtin_registry, today_utc

    deps = ctx.obj if isinstance(ctx.obj, FlagsCli) else FlagsCli()
    workspace: Path | None
    try:
        workspace = resolve_root(root)
    except WorkspaceError:
        if need_root or root is not None:
            raise
        workspace = None
    fixed = deps.today
    flags = WorkspaceFlags(
        workspace,
        deps.registry or builtin_registry(),
        today=(lambda: fixed) if fixed is not None else today_utc,
    )
    for line in flags.warnings():
        err_console.print(f"[yellow]warning:[/] {escape(line)}")
    return flags


def _fmt(value: FlagValue | None) -> str:
    from maestro.flags import format_value

    return format_value(value)


def _print_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, default=str))


def _mark(r: Resolution) -> str:
    return " [red](kill-switch)[/]" if r.killed else ""


@flags_app.command("list")
@fail_on_error
def list_flags(
    ctx: typer.Context,
    root: ROOT_OPTION = None,
    as_json: JSON_OPTION = False,
    daemon: Annotated[
        bool,
        typer.Option(
            "--daemon",
            help="ask the running workspace daemon (its editor layer, its live tenant poll)",
        ),
    ] = False,
) -> None:
    """Every flag with its value here, the layer that set it, its owner and expiry."""
    flags = _flags(ctx, root, need_root=daemon)
    if daemon:
        _daemon_report(flags, as_json=as_json)
        return
    resolved = flags.resolve_all()
    if as_json:
        _print_json(
            {
                "schema": "maestro.flags/1",
                "flags": [r.to_json() for r in resolved.values()],
                "warnings": flags.warnings(),
            }
        )
        return
    table = Table(box=None, pad_edge=False)
    for column in ("flag", "value", "set by", "owner", "expires"):
        table.add_column(column)
    for r in resolved.values():
        expires = r.flag.expires.isoformat()
        table.add_row(
            r.flag.name,
            escape(_fmt(r.value)) + _mark(r),
            r.layer.value,
            r.flag.owner,
            f"[red]{expires} EXPIRED[/]" if r.expired else expires,
        )
    console.print(table)


def _daemon_report(flags: WorkspaceFlags, *, as_json: bool) -> None:
    from maestro.cli import via_daemon
    from maestro.errors import DaemonNotRunningError
    from maestro.flags.report import FLAGS
    from maestro.wire import Empty

    assert flags.root is not None
    report = via_daemon.call(flags.root, FLAGS, Empty(), start=False)
    if report is None:
        raise DaemonNotRunningError(
            "no daemon runs for this workspace", hint="maestro daemon start, or drop --daemon"
        )
    if as_json:
        _print_json(report.model_dump(mode="json"))
        return
    table = Table(box=None, pad_edge=False)
    for column in ("flag", "value", "set by", "owner", "expires"):
        table.add_column(column)
    for f in report.flags:
        shown = escape(_fmt(f.value)) + (" [red](kill-switch)[/]" if f.killed else "")
        expires = f"[red]{f.expires} EXPIRED[/]" if f.expired else f.expires
        table.add_row(f.name, shown, f.layer, f.owner, expires)
    console.print(table)
    t = report.tenant
    console.print(
        f"tenant overrides: {escape(t.state)}"
        + (
            f" ({t.tenant} at {escape(t.url or '')}, every {t.poll_interval_s:g} s)"
            if t.tenant
            else ""
        )
        + (f"; last error: {escape(t.last_error)}" if t.last_error else "")
    )


@flags_app.command("get")
@fail_on_error
def get_flag(
    ctx: typer.Context,
    name: FLAG_NAME,
    root: ROOT_OPTION = None,
    as_json: JSON_OPTION = False,
) -> None:
    """The flag's value here (plain, for scripts), or its resolution as JSON."""
    r = _flags(ctx, root).resolve(name)
    if as_json:
        _print_json(r.to_json())
    else:
        typer.echo(_fmt(r.value))


@flags_app.command("explain")
@fail_on_error
def explain_flag(
    ctx: typer.Context,
    name: FLAG_NAME,
    root: ROOT_OPTION = None,
    as_json: JSON_OPTION = False,
) -> None:
    """Which layer set the value and why, every layer consulted, the declaration, recent changes."""
    flags = _flags(ctx, root)
    r = flags.resolve(name)
    history = flags.audit.read(flag=name, limit=10)
    if as_json:
        data = r.to_json()
        data["audit"] = [e.model_dump(mode="json", exclude_none=True) for e in history]
        _print_json(data)
        return
    f = r.flag
    console.print(f"[bold]{f.name}[/] = [bold]{escape(_fmt(r.value))}[/]{_mark(r)}")
    console.print(f"  because: {escape(r.why)}")
    console.print(f"  {escape(f.description)}")
    kill = "none" if f.kill_value is None else _fmt(f.kill_value)
    console.print(
        f"  owner {escape(f.owner)}; type {escape(f.type_text())}; default "
        f"{escape(_fmt(f.default))}; kill value {escape(kill)}; scopes "
        f"{', '.join(sorted(s.value for s in f.scopes))}; expires {f.expires.isoformat()}"
        + (" [red](EXPIRED)[/]" if r.expired else "")
    )
    console.print("  layers, highest first:")
    for c in r.considered:
        shown = c.setting.describe() if c.setting is not None else "-"
        note = f"  [dim]{escape(c.note)}[/]" if c.note else ""
        chosen = " [green]<- used[/]" if c.layer is r.layer else ""
        console.print(f"    {c.layer.value:<9} {escape(shown):<28} {escape(c.where)}{chosen}{note}")
    if history:
        console.print("  recent local changes:")
        for e in history:
            old = e.old.describe() if e.old else "unset"
            new = e.new.describe() if e.new else "cleared"
            console.print(
                f"    {e.at.isoformat(timespec='seconds')} {escape(e.who)} {e.scope}: "
                f"{escape(old)} -> {escape(new)} ({escape(e.reason)})"
            )


@flags_app.command("set")
@fail_on_error
def set_flag(
    ctx: typer.Context,
    name: FLAG_NAME,
    value: Annotated[
        str | None, typer.Argument(help="the value (omit with --kill or --clear)")
    ] = None,
    reason: Annotated[
        str, typer.Option("--reason", "-m", help="why (kept in the audit trail)")
    ] = "",
    scope: Annotated[
        ScopeChoice | None,
        typer.Option(
            "--scope",
            help="user, workspace (default inside a workspace) or tenant (the coordinator, admin "
            "key from [tool.maestro.remote] api_key_env)",
        ),
    ] = None,
    kill: Annotated[bool, typer.Option("--kill", help="engage the flag's kill-switch")] = False,
    clear: Annotated[
        bool, typer.Option("--clear", help="remove the setting at this scope")
    ] = False,
    root: ROOT_OPTION = None,
    as_json: JSON_OPTION = False,
) -> None:
    """Set a flag (or its kill-switch) at one scope, or clear it there; a reason is required."""
    from maestro.flags import FlagError, Scope

    chosen = Scope(scope.value) if scope is not None else None
    flags = _flags(ctx, root, need_root=chosen in (Scope.WORKSPACE, Scope.TENANT))
    if chosen is None:
        chosen = Scope.WORKSPACE if flags.root is not None else Scope.USER
    flag = flags.registry.get(name)
    if clear and (kill or value is not None):
        raise FlagError("--clear takes no value and no --kill", hint="clear first, then set")
    if value is None and not kill and not clear:
        raise FlagError(
            f"no value given for {name}",
            hint=f"{name} takes {flag.type_text()}; or pass --kill or --clear",
        )
    parsed: FlagValue | None = flag.parse(value) if value is not None else None
    if chosen is Scope.TENANT:
        _set_tenant(flags, name, parsed, kill=kill, clear=clear, reason=reason, as_json=as_json)
        return
    entry = flags.change(name, parsed, scope=chosen, reason=reason, kill=kill, clear=clear)
    if as_json:
        _print_json(entry.model_dump(mode="json", exclude_none=True))
        return
    old = entry.old.describe() if entry.old else "unset"
    new = entry.new.describe() if entry.new else "cleared"
    now = flags.resolve(name)
    console.print(
        f"{name} at {chosen.value} scope: {escape(old)} -> {escape(new)}; in force here: "
        f"{escape(_fmt(now.value))} ({now.layer.value})"
    )


def _set_tenant(
    flags: WorkspaceFlags,
    name: str,
    value: FlagValue | None,
    *,
    kill: bool,
    clear: bool,
    reason: str,
    as_json: bool,
) -> None:
    import asyncio

    from maestro.config import load_settings
    from maestro.coordinator.flags_client import FlagsClient
    from maestro.flags import Scope

    if not clear:
        flags.check_change(name, value, scope=Scope.TENANT, kill=kill, reason=reason)
    elif not reason.strip():
        flags.check_change(name, None, scope=Scope.TENANT, kill=False, reason=reason)
    assert flags.root is not None
    remote, key = load_settings(flags.root).config.remote_and_key(
        key_hint="export an admin API key of the tenant in that variable"
    )

    async def put() -> Any:
        client = FlagsClient(remote.url, remote.tenant, key)
        try:
            return await client.set_flag(name, value=value, kill=kill, clear=clear, reason=reason)
        finally:
            await client.close()

    override = asyncio.run(put())
    if as_json:
        _print_json(
            {
                "flag": name,
                "tenant": remote.tenant,
                "override": override.model_dump(mode="json") if override else None,
            }
        )
        return
    shown = override.describe() if override else "cleared"
    console.print(
        f"{name} for tenant {remote.tenant}: {escape(shown)}; daemons apply it at their next poll"
    )
