"""`maestro demo`: the main job on an embedded workspace, no external services (`make run`).

It copies a small project to a scratch directory and drives the real CLI on it, so what it shows
is exactly what a user sees: the graph, a first test run, a second run served from the cache, and
an edit whose impacted tests are explained and re-run.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
from importlib import resources
from pathlib import Path
from typing import Annotated

import typer

from maestro.cli.common import console

EDIT = "\n\ndef triangle_area(base: float, height: float) -> float:\n    return base * height / 2\n"


def demo(
    directory: Annotated[
        Path | None, typer.Option("--dir", help="where to create the demo (default: a temp dir)")
    ] = None,
    keep: Annotated[bool, typer.Option("--keep", help="keep the demo directory")] = False,
) -> None:
    """Run Maestro end to end on an embedded sample workspace."""
    base = Path(tempfile.mkdtemp(prefix="maestro-demo-")) if directory is None else directory
    workspace = base / "shapes"
    if workspace.exists():
        shutil.rmtree(workspace)
    source = resources.files("maestro") / "demo" / "workspace"
    with resources.as_file(source) as src:
        shutil.copytree(src, workspace)
    pyproject = workspace / "pyproject.toml"
    # run the demo's tests with this interpreter (it has pytest), like `interpreter = ...` would
    pyproject.write_text(
        pyproject.read_text().replace(
            "[tool.maestro.targets.docs]",
            f"[tool.maestro]\ninterpreter = {str(sys.executable)!r}\n\n[tool.maestro.targets.docs]",
        )
    )
    env = {
        **os.environ,
        "MAESTRO_CACHE_DIR": str(base / "cache"),
        "MAESTRO_STATE_DIR": str(base / "state"),
    }
    _git(workspace, "init", "-q", "-b", "main")
    _git(workspace, "add", "-A")
    _git(workspace, "-c", "user.name=demo", "-c", "user.email=demo@example.invalid",
         "commit", "-qm", "demo workspace")  # fmt: skip

    def step(title: str, *args: str) -> None:
        console.rule(f"[bold cyan]{title}")
        console.print(f"[dim]$ maestro {' '.join(args)}[/dim]")
        proc = subprocess.run(
            [sys.executable, "-m", "maestro.cli", *args], cwd=workspace, env=env, check=False
        )
        if proc.returncode not in (0,):
            console.print(f"[red]exit code {proc.returncode}[/red]")
            raise typer.Exit(proc.returncode)

    console.print(f"Demo workspace: [bold]{workspace}[/bold]\n")
    step("1. The build graph, inferred with zero configuration", "graph", "stats")
    step("2. First run: every test file runs", "test")
    step("3. Nothing changed: every result comes from the cache", "test")
    (workspace / "src/shapes/geometry.py").write_text(
        (workspace / "src/shapes/geometry.py").read_text() + EDIT
    )
    step("4. Edit src/shapes/geometry.py: what is impacted, and why", "impacted")
    step("5. Re-run only what the edit can break", "test", "--impacted")
    (workspace / "tests/data/cases.json").write_text(
        '[{"kind": "square", "size": 3, "unit": "m", "area": 9.0}]\n'
    )
    step(
        "6. Edit a data file a test reads (recorded while it ran)",
        "impacted",
        "tests/data/cases.json",
    )
    step("7. The cache", "cache", "stats")
    if not keep and directory is None:
        shutil.rmtree(base, ignore_errors=True)
    else:
        console.print(f"\nKept {base}")


def _git(workspace: Path, *args: str) -> None:
    # git is optional: without it, `maestro impacted PATH` still works
    with contextlib.suppress(OSError, subprocess.CalledProcessError):
        subprocess.run(["git", *args], cwd=workspace, check=True, capture_output=True)
