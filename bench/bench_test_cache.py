"""Cached test runs on real suites: plain pytest vs pytest-testmon vs `maestro test`.

For requests and more-itertools (sdists from PyPI, extracted under .bench/, never committed): a
venv per project inside its tree (`.venv`, which maestro picks up like a user's), with the test
dependencies, pytest-testmon and the project installed editable. Tests that fail in this
environment (network, sandbox) are deselected for every tool alike, so that a no-change run can
be served from the cache. Then, in the same run, medians of >= 3 runs of:

- plain `pytest`
- `pytest --testmon`: first run (empty .testmondata) and no-change run
- `maestro test`: first run (empty cache and state) and no-change run

    .venv/bin/python -m bench.bench_test_cache [--runs 3] [--write]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bench.common import (
    BENCH_DIR,
    fetch_sdist,
    fmt_s,
    git_rev,
    machine,
    median,
    table,
    today,
    write_section,
)

WORK = BENCH_DIR / "testcache"
TIMEOUT_S = 900
# The console script's own entry point (the fast path, then the full CLI), as a user runs it.
MAESTRO_CODE = "from maestro.cli import main\nmain()\n"


@dataclass
class Project:
    name: str
    spec: str
    install: list[str]  # pip requirements besides the project itself
    extras: str = ""


PROJECTS = [
    Project(
        "requests",
        "==2.34.2",
        [
            "pytest>=8,<9",
            "pytest-testmon",
            "pytest-httpbin==2.1.0",
            "httpbin~=0.10.0",
            "pytest-mock",
            "trustme",
            "PySocks>=1.5.6,!=1.5.7",
        ],
        extras="[socks]",
    ),
    Project("more-itertools", "==11.2.1", ["pytest>=8,<9", "pytest-testmon"]),
]


@dataclass
class Samples:
    times: dict[str, list[float]] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)

    def add(self, tool: str, wall: float) -> None:
        self.times.setdefault(tool, []).append(wall)

    def med(self, tool: str) -> float:
        return median(self.times[tool])


def sh(cmd: Sequence[str], cwd: Path, env: dict[str, str] | None = None) -> tuple[float, int, str]:
    start = time.perf_counter()
    proc = subprocess.run(
        list(cmd), cwd=cwd, env=env, capture_output=True, text=True, timeout=TIMEOUT_S, check=False
    )
    return time.perf_counter() - start, proc.returncode, proc.stdout + proc.stderr


def prepare(
    project: Project, *, work: Path = WORK, python: str = sys.executable, suffix: str = ""
) -> Path:
    """The project's sdist tree under `work` with a `.venv` made by `python` (once)."""
    src = fetch_sdist(project.name, project.spec)
    tree = work / f"{src.name}{suffix}"
    if not (tree / ".venv" / ".bench-ready").exists():
        shutil.rmtree(tree, ignore_errors=True)
        shutil.copytree(src, tree)
        subprocess.run([python, "-m", "venv", str(tree / ".venv")], check=True)
        pip = [str(tree / ".venv/bin/python"), "-m", "pip", "install", "-q"]
        pip += ["--disable-pip-version-check"]
        subprocess.run([*pip, "-e", f".{project.extras}", *project.install], cwd=tree, check=True)
        (tree / ".venv" / ".bench-ready").touch()
    return tree


def failing_tests(tree: Path) -> list[str]:
    """Node ids that fail here (network, sandbox): deselected for every tool alike."""
    report = tree / ".bench-report.json"
    py = str(tree / ".venv/bin/python")
    _, _, out = sh([py, "-m", "pytest", "-q", "-rfE", "-p", "no:cacheprovider"], tree)
    found = re.findall(r"^(?:FAILED|ERROR) (\S+::\S+)", out, flags=re.M)
    report.unlink(missing_ok=True)
    return sorted(set(found))


def clean_maestro(state: Path) -> None:
    shutil.rmtree(state, ignore_errors=True)
    state.mkdir(parents=True)


def bench_project(
    project: Project, runs: int, first_runs: int
) -> tuple[Samples, dict[str, object]]:
    tree = prepare(project)
    py = str(tree / ".venv/bin/python")
    deselect = failing_tests(tree)
    args = [a for n in deselect for a in ("--deselect", n)]
    samples = Samples()
    state = WORK / f"state-{project.name}"
    env = {**os.environ, "MAESTRO_CACHE_DIR": str(state / "cache")}
    env["MAESTRO_STATE_DIR"] = str(state / "state")
    env.pop("VIRTUAL_ENV", None)
    # testmon keeps its database at the git top level by default, which for a tree under .bench/
    # is this repository: pin it to the project so projects never share one.
    tm_env = {**env, "TESTMON_DATAFILE": str(tree / ".testmondata")}
    maestro = [sys.executable, "-c", MAESTRO_CODE, "test"]
    info: dict[str, object] = {"deselected": len(deselect)}

    pytest = [py, "-m", "pytest", "-q"]
    for _ in range(first_runs):
        shutil.rmtree(tree / ".pytest_cache", ignore_errors=True)
        wall, code, out = sh([*pytest, *args], tree)
        samples.add("pytest", wall)
        info["pytest_exit"] = code
        info["pytest_tail"] = out.strip().splitlines()[-1] if out.strip() else ""
    for _ in range(first_runs):
        (tree / ".testmondata").unlink(missing_ok=True)
        shutil.rmtree(tree / ".pytest_cache", ignore_errors=True)
        wall, code, out = sh([*pytest, "--testmon", *args], tree, tm_env)
        samples.add("testmon first", wall)
        info["testmon_first_tail"] = out.strip().splitlines()[-1] if out.strip() else ""
    for _ in range(runs):
        wall, code, out = sh([*pytest, "--testmon", *args], tree, tm_env)
        samples.add("testmon no-change", wall)
        info["testmon_tail"] = out.strip().splitlines()[-1] if out.strip() else ""
    for _ in range(first_runs):
        clean_maestro(state)
        wall, code, out = sh([*maestro, "--", *args], tree, env)
        samples.add("maestro first", wall)
        info["maestro_first_exit"] = code
        info["maestro_first_tail"] = out.strip().splitlines()[-1] if out.strip() else ""
    for _ in range(runs):
        wall, code, out = sh([*maestro, "--", *args], tree, env)
        samples.add("maestro no-change", wall)
        info["maestro_nochange_exit"] = code
        info["maestro_nochange_out"] = out.strip()
    (tree / ".testmondata").unlink(missing_ok=True)
    return samples, info


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="runs per no-change measurement")
    parser.add_argument(
        "--first-runs", type=int, default=3, help="runs per full-suite measurement (slow)"
    )
    parser.add_argument("--only", choices=[p.name for p in PROJECTS])
    parser.add_argument("--write", action="store_true", help="update docs/BENCHMARKS.md")
    ns = parser.parse_args(argv)
    rows = []
    details = []
    for project in PROJECTS:
        if ns.only and project.name != ns.only:
            continue
        samples, info = bench_project(project, max(3, ns.runs), max(1, ns.first_runs))
        base = samples.med("pytest")
        nochange = samples.med("maestro no-change")
        tm = samples.med("testmon no-change")
        rows.append(
            [
                f"{project.name} {project.spec.removeprefix('==')}",
                fmt_s(base),
                fmt_s(samples.med("testmon first")),
                fmt_s(tm),
                fmt_s(samples.med("maestro first")),
                fmt_s(nochange),
                f"{base / nochange:.1f}x",
                f"{tm / nochange:.1f}x",
            ]
        )
        details.append(f"{project.name}: " + json.dumps(info, indent=1))
    header = ["project", "pytest", "testmon first", "testmon no-change", "maestro first",
              "maestro no-change", "vs pytest", "vs testmon"]  # fmt: skip
    body = table(header, rows)
    print(body)
    print("\n".join(details))
    if ns.write:
        write_section(
            "Cached test runs (bench/bench_test_cache.py)",
            f"{today()}, {machine()}, maestro at {git_rev('cache', 'daemon', 'maestro')}; "
            f"medians of {ns.first_runs} full and {ns.runs} no-change runs, all tools on the "
            "same tree in the same run.\n\n"
            + body
            + "\n\n`vs pytest`/`vs testmon`: how many times faster maestro's no-change run is "
            "than plain pytest / testmon's no-change run (targets: >= 20x, > 1x).",
        )


if __name__ == "__main__":
    main()
