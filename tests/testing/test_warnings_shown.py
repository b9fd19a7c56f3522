"""`maestro test` shows the warnings of the tests it ran as pytest's "warnings summary" shows
them (the same locations and messages, grouped by message), in process and through the daemon;
one a served file had is only counted, with a note. Before, a user saw "1 passed, 1 warning" and
never the warning's text: a dependency's DeprecationWarning after an upgrade stayed unseen.
Real pytest children, the real CLI, a real LMDB cache."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from project_python import plain_pytest, project_python

MAESTRO = str(Path(sys.executable).with_name("maestro"))
SECRET = "ghp_" + "Ab1Cd2Ef3Gh4" * 3  # a GitHub token's form: redacted wherever it appears

WARNS = """
import warnings

TOKEN = "ghp_" + "Ab1Cd2Ef3Gh4" * 3


def test_old_api():
    warnings.warn("old_api() is deprecated", DeprecationWarning)


def test_old_api_again():
    warnings.warn("old_api() is deprecated", DeprecationWarning)


def test_token():
    warnings.warn("token " + TOKEN, UserWarning)


def test_quiet():
    assert True
"""

OTHER = """
import warnings


def test_other():
    warnings.warn("from the other file", UserWarning)
"""

# one message from 12 tests: pytest counts its locations by file ("tests/test_many.py: 12
# warnings") once there are 10 or more
MANY = """
import warnings

import pytest


@pytest.mark.parametrize("i", range(12))
def test_many(i):
    warnings.warn("many", DeprecationWarning)
"""


def _env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAESTRO_")}
    env.update(
        MAESTRO_CACHE_DIR=str(tmp_path / "cache"),
        MAESTRO_STATE_DIR=str(tmp_path / "state"),
    )
    return env


def _workspace(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    for rel, text in {
        "maestro.toml": f"interpreter = {str(project_python())!r}\n",
        # an unknown option: pytest's configuration warning, in its summary too
        "pytest.ini": "[pytest]\nno_such_option = 1\n",
        "tests/test_warns.py": WARNS,
        "tests/test_other.py": OTHER,
        "tests/test_many.py": MANY,
    }.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


def _block(output: str) -> list[str]:
    """The lines of the "warnings summary" section, between its title and the docs link."""
    lines = output.splitlines()
    start = next((i for i, line in enumerate(lines) if "warnings summary" in line), None)
    assert start is not None, output
    end = next(i for i in range(start, len(lines)) if lines[i].startswith("-- Docs: "))
    return [line.rstrip() for line in lines[start + 1 : end]]


def _stop_daemon(root: Path, tmp_path: Path, daemon: str) -> None:
    if daemon != "off":
        subprocess.run(
            [MAESTRO, "daemon", "stop"], cwd=root, env=_env(tmp_path), capture_output=True,
            timeout=60,
        )  # fmt: skip


def _maestro(root: Path, tmp_path: Path, daemon: str) -> str:
    done = subprocess.run(
        [MAESTRO, "test"], cwd=root, env=_env(tmp_path) | {"MAESTRO_DAEMON": daemon},
        capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert " — ran " in done.stdout, done.stdout + done.stderr
    return done.stdout


@pytest.mark.parametrize("daemon", ["off", "start"])
def test_the_warnings_of_the_tests_run_are_shown_as_pytest_shows_them(
    tmp_path: Path, daemon: str
) -> None:
    root = _workspace(tmp_path)
    plain = plain_pytest(project_python(), root, env=_env(tmp_path))
    truth = _block(plain.stdout)
    assert any("DeprecationWarning: old_api() is deprecated" in line for line in truth), truth
    assert any("PytestConfigWarning" in line for line in truth), truth
    assert "tests/test_many.py: 12 warnings" in truth, truth
    try:
        fresh = _maestro(root, tmp_path, daemon)
        assert "17 passed, 17 warnings — ran 3 files" in fresh, fresh
        # the secret pytest prints is redacted, as a test's output is
        assert SECRET not in fresh
        redacted = [
            re.sub(r"\[REDACTED:[a-z0-9-]+:[0-9a-f]{4}\]", SECRET, x) for x in _block(fresh)
        ]
        assert redacted == truth, fresh
        assert any("token [REDACTED:" in line for line in _block(fresh)), fresh

        # one file edited: its warning is shown, the served file's are counted with a note
        (root / "tests/test_other.py").write_text(OTHER.replace("other file", "edited file"))
        partly = _maestro(root, tmp_path, daemon)
        shown = _block(partly)
        assert any("UserWarning: from the edited file" in line for line in shown), partly
        assert not any("old_api" in line for line in shown), partly
        assert "from the cached results' recorded runs" in partly, partly

        served = _maestro(root, tmp_path, daemon)
        assert "warnings summary" not in served, served
        assert "from the cached results' recorded runs" in served, served
    finally:
        _stop_daemon(root, tmp_path, daemon)


CONFIGURE = """
import warnings

import pytest


def pytest_configure(config):
    warnings.warn(pytest.PytestDeprecationWarning("configure-time deprecation"))
"""


@pytest.mark.parametrize("daemon", ["off", "start"])
def test_a_warning_pytest_prints_as_it_configures_is_shown(tmp_path: Path, daemon: str) -> None:
    """A warning raised in a ``pytest_configure`` (a conftest's, pytest-asyncio's "the
    configuration option asyncio_default_fixture_loop_scope is unset") is no part of pytest's
    warnings summary: pytest prints it on its error output as it starts, on every run. Maestro
    printed nothing of it; now a run that starts pytest prints it as pytest did."""
    root = _workspace(tmp_path)
    (root / "tests/conftest.py").write_text(CONFIGURE)
    plain = plain_pytest(project_python(), root, env=_env(tmp_path))
    said = [line for line in plain.stderr.splitlines() if line.strip()]
    assert said and "PytestDeprecationWarning: configure-time deprecation" in said[0], plain.stderr
    try:
        fresh = subprocess.run(
            [MAESTRO, "test"], cwd=root, env=_env(tmp_path) | {"MAESTRO_DAEMON": daemon},
            capture_output=True, text=True, timeout=180,
        )  # fmt: skip
        shown = fresh.stderr.splitlines()
        for line in said:
            assert line in shown, fresh.stdout + fresh.stderr
        served = subprocess.run(
            [MAESTRO, "test"], cwd=root, env=_env(tmp_path) | {"MAESTRO_DAEMON": daemon},
            capture_output=True, text=True, timeout=180,
        )  # fmt: skip
        assert "ran 0 files" in served.stdout, served.stdout
    finally:
        _stop_daemon(root, tmp_path, daemon)


def test_a_message_from_many_tests_is_counted_as_pytest_counts_it(tmp_path: Path) -> None:
    """pytest counts a message's locations by file once there are 10 or more: all of them, even
    past the few hundred messages whose text Maestro keeps; more messages than it shows are
    counted in a last line."""
    root = tmp_path / "ws"
    (root / "tests").mkdir(parents=True)
    (root / "maestro.toml").write_text(f"interpreter = {str(project_python())!r}\n")
    (root / "tests/test_lots.py").write_text(
        "import warnings\n\nimport pytest\n\n\n"
        "@pytest.mark.parametrize('i', range(700))\n"
        "def test_same(i):\n    warnings.warn('same', DeprecationWarning)\n\n\n"
        "@pytest.mark.parametrize('i', range(200))\n"
        "def test_each(i):\n    warnings.warn(f'each {i}', UserWarning)\n"
    )
    plain = plain_pytest(project_python(), root, env=_env(tmp_path))
    assert "tests/test_lots.py: 700 warnings" in plain.stdout, plain.stdout
    out = _maestro(root, tmp_path, "off")
    assert "900 passed, 900 warnings" in out, out
    assert "tests/test_lots.py: 700 warnings" in out, out
    shown = _block(out)
    assert len(shown) < 320, len(shown)
    assert "UserWarning: each 0" in "\n".join(shown), out
    assert re.search(r"\((\d+) more of this run's warnings not shown", out), out


@pytest.mark.parametrize("flag", ["--disable-warnings", "--no-summary"])
def test_no_warnings_summary_when_pytest_shows_none(tmp_path: Path, flag: str) -> None:
    root = _workspace(tmp_path)
    plain = plain_pytest(project_python(), root, flag, env=_env(tmp_path))
    assert "warnings summary" not in plain.stdout, plain.stdout
    done = subprocess.run(
        [MAESTRO, "test", "--", flag], cwd=root, env=_env(tmp_path) | {"MAESTRO_DAEMON": "off"},
        capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert " — ran 3 files" in done.stdout, done.stdout + done.stderr
    assert "warnings summary" not in done.stdout, done.stdout


def test_a_rerun_with_a_withheld_variable_is_no_plugin_failing_the_session(
    tmp_path: Path,
) -> None:
    """Through the daemon, a test reading a secret-named variable Maestro did not pass fails,
    then its file runs again with it passed and that run counts: pytest's first exit status 1
    came from that failure. Maestro said "pytest failed its session with no test failing: a
    plugin did, after the tests ..." and printed the replaced failure."""
    root = tmp_path / "ws"
    (root / "tests").mkdir(parents=True)
    (root / "maestro.toml").write_text(f"interpreter = {str(project_python())!r}\n")
    (root / "tests/test_env.py").write_text(
        "import os\n\n\ndef test_token():\n    assert os.environ['MY_API_TOKEN']\n"
    )
    env = _env(tmp_path) | {"MY_API_TOKEN": "abc-123-xyz", "MAESTRO_DAEMON": "start"}
    try:
        done = subprocess.run(
            [MAESTRO, "test"], cwd=root, env=env, capture_output=True, text=True, timeout=180
        )
        out = done.stdout + done.stderr
        assert done.returncode == 0 and "1 passed" in done.stdout, out
        assert "read MY_API_TOKEN" in out, out  # the re-run happened
        assert "failed its session" not in out, out
    finally:
        subprocess.run(
            [MAESTRO, "daemon", "stop"], cwd=root, env=_env(tmp_path), capture_output=True,
            timeout=60,
        )  # fmt: skip
