"""A conftest added then deleted: through the daemon, the next runs serve every file again, as
without one (real daemon, real pytest, real LMDB). The test file whose import fills a registry
the others read is served from its result of before the conftest; the files that read the
registry key what its import reads, and that must be what the daemon knows of it run after run."""

from __future__ import annotations

import os
import subprocess

import pytest
from conftest import MAESTRO, DaemonEnv, started

FILES = {
    "pkg/__init__.py": "",
    "pkg/reg.py": "REG = {}\n",
    "data.txt": "x\n",
    "tests/__init__.py": "",
    # imported by the test files: a test file other files import
    "tests/test_util.py": (
        "import subprocess\n\n\n"
        "def run():\n"
        "    return subprocess.run(['cat', 'data.txt'], capture_output=True).returncode\n"
    ),
    # fills the registry at import: the others' results depend on its import
    "tests/test_a.py": (
        "from pkg import reg\nfrom tests.test_util import run\n\nreg.REG['a'] = 1\n\n\n"
        "def test_a():\n    assert reg.REG\n\n\n"
        "def test_a2():\n    assert run() == 0\n"
    ),
    "tests/test_b.py": (
        "from pkg import reg\nfrom tests.test_util import run\n\n\n"
        "def test_b():\n    assert 'a' in reg.REG\n"
    ),
    "tests/test_c.py": "from pkg import reg\n\n\ndef test_c():\n    assert reg.REG\n",
}

CONFTEST = "import pytest\n\n\n@pytest.fixture\ndef unused():\n    return 1\n"


def summary(env: DaemonEnv, daemon: str) -> str:
    done = subprocess.run(
        [MAESTRO, "test"], cwd=env.root, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, timeout=180, env={**os.environ, "MAESTRO_DAEMON": daemon},
    )  # fmt: skip
    assert done.returncode == 0, done.stdout
    return [line for line in done.stdout.splitlines() if " passed" in line][-1]


@pytest.mark.parametrize("daemon", ["start", "off"])
def test_a_no_change_run_after_a_conftest_came_and_went_serves_every_file(
    daemon_env: DaemonEnv, monkeypatch: pytest.MonkeyPatch, daemon: str
) -> None:
    # through the daemon, test_b and test_c re-ran at every no-change run ("inputs changed:
    # tests/conftest.py, which tests/test_a.py imports"), for ever; without it, once
    monkeypatch.setenv("MAESTRO_CACHE_DIR", str(daemon_env.base / "cache"))
    daemon_env.write_old(FILES)
    subprocess.run(["git", "init", "-q"], cwd=daemon_env.root, check=True)
    if daemon != "off":
        started(daemon_env)
    assert summary(daemon_env, daemon).startswith("4 passed — ran 4 files")
    conftest = daemon_env.root / "tests/conftest.py"
    conftest.write_text(CONFTEST)
    assert summary(daemon_env, daemon).startswith("4 passed — ran 4 files")
    conftest.unlink()
    summary(daemon_env, daemon)  # may re-run the files that read the registry
    assert summary(daemon_env, daemon).startswith("4 passed — ran 0 files, 4 cached")
    assert summary(daemon_env, daemon).startswith("4 passed — ran 0 files, 4 cached")
