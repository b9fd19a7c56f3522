"""Shared bench helpers: sdist download, statistics, timed subprocesses, docs/BENCHMARKS.md."""

from __future__ import annotations

import datetime as _dt
import os
import platform
import re
import resource
import statistics
import subprocess
import sys
import tarfile
import time
from collections.abc import Sequence
from pathlib import Path

from bench import refresh_link_tree

REPO = Path(__file__).resolve().parent.parent
BENCH_DIR = REPO / ".bench"  # gitignored: downloads and extracted trees
DOCS = REPO / "docs" / "BENCHMARKS.md"
PYTHON = sys.executable


class FetchError(RuntimeError):
    """The sdist could not be downloaded (PyPI unreachable, unknown version...)."""


def fetch_sdist(name: str, spec: str, dest: Path | None = None) -> Path:
    """Download (once) and extract the sdist `name` + `spec` (e.g. "==5.2.*"); return its tree.

    Uses pip's ordinary client; the tree lands in .bench/src/<dist>-<version>/.
    """
    dest = dest or BENCH_DIR
    downloads = dest / "dl"
    downloads.mkdir(parents=True, exist_ok=True)
    norm = re.sub(r"[-_.]+", "_", name).lower()
    have = _matching_archives(downloads, norm, spec)
    if not have:
        proc = subprocess.run(
            [PYTHON, "-m", "pip", "download", "-q", "--no-deps", "--no-binary", ":all:",
             f"{name}{spec}", "-d", str(downloads)],
            capture_output=True, text=True,
        )  # fmt: skip
        have = _matching_archives(downloads, norm, spec)
        if proc.returncode != 0 or not have:
            tail = [x[:200] for x in (proc.stderr or proc.stdout).strip().splitlines()[-3:]]
            raise FetchError(f"pip download {name}{spec} failed: {' | '.join(tail)}")
    archive = have[-1]
    tree = dest / "src" / archive.name.removesuffix(".tar.gz")
    if not (tree / "PKG-INFO").exists():
        tree.parent.mkdir(parents=True, exist_ok=True)
        with tarfile.open(archive) as tar:
            tar.extractall(tree.parent, filter="data")
        top = tree.parent / archive.name.removesuffix(".tar.gz")
        if not top.exists():  # archive's top folder differs in case/spelling
            raise FetchError(f"{archive} did not extract to {top}")
    return tree


def _version_key(path: Path) -> tuple[int, ...]:
    m = re.search(r"-(\d+(?:\.\d+)*)\.tar\.gz$", path.name)
    return tuple(int(x) for x in m.group(1).split(".")) if m else ()


def _matching_archives(downloads: Path, norm: str, spec: str) -> list[Path]:
    found = []
    prefix = spec.removeprefix("==").rstrip("*").rstrip(".") if spec.startswith("==") else ""
    for p in downloads.glob("*.tar.gz"):
        dist, _, version = p.name.removesuffix(".tar.gz").rpartition("-")
        if re.sub(r"[-_.]+", "_", dist).lower() != norm:
            continue
        if prefix and not (version == prefix or version.startswith(prefix + ".")):
            continue
        found.append(p)
    return sorted(found, key=_version_key)


# -- statistics ------------------------------------------------------------------------------------


def median(xs: Sequence[float]) -> float:
    return statistics.median(xs)


def percentile(xs: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100)."""
    s = sorted(xs)
    k = max(0, min(len(s) - 1, round(q / 100 * len(s) + 0.5) - 1))
    return s[k]


def fmt_s(seconds: float) -> str:
    return f"{seconds:.3f} s" if seconds >= 0.1 else f"{seconds * 1000:.1f} ms"


def fmt_ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms"


# -- subprocesses ----------------------------------------------------------------------------------


LAST_CPU = [0.0]


def run_timed(cmd: Sequence[str], *, cwd: Path | None = None) -> tuple[float, str, float]:
    """Run `cmd`; return (wall seconds, stdout, start perf_counter). Raises on failure.

    The child's CPU time (user + sys, all its threads) is left in `LAST_CPU[0]`.

    perf_counter is CLOCK_MONOTONIC on Linux, system-wide: a child may print its own
    perf_counter() to measure "time to first answer" against the returned start.
    """
    if "pytest" not in sys.modules:
        refresh_link_tree()  # colleagues add modules while benches run
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(list(cmd), cwd=cwd, capture_output=True, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    LAST_CPU[0] = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if proc.returncode != 0:
        shown = " ".join(cmd)[:200]
        raise RuntimeError(f"{shown} failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return wall, proc.stdout, start


def python_cmd(code: str, python: str = PYTHON) -> list[str]:
    """`python -P -c code`: -P keeps the current directory off sys.path (see bench/__init__.py)."""
    return [python, "-P", "-c", code]


# -- reporting -------------------------------------------------------------------------------------


def table(header: Sequence[str], rows: Sequence[Sequence[object]], align: str = "") -> str:
    align = align or "l" + "r" * (len(header) - 1)
    marks = [":---" if a == "l" else "---:" for a in align]
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(marks) + " |"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def machine() -> str:
    cpus = os.cpu_count() or 0
    return (
        f"{cpus} vCPU, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()} ({platform.machine()})"
    )


def host_speed() -> float:
    """Seconds a fixed pure-Python loop (10^7 list items) takes now. This shared 2-vCPU host
    swings between ~0.3 s and ~0.8 s within minutes (other tenants): a latency only means
    something next to the speed it was measured at."""
    started = time.perf_counter()
    _ = [i for i in range(10_000_000)]
    return time.perf_counter() - started


def today() -> str:
    return _dt.date.today().isoformat()


DOCS_HEADER = """# Benchmarks

Each section is written by the bench script it names; rerun the command shown to reproduce it.
Timings are medians of several runs on a shared, noisy machine: compare the ratios measured side by
side in the same run rather than absolute times across sections.
"""


def write_section(title: str, body: str, path: Path = DOCS) -> None:
    """Replace (or append) the `## title` section of docs/BENCHMARKS.md, keeping the others."""
    text = path.read_text(encoding="utf-8") if path.exists() else DOCS_HEADER
    heading = f"## {title}"
    block = f"{heading}\n\n{body.strip()}\n"
    lines = text.splitlines(keepends=True)
    start = next((i for i, line in enumerate(lines) if line.rstrip() == heading), None)
    if start is None:
        new = text.rstrip("\n") + "\n\n" + block
    else:
        end = next(
            (i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines)
        )
        tail = "".join(lines[end:])
        new = "".join(lines[:start]) + block + ("\n" + tail if tail else "")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(new, encoding="utf-8")


def git_rev(*paths: str) -> str:
    """Short HEAD commit, with "+ uncommitted changes in <paths>" when those differ from it."""
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True,
            check=True,
        ).stdout.strip()  # fmt: skip
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", *paths], cwd=REPO, capture_output=True,
            text=True, check=True,
        ).stdout.strip()  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        return "unknown commit"
    return f"commit {rev}" + (f" + uncommitted changes in {', '.join(paths)}" if dirty else "")
