"""A variable the user's environment sets that pytest does not get (not allowlisted, not named in
the workspace's code), read by installed code: found on responses 0.26.3, where requests reads
`REQUESTS_CA_BUNDLE` (set in the shell) by name. `pytest responses/tests/test_matchers.py`
failed test_fail_matchers_error; `maestro test` passed it and served that pass from then on.
The plugin reports the reads of such a variable: the file's result is not stored, the name is
learned (passed and keyed from then on) and, in process, the file runs again at once with it.
Real `maestro` processes, real pytest, real LMDB."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from project_python import project_python
from testing_helpers import Workspace

from maestro.cache import Cache
from maestro.engine import testing
from maestro.envvars import WITHHELD_ENV, allowlist_with, allowlisted_env, read_env_names
from maestro.paths import workspace_state_dir

MAESTRO = str(Path(sys.executable).parent / "maestro")
NAME = "DEMO_CA_BUNDLE"
ONLY = testing.Selection(paths=("tests/test_env.py",))

# installed-like code (outside the workspace: graph/env_refs.py does not read it), shaped as
# requests' merge_environment_settings
LIBRARY = """
import os


def verify():
    return os.environ.get("DEMO_CA_BUNDLE") or os.getenv("DEMO_UNSET_TOO") or True


def steering():
    return os.environ.get("PYTEST_ADDOPTS")
"""

TEST = """
import envlib


def test_verify_defaults_to_true():
    assert envlib.verify() is True
"""


def workspace(ws: Workspace, outside: Path) -> None:
    (outside / "envlib.py").write_text(LIBRARY)
    ws.write("tests/conftest.py", f"import sys\n\nsys.path.insert(0, {str(outside)!r})\n")
    ws.write("tests/test_env.py", TEST)


def environment(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEMO_")}
    env.pop("PYTEST_ADDOPTS", None)
    return {**env, "MAESTRO_DAEMON": "off", **extra}


def maestro(ws: Workspace, env: dict[str, str], *args: str) -> tuple[int, str]:
    done = subprocess.run(
        [MAESTRO, *args], cwd=ws.root, env=env, capture_output=True, text=True, timeout=300,
        check=False,
    )  # fmt: skip
    return done.returncode, done.stdout + done.stderr


def pytest_says(ws: Workspace, env: dict[str, str]) -> str:
    done = subprocess.run(
        [str(project_python()), "-m", "pytest",
            "-q", "-p", "no:cacheprovider", "tests/test_env.py"],
        cwd=ws.root, env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    return done.stdout.strip().splitlines()[-1]


def learned(ws: Workspace) -> set[str]:
    """The names learned (installed pytest plugins read some of their own: hypothesis')."""
    path = workspace_state_dir(ws.root) / "env-learned.json"
    return set(json.loads(path.read_text())) if path.exists() else set()


def test_a_variable_installed_code_reads_gives_pytests_answer(ws: Workspace, outside: Path) -> None:
    workspace(ws, outside)
    env = environment(DEMO_CA_BUNDLE="/etc/demo.pem")
    assert "1 failed" in pytest_says(ws, env)
    code, out = maestro(ws, env, "test", "tests/test_env.py")
    # pytest did not get it: the file ran again with it, and that run is pytest's answer
    assert code == 1 and "1 failed" in out, out
    assert f"tests/test_env.py read {NAME}, which your environment sets" in out, out
    assert "it ran again with it passed" in out and "key changes once" in out, out
    assert {NAME, "DEMO_UNSET_TOO"} <= learned(ws)  # read too, unset: keyed once set
    code, out = maestro(ws, env, "test", "tests/test_env.py")
    assert code == 1 and "1 failed" in out and "environment" not in out, out  # passed now
    code, out = maestro(ws, environment(), "test", "tests/test_env.py")
    assert code == 0 and "1 passed" in out, out  # unset: another key, its own answer
    code, out = maestro(ws, environment(), "test", "tests/test_env.py")
    assert "1 cached" in out and "1 passed" in out, out


def test_through_a_daemon_the_first_result_is_not_stored(ws: Workspace, outside: Path) -> None:
    # the daemon gets the client's allowlisted values and only the names of the rest: when its
    # client does not give the value (no `ask_env`), the result is shown, not stored, and the
    # next request (whose client reads the learned names) sends the value
    workspace(ws, outside)
    user = environment(DEMO_CA_BUNDLE="/etc/demo.pem")
    allowlist = allowlist_with([*read_env_names(workspace_state_dir(ws.root))])
    sent = {**dict(allowlisted_env(allowlist, user)), WITHHELD_ENV: f"{NAME},DEMO_NOT_READ"}
    with Cache.open() as cache:
        first = testing.run(ws.graph(), cache, ws.interpreter, ONLY, environ=sent)
    assert first.passed == 1 and [o.stored for o in first.files] == [False]
    assert first.environment[0] == (
        f"tests/test_env.py read {NAME}, which your environment sets but Maestro did not pass"
        " to pytest: its outcome may not be plain pytest's and is not stored; it is passed"
        " from the next run on"
    )
    assert {NAME, "DEMO_UNSET_TOO"} <= learned(ws)
    assert NAME in read_env_names(workspace_state_dir(ws.root))
    planned = ws.plan(ONLY)
    assert "it read $DEMO_CA_BUNDLE, which your environment sets" in planned.files[0].describe()
    allowlist = allowlist_with([*read_env_names(workspace_state_dir(ws.root))])
    sent = dict(allowlisted_env(allowlist, user))
    assert sent[NAME] == "/etc/demo.pem"
    with Cache.open() as cache:
        second = testing.run(ws.graph(), cache, ws.interpreter, ONLY, environ=sent)
    assert second.failed == 1 and not second.environment  # as pytest says


def test_a_daemon_asks_its_client_and_the_first_run_is_pytests(
    ws: Workspace, outside: Path
) -> None:
    # a real daemon started without the variable, real clients (the CLI's fast path, then the
    # full CLI's typed client with --junit-xml): the daemon asks the client for the value
    workspace(ws, outside)
    (outside / "envlib2.py").write_text(LIBRARY.replace("DEMO_CA_BUNDLE", "DEMO_SECOND"))
    ws.write("tests/test_env2.py", TEST.replace("envlib", "envlib2"))
    env = environment(
        DEMO_CA_BUNDLE="/etc/demo.pem", DEMO_SECOND="/etc/second.pem", MAESTRO_DAEMON="start"
    )
    assert "1 failed" in pytest_says(ws, env)
    code, out = maestro(ws, environment(), "daemon", "start")
    assert code == 0, out
    try:
        for args in (["tests/test_env.py"], ["tests/test_env2.py", "--junit-xml", "j.xml"]):
            code, out = maestro(ws, env, "test", *args)
            assert code == 1 and "1 failed" in out, out
            assert "it ran again with it passed, and that run counts" in out, out
        code, out = maestro(ws, env, "test", "tests/test_env2.py")  # keyed with the value
        assert code == 1 and "1 failed" in out and "environment" not in out, out
    finally:
        maestro(ws, environment(), "daemon", "stop")


def test_a_variable_read_unset_keys_the_result_once_set(ws: Workspace, outside: Path) -> None:
    # stored while the user's shell did not set it; set later, plain pytest sees it: the
    # stored pass must not be served for it
    workspace(ws, outside)
    code, out = maestro(ws, environment(), "test", "tests/test_env.py")
    assert code == 0 and "1 passed" in out and "environment" not in out, out
    assert {NAME, "DEMO_UNSET_TOO"} <= learned(ws)  # absent from the key while unset
    code, out = maestro(ws, environment(), "test", "tests/test_env.py")
    assert "1 cached" in out, out
    env = environment(DEMO_UNSET_TOO="/etc/other.pem")
    assert "1 failed" in pytest_says(ws, env)
    code, out = maestro(ws, env, "test", "tests/test_env.py")
    assert code == 1 and "1 failed" in out and "$DEMO_UNSET_TOO" in out, out


def test_a_steering_variable_is_never_learned(ws: Workspace, outside: Path) -> None:
    workspace(ws, outside)
    ws.write(
        "tests/test_env.py",
        """
        import envlib


        def test_steering():
            assert envlib.steering() is None  # never passed: it would change the run
        """,
    )
    env = environment(PYTEST_ADDOPTS="-p no:cacheprovider")
    code, out = maestro(ws, env, "test", "tests/test_env.py")
    assert code == 0 and "1 passed" in out and "environment" not in out, out
    assert "PYTEST_ADDOPTS" not in learned(ws)
