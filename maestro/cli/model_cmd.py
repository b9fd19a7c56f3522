"""`maestro model ...`: the speculation model (telemetry export, training, evaluation, status)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from maestro.cli.common import JSON_OPTION, ROOT_OPTION, fail_on_error, resolve_root

if TYPE_CHECKING:
    from maestro.coordinator.client import CoordinatorClient

model_app = typer.Typer(
    help="The speculation model: which tests a change is likely to break.",
    no_args_is_help=True,
)
out = Console(highlight=False)
err = Console(stderr=True, highlight=False)

DAYS_OPTION = Annotated[
    float, typer.Option("--days", help="sliding window of telemetry, in days", min=0.01)
]


@model_app.command()
@fail_on_error
def export(
    output: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="file to write (.csv or .parquet); default stdout CSV"),
    ] = None,
    days: DAYS_OPTION = 14.0,
    raw: Annotated[
        bool, typer.Option("--raw", help="the raw run log (no features), one row per test")
    ] = False,
    root: ROOT_OPTION = None,
) -> None:
    """Write the training set (features + label per run and test) of the sliding window."""
    from maestro.model.dataset import replay, write_csv, write_parquet
    from maestro.model.telemetry import Telemetry

    ws = resolve_root(root)
    with Telemetry.for_workspace(ws) as tel:
        if raw:
            if output is None:
                n = tel.export_raw_csv(sys.stdout, days=days)
            else:
                with output.open("w", newline="") as f:
                    n = tel.export_raw_csv(f, days=days)
        else:
            runs = list(tel.runs(days=days))
            data, _ = replay(runs)
            if output is not None and output.suffix == ".parquet":
                try:
                    import pyarrow  # type: ignore[import-not-found, import-untyped, unused-ignore]  # noqa: F401
                except ImportError:
                    err.print("[bold red]error:[/] Parquet needs pyarrow; write .csv instead")
                    raise typer.Exit(2) from None
                n = write_parquet(str(output), data, runs)
            elif output is None:
                n = write_csv(sys.stdout, data, runs)
            else:
                with output.open("w", newline="") as f:
                    n = write_csv(f, data, runs)
    if output is not None:
        err.print(f"wrote {n} rows ({days:g} days) to {output}")


@model_app.command()
@fail_on_error
def train(
    days: DAYS_OPTION = 14.0,
    force: Annotated[
        bool, typer.Option("--force", help="retrain even without enough new samples")
    ] = False,
    root: ROOT_OPTION = None,
    as_json: JSON_OPTION = False,
) -> None:
    """Train on the sliding window and make the result the current model."""
    from maestro.model.dataset import replay
    from maestro.model.telemetry import Telemetry
    from maestro.model.train import ModelStore, should_retrain
    from maestro.model.train import train as fit

    ws = resolve_root(root)
    store = ModelStore.for_workspace(ws)
    with Telemetry.for_workspace(ws) as tel:
        runs = list(tel.runs(days=days))
    data, _ = replay(runs)
    current = store.info()
    new = len(data.y) - (current.samples if current else 0)
    if not force and not should_retrain(current, new):
        msg = (
            f"not retraining: {max(new, 0)} new samples since v{current.version if current else 0}"
        )
        out.print_json(json.dumps({"trained": False, "reason": msg})) if as_json else out.print(msg)
        return
    info = store.save(fit(data.X, data.y))
    if as_json:
        done = {"trained": True, "version": info.version, "kind": info.kind,
                "samples": info.samples, "positives": info.positives}  # fmt: skip
        out.print_json(json.dumps(done))
        return
    out.print(
        f"model v{info.version}: {info.kind} on {info.samples} samples "
        f"({info.positives} failures) from {len(runs)} runs"
    )


@model_app.command(name="eval")
@fail_on_error
def eval_(
    days: DAYS_OPTION = 14.0,
    holdout: Annotated[
        float,
        typer.Option("--holdout", help="share of the latest runs held out", min=0.05, max=0.9),
    ] = 0.3,
    root: ROOT_OPTION = None,
    as_json: JSON_OPTION = False,
) -> None:
    """Train on the older runs of the window and score the held-out newer ones."""
    from maestro.model.dataset import evaluate, replay
    from maestro.model.telemetry import Telemetry
    from maestro.model.train import train as fit

    ws = resolve_root(root)
    with Telemetry.for_workspace(ws) as tel:
        runs = list(tel.runs(days=days))
    cut = int(len(runs) * (1 - holdout))
    if cut < 1 or cut >= len(runs):
        err.print(f"[bold red]error:[/] {len(runs)} runs in the window: too few to hold any out")
        raise typer.Exit(1)
    train_set, hist = replay(runs[:cut])
    test_set, _ = replay(runs[cut:], hist)
    predictor = fit(train_set.X, train_set.y)
    ev = evaluate(predictor, test_set)
    result = {"kind": predictor.info.kind, "train_rows": len(train_set.y), **ev.as_dict()}
    if as_json:
        out.print_json(json.dumps(result))
        return
    table = Table(title=f"held-out {len(runs) - cut} runs ({predictor.info.kind} model)")
    for col in ("ordering", "APFD", f"recall, top {ev.fraction:.0%}"):
        table.add_column(col)
    for name in ev.apfd:
        table.add_row(name, f"{ev.apfd[name]:.3f}", f"{ev.recall_top[name]:.1%}")
    out.print(table)


@model_app.command()
@fail_on_error
def status(root: ROOT_OPTION = None, as_json: JSON_OPTION = False) -> None:
    """The current model, which model ranks (team or own), telemetry counts and speculation."""
    from maestro.coordinator.team_model import ranking_model
    from maestro.model.telemetry import Telemetry
    from maestro.model.train import ModelStore

    ws = resolve_root(root)
    store = ModelStore.for_workspace(ws)
    info = store.info()
    ranking = ranking_model(store.dir)
    with Telemetry.for_workspace(ws) as tel:
        counts = tel.counts()
        used, total = tel.speculation_usage()
    data: dict[str, object] = {
        "model": None if info is None else {
            "version": info.version, "kind": info.kind, "samples": info.samples,
            "positives": info.positives, "created": info.created, "digest": info.digest,
        },
        "versions": store.versions(),
        "telemetry": counts,
        "speculation": {"used": used, "total": total},
        "ranking": {"source": ranking.source, "description": ranking.describe()},
    }  # fmt: skip
    if as_json:
        out.print_json(json.dumps(data))
        return
    if info is None:
        out.print("model: none yet (ranking uses the history heuristic); `maestro model train`")
    else:
        out.print(
            f"model: v{info.version} {info.kind}, {info.samples} samples "
            f"({info.positives} failures), digest {info.digest[:12] or '-'}"
        )
    out.print(f"ranking: {ranking.describe()}")
    out.print(
        f"telemetry: {counts['runs']} runs ({counts['speculative_runs']} speculative), "
        f"{counts['results']} results, {counts['failures']} failures"
    )
    if total:
        out.print(f"speculation: {used}/{total} results used ({used / total:.0%})")


def _team_client(root: Path | None) -> tuple[CoordinatorClient, Path]:
    """The workspace's coordinator client (to use with ``async with``; it blocks bodies that hold
    a secret as ``secrets.redaction.enforce`` says) and its model folder."""
    from maestro.config import load_settings
    from maestro.coordinator.client import CoordinatorClient
    from maestro.model.train import ModelStore

    ws = resolve_root(root)
    config = load_settings(ws).config
    remote, key = config.remote_and_key()
    client = CoordinatorClient(
        remote.url, remote.tenant, key, enforce=config.secrets.redaction.enforce
    )
    return client, ModelStore.for_workspace(ws).dir


@model_app.command()
@fail_on_error
def pull(root: ROOT_OPTION = None) -> None:
    """Fetch the team model published on the coordinator (verified; it then ranks tests)."""
    import asyncio

    from maestro.coordinator.team_model import fetch_team_model, ranking_model

    client, model_dir = _team_client(root)

    async def fetch() -> object:
        async with client:
            return await fetch_team_model(client, model_dir)

    if asyncio.run(fetch()) is None:
        out.print("no team model is published for this tenant")
    out.print(f"ranking: {ranking_model(model_dir).describe()}")


async def push_team_model(client: CoordinatorClient, model_dir: Path) -> dict[str, object]:
    """Publish the newest model in ``model_dir`` as the tenant's team model (admin key): the
    .skops goes up as a CAS blob after the last scan (it is not rewritten: its digest is its
    name), the metadata redacted and last-scanned like every other body."""
    from dataclasses import asdict

    from maestro.coordinator.client import EgressBlockedError
    from maestro.errors import ConfigError
    from maestro.model.train import ModelStore

    store = ModelStore(model_dir)
    info = store.info()
    if info is None:
        raise ConfigError("no model to publish", hint="train one first: `maestro model train`")
    data = (store.dir / f"model-v{info.version}.skops").read_bytes()
    vetted = client.redactor.vet(data, enforce=client.enforce)
    if vetted.blob is None:
        raise EgressBlockedError(f"model v{info.version}", vetted.kinds)
    digest = await client.put_cas(vetted.blob)
    meta = client.redactor.redact_json(
        {"sha256": digest.hash, "size": len(data), "info": asdict(info)}
    )
    published: dict[str, object] = json.loads(await client.publish_team_model(meta))
    return published


@model_app.command()
@fail_on_error
def push(root: ROOT_OPTION = None) -> None:
    """Publish this workspace's model as the team model on the coordinator (an admin key)."""
    import asyncio

    client, model_dir = _team_client(root)

    async def send() -> dict[str, object]:
        async with client:
            return await push_team_model(client, model_dir)

    published = asyncio.run(send())
    out.print(f"published team model {str(published.get('sha256', ''))[:12]}")
