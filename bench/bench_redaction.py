"""Redaction on real test output: throughput, lines altered, and its share of a first run.

    python -m bench.bench_redaction [--write | --no-write] [--rounds 5] [--recapture]

From PyPI sdists fetched at bench time: the requests and more-itertools suites run under pytest
with ``-rA`` (every test's captured output and summary line), a few Django apps under Django's
own runner at verbosity 2. On that captured output:

- throughput of ``Redactor.redact`` in 64 KiB chunks (a test file's stdout blob), with the
  trigger screen (what Maestro runs) and without it (every detector over everything); both must
  find the same secrets, chunk for chunk. Timed in CPU time of the redacting thread (the shared
  host's load inflates wall time several-fold) and in wall time;
- lines altered: lines whose redaction differs from the line (the output holds no real secret,
  so every altered line is a false positive or a credential-shaped test fixture);
- the share of a first run: ``maestro test --no-daemon`` on requests and more-itertools (empty
  cache) with ``Redactor.redact`` timed inside the same process; the detectors' import, done in
  a thread while pytest runs, is reported beside it.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
import venv
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench.bench_test_cache import MAESTRO_CODE, PROJECTS, failing_tests, prepare
from bench.common import BENCH_DIR, fetch_sdist, git_rev, machine, table, today, write_section

SECTION = "Redaction: throughput, lines altered, share of a first run"
WORK = BENCH_DIR / "redaction"
CHUNK = 64 * 1024
DJANGO_APPS = ["auth_tests", "utils_tests", "template_tests", "forms_tests"]
TIMEOUT_S = 1800

# Runs the CLI with Redactor.redact timed; prints the totals on stderr at exit.
TIMED_CODE = (
    "import atexit, json, sys, time\n"
    "import maestro.redaction as R\n"
    "spent = {'s': 0.0, 'chars': 0, 'calls': 0, 'preload_s': 0.0}\n"
    "redact, preload = R.Redactor.redact, R.preload\n"
    "def timed(self, text):\n"
    "    t = time.perf_counter()\n"
    "    try:\n"
    "        return redact(self, text)\n"
    "    finally:\n"
    "        spent['s'] += time.perf_counter() - t\n"
    "        spent['chars'] += len(text)\n"
    "        spent['calls'] += 1\n"
    "def timed_preload():\n"
    "    t = time.perf_counter()\n"
    "    preload()\n"
    "    spent['preload_s'] += time.perf_counter() - t\n"
    "R.Redactor.redact = timed\n"
    "R.preload = timed_preload\n"
    "atexit.register(lambda: sys.stderr.write('REDACTION ' + json.dumps(spent) + '\\n'))\n"
) + MAESTRO_CODE


@dataclass
class Corpus:
    name: str
    text: str
    how: str


@dataclass
class Row:
    corpus: Corpus
    screened_mbs: float
    screened_best_mbs: float
    screened_wall_mbs: float
    full_mbs: float
    same: bool
    lines: int
    altered: int
    examples: list[str]


def _run(cmd: list[str], cwd: Path, env: dict[str, str] | None = None) -> tuple[float, str, str]:
    start = time.perf_counter()
    proc = subprocess.run(
        cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=TIMEOUT_S, check=False
    )
    return time.perf_counter() - start, proc.stdout, proc.stderr


def pytest_corpus(index: int) -> Corpus:
    project = PROJECTS[index]
    tree = prepare(project)
    py = str(tree / ".venv/bin/python")
    cmd = [py, "-m", "pytest", "-rA", "-p", "no:cacheprovider", "--rootdir", str(tree)]
    _, out, err = _run(cmd, tree)
    return Corpus(project.name, out + err, f"pytest -rA ({tree.name})")


def django_corpus() -> Corpus:
    tree = fetch_sdist("django", "==5.2.*")
    where = WORK / "venv-django"
    python = where / "bin" / "python"
    if not python.exists():
        venv.EnvBuilder(with_pip=True, clear=True).create(where)
        subprocess.run(
            [str(python), "-m", "pip", "install", "-q", "asgiref>=3.8", "sqlparse>=0.3.1"],
            check=True,
        )
    cmd = [str(python), "runtests.py", "--parallel", "1", "-v", "2", *DJANGO_APPS]
    env = {**os.environ, "PYTHONPATH": str(tree)}
    _, out, err = _run(cmd, tree / "tests", env)
    return Corpus("django", out + err, f"runtests.py -v 2 {' '.join(DJANGO_APPS)} ({tree.name})")


def measure(corpus: Corpus, rounds: int) -> Row:
    from maestro.redaction import Redactor, preload

    preload()
    # a developer's shell: the known values of its secret-named variables, and no secret in it
    env = {"PATH": "/usr/bin", "GITHUB_TOKEN": "ghp_" + "x1Y2z3" * 6, "PGPASSWORD": "hunter2-db"}
    screened = Redactor.from_environ(env)
    full = Redactor.from_environ(env, screen=False)
    text = corpus.text
    chunks = [text[i : i + CHUNK] for i in range(0, len(text), CHUNK)]
    size = len(text.encode())
    cpu, wall = [], []
    for _ in range(rounds):
        start, start_cpu = time.perf_counter(), time.thread_time()
        out = [screened.redact(c) for c in chunks]
        cpu.append(time.thread_time() - start_cpu)
        wall.append(time.perf_counter() - start)
    start_cpu = time.thread_time()
    reference = [full.redact(c) for c in chunks]
    full_s = time.thread_time() - start_cpu
    lines = text.splitlines()
    altered = [ln for ln in lines if screened.redact(ln) != ln]
    return Row(
        corpus,
        size / statistics.median(cpu) / 1e6,
        size / min(cpu) / 1e6,
        size / statistics.median(wall) / 1e6,
        size / full_s / 1e6,
        out == reference,
        len(lines),
        len(altered),
        [screened.redact(ln)[:160] for ln in altered[:3]],
    )


@dataclass
class FirstRun:
    name: str
    wall_s: float
    redact_s: float
    calls: int
    chars: int
    preload_s: float
    summary: str


def first_run(index: int) -> FirstRun:
    project = PROJECTS[index]
    tree = prepare(project)
    deselect = failing_tests(tree)
    state = WORK / f"state-{project.name}"
    shutil.rmtree(state, ignore_errors=True)
    env = {**os.environ, "MAESTRO_CACHE_DIR": str(state / "cache")}
    env["MAESTRO_STATE_DIR"] = str(state / "state")
    env.pop("VIRTUAL_ENV", None)
    cmd = [sys.executable, "-c", TIMED_CODE, "test", "--no-daemon", "--all", "--"]
    cmd += [a for n in deselect for a in ("--deselect", n)]
    wall, out, err = _run(cmd, tree, env)
    line = next((ln for ln in err.splitlines() if ln.startswith("REDACTION ")), None)
    if line is None:
        raise RuntimeError(f"maestro test on {project.name} gave no timing: {err[-600:]}")
    spent = json.loads(line.removeprefix("REDACTION "))
    tail = (out.strip().splitlines() or [""])[-1][:120]
    return FirstRun(
        project.name, wall, spent["s"], spent["calls"], spent["chars"], spent["preload_s"], tail
    )


def report(rows: list[Row], runs: list[FirstRun], rounds: int) -> str:
    body = [
        f"{today()}, {machine()}, {git_rev('maestro/redaction.py')}. Shared host "
        "(other sessions were running): medians, compare ratios.",
        "",
        "Command: `.venv/bin/python -m bench.bench_redaction`",
        "",
        "Throughput of `Redactor.redact` on captured output in 64 KiB chunks, median of "
        f"{rounds} rounds (and the best of them), in CPU time of the redacting thread; wall "
        f"time beside it (load average {os.getloadavg()[0]:.1f} on this 2-core host when the "
        'bench ran); "full scan" runs every detector over the whole text (no trigger screen; '
        'CPU time), "same" says both found the same secrets in every chunk. Lines altered: '
        "lines whose redaction differs (this output holds no real secret).",
        "",
        table(
            [
                "suite",
                "captured",
                "MB",
                "MB/s (CPU, median)",
                "MB/s (CPU, best)",
                "MB/s (wall, median)",
                "full scan MB/s",
                "same",
                "lines",
                "altered",
                "altered %",
            ],
            [
                [
                    r.corpus.name,
                    r.corpus.how,
                    f"{len(r.corpus.text.encode()) / 1e6:.2f}",
                    f"{r.screened_mbs:.1f}",
                    f"{r.screened_best_mbs:.1f}",
                    f"{r.screened_wall_mbs:.1f}",
                    f"{r.full_mbs:.2f}",
                    "yes" if r.same else "**no**",
                    r.lines,
                    r.altered,
                    f"{100 * r.altered / max(r.lines, 1):.2f}",
                ]
                for r in rows
            ],
        ),
        "",
    ]
    for r in rows:
        for example in r.examples:
            body.append(f"- altered in {r.corpus.name}: `{example}`")
    body += [
        "",
        "Share of a first run (`maestro test --no-daemon --all`, empty cache, failing network "
        "tests deselected): time inside `Redactor.redact` in the same process, over the run's "
        "wall time. The detectors' import runs in a thread while pytest runs (not on the "
        "critical path) and is shown apart.",
        "",
        table(
            ["suite", "wall", "redact", "share", "calls", "chars", "detectors import", "result"],
            [
                [
                    f.name,
                    f"{f.wall_s:.1f} s",
                    f"{1000 * f.redact_s:.0f} ms",
                    f"{100 * f.redact_s / f.wall_s:.2f} %",
                    f.calls,
                    f.chars,
                    f"{1000 * f.preload_s:.0f} ms",
                    f.summary,
                ]
                for f in runs
            ],
        ),
    ]
    return "\n".join(body)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument(
        "--recapture", action="store_true", help="run the suites again for their output"
    )
    args = parser.parse_args(argv)
    WORK.mkdir(parents=True, exist_ok=True)
    captures: list[tuple[str, Callable[[], Corpus]]] = [
        ("requests", lambda: pytest_corpus(0)),
        ("more-itertools", lambda: pytest_corpus(1)),
        ("django", django_corpus),
    ]
    corpora = []
    for name, capture in captures:
        saved, how = WORK / f"{name}.txt", WORK / f"{name}.how"
        if saved.exists() and how.exists() and not args.recapture:
            corpora.append(Corpus(name, saved.read_text(encoding="utf-8"), how.read_text()))
            continue
        corpus = capture()
        saved.write_text(corpus.text, encoding="utf-8")
        how.write_text(corpus.how)
        corpora.append(corpus)
    rows = [measure(c, args.rounds) for c in corpora]
    runs = [first_run(0), first_run(1)]
    text = report(rows, runs, args.rounds)
    print(text)
    if args.write:
        write_section(SECTION, text)


if __name__ == "__main__":
    main()
