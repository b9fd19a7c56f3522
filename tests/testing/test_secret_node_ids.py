"""A parametrize id holding a secret: the local stores keyed by node ids (action results in the
LMDB, the last keys, fingerprints, the decision log) keep the redacted id, and the same test still
maps to the same stored record at every run: `maestro test` serves it from the cache, re-runs it
when it failed or its inputs changed, and `maestro explain` finds it. Real `maestro` processes,
real pytest, real LMDB."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from project_python import project_python
from testing_helpers import Workspace

MAESTRO = str(Path(sys.executable).parent / "maestro")
GITHUB = "ghp_" + "Kx4" * 12  # 36 characters after the prefix: a GitHub token's shape
DEPLOY = "correct-horse-battery-staple-42"  # a value known from the environment, no pattern
SECRETS = (GITHUB, DEPLOY)
GH_NODE = f"tests/test_tok.py::test_tok[gh {GITHUB}]"

TEST_FILE = f"""
import pathlib

import pytest

from pkg.a import add


@pytest.mark.parametrize(
    "name", ["gh", "deploy", "plain"], ids=["gh {GITHUB}", "deploy {DEPLOY}", "plain"]
)
def test_tok(name):
    assert add(1, 1) == 2
    bad = pathlib.Path(__file__).with_name("bad.txt").read_text().split()
    assert name not in bad
"""


@pytest.fixture
def env(ws: Workspace, isolated: Path) -> dict[str, str]:
    ws.write("maestro.toml", f"interpreter = {str(project_python())!r}\n")
    ws.write("tests/test_tok.py", TEST_FILE)
    ws.write("tests/bad.txt", "\n")
    environ = {k: v for k, v in os.environ.items() if not k.startswith("MAESTRO_")}
    environ.update(
        MAESTRO_CACHE_DIR=str(isolated / "cache"),
        MAESTRO_STATE_DIR=str(isolated / "state"),
        MAESTRO_DAEMON="off",
        DEPLOY_PASSWORD=DEPLOY,  # the developer's shell holds it: a known value
    )
    return environ


def maestro(ws: Workspace, env: dict[str, str], *args: str) -> tuple[int, str]:
    proc = subprocess.run(
        [MAESTRO, *args], cwd=ws.root, env=env, capture_output=True, text=True, timeout=300,
        check=False,
    )  # fmt: skip
    return proc.returncode, proc.stdout + proc.stderr


def raw_in_stores(isolated: Path) -> list[str]:
    """Files of the cache and state folders holding a secret as it is."""
    found = []
    for root in (isolated / "cache", isolated / "state"):
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            data = path.read_bytes()
            found += [
                f"{path.relative_to(isolated)}: {s[:8]}" for s in SECRETS if s.encode() in data
            ]
    return found


def test_secret_in_a_node_id_is_stored_redacted_and_served_from_cache(
    ws: Workspace, env: dict[str, str], isolated: Path
) -> None:
    code, out = maestro(ws, env, "test", "tests/test_tok.py")
    assert code == 0 and "3 passed" in out, out
    code, out = maestro(ws, env, "test", "tests/test_tok.py")
    assert code == 0 and "ran 0 files, 1 cached" in out, out
    # by node id, as copied from a report: its own action, stored and then served too
    code, out = maestro(ws, env, "test", GH_NODE)
    assert code == 0 and "1 passed" in out, out
    code, out = maestro(ws, env, "test", GH_NODE)
    assert code == 0 and "ran 0 files, 1 cached" in out, out
    assert not raw_in_stores(isolated)
    assert (isolated / "cache").is_dir() and any((isolated / "state").rglob("test-last-keys*"))

    code, out = maestro(ws, env, "explain", GH_NODE, "--json")
    assert code == 0, out
    (row,) = json.loads(out)["nodes"]
    assert row["node"].startswith("tests/test_tok.py::test_tok[gh [REDACTED:github-token:")
    assert not row["runs"] and "served from the cache" in row["reason"]
    code, out = maestro(ws, env, "explain", "tests/test_tok.py", "--json")
    assert code == 0, out
    nodes = [r["node"] for r in json.loads(out)["nodes"]]
    assert len(nodes) == 3 and not any(s in out for s in SECRETS), nodes
    assert any("[REDACTED:env-deploy-password:" in n for n in nodes), nodes

    code, out = maestro(ws, env, "impacted", "pkg/a.py")
    assert code == 0 and "tests/test_tok.py" in out, out


def test_failed_and_changed_tests_with_secret_ids_rerun_with_their_file(
    ws: Workspace, env: dict[str, str], isolated: Path
) -> None:
    ws.write("tests/bad.txt", "gh deploy\n")
    code, out = maestro(ws, env, "test", "tests/test_tok.py")
    assert code == 1 and "2 failed, 1 passed" in out, out
    assert "FAILED tests/test_tok.py::test_tok[gh [REDACTED:github-token:" in out
    # failed last time: the redacted ids are not pytest's, the whole file runs again
    code, out = maestro(ws, env, "test", "tests/test_tok.py")
    assert code == 1 and "2 failed, 1 passed" in out and "failed last time" in out, out
    # its data file changed: the nodes that read it re-run, here with the whole file
    ws.write("tests/bad.txt", "\n")
    code, out = maestro(ws, env, "test", "tests/test_tok.py")
    assert code == 0 and "3 passed" in out, out
    code, out = maestro(ws, env, "test", "tests/test_tok.py")
    assert code == 0 and "ran 0 files, 1 cached" in out, out
    # a change to code every node executed
    ws.edit("pkg/a.py", "return a + b", "return b + a")
    code, out = maestro(ws, env, "test", "tests/test_tok.py")
    assert code == 0 and "3 passed" in out and "ran 1 file," in out, out
    assert not raw_in_stores(isolated)
