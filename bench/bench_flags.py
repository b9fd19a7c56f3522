"""What feature flags cost: resolution on the daemon's hot path, a tenant poll, the CLI.

    python -m bench.bench_flags [--write | --no-write] [--rounds 2000]

- Resolution: every flag resolved from all layers, cold (`WorkspaceFlags`: reads the user and
  workspace files and the pyproject each time, as the CLI does) and as the daemon does it
  (`FlagsService.apply`: local inputs memoised on the files' stat, what every run, save and
  status pays).
- A tenant poll: `FlagsClient.poll_flags` against a coordinator on loopback (real aiohttp, LMDB
  store, 5 overrides): a changed answer (200 with body) and an unchanged one (304 on ETag).
- The CLI: `maestro flags get ml.fail-first` in a fresh process, beside `maestro --help`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import REPO, git_rev, machine, run_timed, table, today, write_section

SECTION = "Feature flags: resolution, tenant poll, CLI"
MAESTRO = str(Path(sys.executable).parent / "maestro")


def _median_us(fn: object, rounds: int) -> float:
    call = fn  # a zero-argument callable
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        call()  # type: ignore[operator]
        samples.append(time.perf_counter() - start)
    return statistics.median(samples) * 1e6


def resolution(root: Path, rounds: int) -> list[list[object]]:
    from maestro.config import load_settings
    from maestro.daemon.address import DaemonPaths
    from maestro.daemon.app import DaemonApp
    from maestro.daemon.services.flags import FlagsService
    from maestro.flags import Scope, WorkspaceFlags

    flags = WorkspaceFlags(root)
    flags.change("ml.predictive.threshold", 0.1, scope=Scope.WORKSPACE, reason="bench")
    flags.change("ml.fail-first", "files", scope=Scope.USER, reason="bench")
    cold = _median_us(flags.resolve_all, max(50, rounds // 10))
    service = FlagsService(DaemonApp(DaemonPaths.for_root(root)), poll_s=60)
    config = load_settings(root).config
    warm = _median_us(lambda: service.apply(config), rounds)
    return [
        ["resolve every flag, files read (CLI)", f"{cold:.0f} µs"],
        ["apply flags to settings, memoised (daemon, per run/save/status)", f"{warm:.1f} µs"],
    ]


async def _poll(base: Path, rounds: int) -> list[list[object]]:
    from aiohttp.test_utils import TestClient, TestServer

    from maestro.coordinator.app import RUNNER_KWARGS, create_app
    from maestro.coordinator.auth import create_key
    from maestro.coordinator.flags_client import FlagsClient
    from maestro.coordinator.models import Role
    from maestro.coordinator.settings import Settings
    from maestro.coordinator.store import Store

    settings = Settings(data_dir=base / "coord", io_threads=2)
    with Store(settings.data_dir / "store") as store:
        store.add_tenant("team")
        admin = create_key(store, "team", Role.ADMIN).plaintext
        reader = create_key(store, "team", Role.READ).plaintext
        server = TestServer(create_app(settings, store=store))
        await server.start_server(**RUNNER_KWARGS)
        http = TestClient(server)
        await http.start_server()
        url = str(http.make_url("")).rstrip("/")
        setter = FlagsClient(url, "team", admin)
        for name, value in (
            ("ml.fail-first", "off"),
            ("ml.predictive.threshold", 0.2),
            ("ml.speculation.enabled", False),
            ("cas.mirror.enabled", True),
            ("lsp.enabled", True),
        ):
            await setter.set_flag(name, value=value, reason="bench")
        await setter.close()
        client = FlagsClient(url, "team", reader)
        first = await client.poll_flags()
        assert first.flags is not None
        etag = first.flags.etag
        full, same = [], []
        for _ in range(rounds):
            start = time.perf_counter()
            await client.poll_flags()
            full.append(time.perf_counter() - start)
            start = time.perf_counter()
            unchanged = await client.poll_flags(etag)
            same.append(time.perf_counter() - start)
            assert unchanged.flags is None
        await client.close()
        await http.close()
    return [
        ["tenant poll, changed (200, 5 overrides)", f"{statistics.median(full) * 1e3:.2f} ms"],
        ["tenant poll, unchanged (304 on ETag)", f"{statistics.median(same) * 1e3:.2f} ms"],
    ]


def cli(root: Path, rounds: int) -> list[list[object]]:
    get, helps = [], []
    for _ in range(rounds):
        get.append(run_timed([MAESTRO, "flags", "get", "ml.fail-first", "--root", str(root)])[0])
        helps.append(run_timed([MAESTRO, "--help"])[0])
    return [
        ["`maestro flags get ml.fail-first` (fresh process)", f"{statistics.median(get):.3f} s"],
        ["`maestro --help` (fresh process, for scale)", f"{statistics.median(helps):.3f} s"],
    ]


def measure(base: Path, rounds: int) -> list[list[object]]:
    root = base / "ws"
    root.mkdir()
    (root / "pyproject.toml").write_text(
        "[project]\nname = 'x'\n\n[tool.maestro.ml.speculation]\nenabled = true\n"
    )
    rows = resolution(root, rounds)
    rows += asyncio.run(_poll(base, max(20, rounds // 10)))
    return rows + cli(root, 5)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--write", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--rounds", type=int, default=2000)
    parser.add_argument("--in", dest="inner", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.inner is None:
        # Run again in a child whose state dir is private: the bench sets flags.
        with tempfile.TemporaryDirectory(prefix="mbf") as tmp:
            env = {**os.environ, "MAESTRO_STATE_DIR": str(Path(tmp) / "state")}
            argv = [sys.executable, "-m", "bench.bench_flags", *sys.argv[1:], "--in", tmp]
            return subprocess.run(argv, env=env, cwd=REPO).returncode
    rows = measure(Path(args.inner), args.rounds)
    rev = git_rev("maestro/flags", "daemon/services/flags.py")
    body = "\n".join(
        [
            f"{today()}, {machine()}, {rev}. Shared host (other sessions were running): medians.",
            "",
            "Command: `.venv/bin/python -m bench.bench_flags`",
            "",
            table(["what", "median"], rows),
            "",
            "- Resolution: every declared flag through every layer (tenant, editor, workspace, "
            "config, user, default). The daemon memoises the local files on their stat, so a run, "
            "a save or a status pays the in-memory part only.",
            "- Polls: rounds/10 of each, alternating; the 304 carries no body.",
        ]
    )
    print(body)
    if args.write:
        write_section(SECTION, body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
