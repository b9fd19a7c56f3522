"""The real `maestro` console script beside plain pytest: run it in a workspace, read its summary
and a JUnit file's outcomes (the paths-in-arguments tests)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from xml.etree import ElementTree

from project_python import plain_pytest, project_python

MAESTRO = str(Path(sys.executable).with_name("maestro"))


def maestro(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`maestro ARGS` in `cwd`, in process (no daemon), as a terminal of default width runs it."""
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "PYTEST_ADDOPTS")}
    env.update(MAESTRO_DAEMON="off")
    return subprocess.run(
        [MAESTRO, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


def summary(out: str) -> str:
    """pytest's counts from its last line, or Maestro's before its '—'."""
    last = out.strip().splitlines()[-1]
    return re.sub(r" in [\d.]+s.*$", "", last.split(" — ")[0]).strip("= ")


def cases(path: Path) -> dict[str, str]:
    """A JUnit file's outcome of each testcase, by classname::name."""
    found = {}
    for case in ElementTree.parse(path).getroot().iter("testcase"):
        outcome = next((c.tag for c in case if c.tag in ("failure", "error", "skipped")), "passed")
        found[f"{case.get('classname')}::{case.get('name')}"] = outcome
    return found


def twice_as_pytest(root: Path, name: str, text: str, tmp_path: Path, counts: str) -> str:
    """A workspace of one test file on the project interpreter: `maestro test` says `counts` as
    plain pytest does, node for node, when it runs the file and again when it serves it; what
    Maestro said the second time."""
    root.mkdir()
    (root / "maestro.toml").write_text(f"interpreter = {str(project_python())!r}\n")
    (root / name).write_text(text)
    said = ""
    for _ in range(2):  # run, then served from the cache
        said = same_as_pytest(root, project_python(), tmp_path, [])
        assert summary(said) == counts, said
    return said


def same_as_pytest(root: Path, python: Path, tmp_path: Path, args: list[str]) -> str:
    """`maestro test -- ARGS` says what `pytest ARGS` says, node for node; what Maestro said."""
    plain_xml, our_xml = tmp_path / "plain.xml", tmp_path / "ours.xml"
    plain = plain_pytest(python, root, f"--junitxml={plain_xml}", *args)
    ours = maestro(root, "test", "--junitxml", str(our_xml), "--", *args)
    said = ours.stdout + ours.stderr
    assert summary(said) == summary(plain.stdout), (args, said, plain.stdout)
    assert ours.returncode == plain.returncode, (args, said)
    assert cases(our_xml) == cases(plain_xml), (args, said)
    return said
