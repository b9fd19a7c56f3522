"""An editor's "run impacted tests" after an edit of an extension module's C source said "no
impacted tests" and nothing more (wrapt's _wrappers.c, a user trial in the editor): tests import
the built module, which must be rebuilt. The run's end and the impacted targets now say so."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import Env, run_to_end, start_client, stop_client
from workspace_procs import EXTENSION_C_SOURCE, commit_all, no_daemon_left

pytestmark = pytest.mark.slow

C_SOURCE = EXTENSION_C_SOURCE

FILES = {
    "pkg/__init__.py": "",
    "pkg/_speed.c": C_SOURCE,
    "setup.py": (
        "from setuptools import Extension, setup\n"
        'setup(name="pkg", packages=["pkg"], ext_modules=[Extension("pkg._speed", '
        '["pkg/_speed.c"])])\n'
    ),
    ".gitignore": "build/\n*.so\n__pycache__/\n",
    "tests/test_speed.py": (
        "from pkg._speed import answer\n\n\ndef test_answer():\n    assert answer() == 42\n"
    ),
}


@pytest.fixture
def ext_env() -> Iterator[Env]:
    if shutil.which("cc") is None:
        pytest.skip("no C compiler")
    env = Env(Path(tempfile.mkdtemp(prefix="mlspx", dir="/tmp")))
    for rel, text in FILES.items():
        (env.root / rel).parent.mkdir(parents=True, exist_ok=True)
        (env.root / rel).write_text(text)
    subprocess.run(
        [sys.executable, "setup.py", "-q", "build_ext", "--inplace"],
        cwd=env.root, check=True, capture_output=True, timeout=180,
    )  # fmt: skip
    commit_all(env.root, "init")
    try:
        yield env
    finally:
        no_daemon_left(env.root)
        shutil.rmtree(env.base, ignore_errors=True)


async def test_run_impacted_of_an_edited_c_source_says_to_rebuild(ext_env: Env) -> None:
    env = ext_env
    client = await start_client(env, "neovim")
    try:
        assert (await run_to_end(client, "maestro.runAll"))["passed"] == 1
        (env.root / "pkg/_speed.c").write_text(C_SOURCE.replace("42", "43"))
        ended = await run_to_end(client, "maestro.runImpacted")
        message = ended.get("message") or ""
        assert message.startswith("no impacted tests; pkg/_speed.c is a source of the"), ended
        assert "which 1 test file imports" in message and "rebuild it" in message, message
        targets = await client.protocol.send_request_async(
            "maestro/impactedTargets", {"root": str(env.root)}
        )
        notes = targets["notes"] if isinstance(targets, dict) else targets.notes
        assert len(notes) == 1 and notes[0].startswith("pkg/_speed.c is a source"), notes
    finally:
        await stop_client(client)
