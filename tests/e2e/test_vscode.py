"""Real VS Code end to end: code-server (VS Code for the browser, from the npm registry) with the
built .vsix installed, driven by playwright-core in Debian's Chromium
(clients/vscode/e2e/drive.cjs).

It opens a workspace with a failing test, sees the Maestro status bar item and the code lenses, runs
the test file from its lens and then every test from the Test Explorer (a run past eglot-like 10 s
request timeouts that ends in the Testing view), and sees the failure as a squiggle at the failing
line, in the Problems panel (with the raising line) and in the Testing view, with folders and a
parametrized function's sets grouped under it (one Problems entry for their one failing assert) and
the failure's whole report from pytest in the Test Results panel, the Impacted Tests view of a
source file, and another source file's lens through an edit ("unsaved edit") and a save (the saved
count at once). Then it restarts the daemon and reloads the window (a new language server) and sees
the stored result again: the lens marked cached, the squiggle, the Problems entry, the Testing view.
Last, a run a workspace Rego rule refuses shows a warning with the rule, its remediation and the
retry time. Screenshots: tests/e2e/artifacts/vscode/.

A second session (clients/vscode/e2e/drive_restart.cjs) runs every test from the Testing view,
edits a test file so that its passing test fails, saves and reloads the window: the pass shows
as outdated after the save and is gone after the reload (VS Code's own copy of a run's results
is never shown; only the results the cache holds for the current inputs come back). A third
(clients/vscode/e2e/drive_follow.cjs) proves `maestro.impactedView.followUnsaved`: off, typing
leaves the Impacted Tests view on the saved file's answer; turned on, typing refreshes it (and
`maestro.trace.server` set to messages traces the LSP traffic in the Maestro output, which the
other sessions, at its default, do not).

Setup (cached under .bench/vscode-e2e): clients/vscode/e2e/setup.sh; the .vsix:
clients/vscode/build.sh (both run here when needed). Skips, saying why, when that is impossible
on this machine.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from editor_helpers import real_python, real_sdist
from workspace_procs import (
    CALC_FAIL_LINE,
    CALC_FILES,
    CALC_RAISE_LINE,
    OTHER_FILES,
    commit_all,
    pyproject,
    write_files,
)

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
CLIENT = REPO / "clients" / "vscode"
SETUP = CLIENT / "e2e" / "setup.sh"
DRIVER = CLIENT / "e2e" / "drive.cjs"
CACHE = Path(os.environ.get("MAESTRO_VSCODE_E2E_DIR", REPO / ".bench" / "vscode-e2e"))
ARTIFACTS = Path(__file__).with_name("artifacts") / "vscode"
CHROMIUM = os.environ.get("MAESTRO_E2E_CHROMIUM", "/usr/bin/chromium")

SLOW_S = 11
FILES = {
    "pyproject.toml": pyproject("vscdemo"),
    **CALC_FILES,
    **OTHER_FILES,
    "tests/test_frozen.py": """
        def test_frozen():
            assert True
        """,
    # a run of everything outlasts eglot-like request timeouts (10 s) and still ends in the view
    "tests/test_slow.py": f"""
        import time


        def test_slow():
            time.sleep({SLOW_S})
        """,
    # a folder below tests/, and one failing assert shared by 10 parameter sets
    "tests/unit/__init__.py": "",
    "tests/unit/test_param.py": """
        import pytest


        @pytest.mark.parametrize("n", range(12))
        def test_many(n):
            assert n < 2
        """,
    # a workspace rule that refuses a run of only the frozen file, with remediation and retry time
    ".maestro/policy/freeze.rego": """
        package maestro.workspace.run

        import rego.v1

        # METADATA
        # custom:
        #   id: ops.release_freeze
        #   remediation: tests/test_frozen.py is frozen while the release is cut
        deny contains {
        \t"rule": "ops.release_freeze", "msg": "frozen tests", "retry_after_ms": 90000,
        } if {
        \tcount(input.paths) > 0
        \tevery p in input.paths {
        \t\tstartswith(p, "tests/test_frozen.py")
        \t}
        }
        """,
}
FAIL_LINE = CALC_FAIL_LINE  # tests/test_calc.py, 1-based: `assert div(1, 0) == 0`
RAISE_LINE = CALC_RAISE_LINE  # pkg/calc.py


def _maestro() -> Path | None:
    for cand in (Path(sys.executable).parent / "maestro", REPO / ".venv" / "bin" / "maestro"):
        if cand.exists():
            return cand
    return None


def _node_ok() -> str | None:
    node = shutil.which("node")
    if node is None:
        return "node is not installed (node >= 20 needed)"
    major = subprocess.run(
        [node, "-p", "process.versions.node.split('.')[0]"], capture_output=True, text=True
    )
    if major.returncode != 0 or int(major.stdout.strip() or 0) < 20:
        return f"node >= 20 needed (found {major.stdout.strip()!r})"
    return None


def _newest_source() -> float:
    paths = [*CLIENT.glob("src/**/*.ts"), CLIENT / "package.json", CLIENT / "package-lock.json"]
    return max(p.stat().st_mtime for p in paths)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=5)
            return
        except subprocess.TimeoutExpired:
            continue


def _pids_with(needle: bytes) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if needle in (entry / "cmdline").read_bytes():
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def _kill_under(base: Path) -> None:
    """Whatever still runs with our scratch dir in its argv (daemons detach from the group)."""
    for pid in _pids_with(os.fsencode(base)):
        if pid != os.getpid():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def code_server() -> Path:
    """code-server and playwright-core ready in CACHE (setup.sh; minutes once, then cached)."""
    why = _node_ok()
    if why:
        pytest.skip(why)
    if not Path(CHROMIUM).exists() and os.geteuid() != 0:
        pytest.skip(f"{CHROMIUM} missing and not root (apt-get install chromium)")
    proc = subprocess.run(
        ["bash", str(SETUP), str(CACHE)], capture_output=True, text=True, timeout=1800
    )
    if proc.returncode == 2:
        pytest.skip(f"code-server setup impossible here: {proc.stderr.strip()[-500:]}")
    if proc.returncode != 0:
        tail = (proc.stdout + proc.stderr)[-3000:]
        if any(
            s in tail for s in ("ENOTFOUND", "EAI_AGAIN", "ECONNREFUSED", "ETIMEDOUT", "network")
        ):
            pytest.skip(f"code-server setup needs the npm registry, unreachable: {tail[-500:]}")
        pytest.fail(f"clients/vscode/e2e/setup.sh failed ({proc.returncode}):\n{tail}")
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} missing after setup")
    return CACHE / "node_modules"


@pytest.fixture(scope="module")
def vsix() -> Path:
    version = json.loads((CLIENT / "package.json").read_text())["version"]
    path = CLIENT / f"maestro-vscode-{version}.vsix"
    if not path.exists() or path.stat().st_mtime < _newest_source():
        proc = subprocess.run(
            ["bash", str(CLIENT / "build.sh")], capture_output=True, text=True, timeout=900
        )
        assert proc.returncode == 0, (
            f"clients/vscode/build.sh failed:\n{(proc.stdout + proc.stderr)[-3000:]}"
        )
    assert path.exists()
    return path


@pytest.fixture
def scratch() -> Iterator[Path]:
    base = Path(tempfile.mkdtemp(prefix="mvsc", dir="/tmp"))  # short: the daemon's AF_UNIX path
    try:
        yield base
    finally:
        _kill_under(base)
        shutil.rmtree(base, ignore_errors=True)


def _workspace(root: Path) -> None:
    write_files(root, FILES)
    commit_all(root, "init")


def _small_workspace(scratch: Path, name: str) -> Path:
    """A committed project with pkg/calc.py, pkg/other.py and their test files."""
    ws = scratch / "ws"
    ws.mkdir()
    write_files(ws, {"pyproject.toml": pyproject(name), **CALC_FILES, **OTHER_FILES})
    commit_all(ws, "init")
    return ws


def _settings(maestro: Path) -> dict[str, object]:
    return {
        "security.workspace.trust.enabled": False,
        "workbench.startupEditor": "none",
        "workbench.tips.enabled": False,
        "telemetry.telemetryLevel": "off",
        "extensions.ignoreRecommendations": True,
        "git.enabled": False,
        # desktop VS Code's default; VS Code for the web saves 1 s after each edit, and an
        # unsaved edit (the "(unsaved edit)" lens) would not last
        "files.autoSave": "off",
        "maestro.path": str(maestro),
        "maestro.interpreter": str(maestro.parent / "python"),
    }


def _session(
    code_server: Path,
    vsix: Path,
    scratch: Path,
    ws: Path,
    driver_path: Path,
    artifacts: Path,
    drive_env: dict[str, str] | None = None,
    timeout_s: float = 600,
    interpreter_setting: bool = True,
    extra_settings: dict[str, object] | None = None,
) -> dict[str, Any]:
    """code-server on ``ws`` with the .vsix installed, driven by ``driver_path``: what it saw.
    Without ``interpreter_setting`` the workspace's maestro.toml names the interpreter;
    ``extra_settings`` go to the user's and (maestro.*) the workspace's settings."""
    maestro = _maestro()
    if maestro is None:
        pytest.skip("no maestro executable next to this Python or in .venv (make test creates it)")
    ud, ext = scratch / "ud", scratch / "ext"
    (ud / "User").mkdir(parents=True)
    settings = {**_settings(maestro), **(extra_settings or {})}
    if not interpreter_setting:
        del settings["maestro.interpreter"]
    (ud / "User" / "settings.json").write_text(json.dumps(settings, indent=2))
    # also as workspace settings: after a window reload code-server sometimes starts the extension
    # host without the user's machine-overridable settings (maestro.path)
    (ws / ".vscode").mkdir(exist_ok=True)
    (ws / ".vscode" / "settings.json").write_text(
        json.dumps({k: v for k, v in settings.items() if k.startswith("maestro.")}, indent=2)
    )
    entry = code_server / "code-server" / "out" / "node" / "entry.js"
    env = {
        **os.environ,
        "MAESTRO_STATE_DIR": str(scratch / "st"),
        "MAESTRO_CACHE_DIR": str(scratch / "ca"),
        "MAESTRO_DAEMON_START_TIMEOUT": "60",
    }
    env.pop("XDG_RUNTIME_DIR", None)
    common = [
        "--user-data-dir",
        str(ud),
        "--extensions-dir",
        str(ext),
        "--config",
        str(scratch / "cs.yaml"),
    ]
    inst = subprocess.run(
        ["node", str(entry), *common, "--install-extension", str(vsix)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert inst.returncode == 0 and "successfully installed" in inst.stdout, (
        inst.stdout + inst.stderr
    )

    port = _free_port()
    log = (scratch / "code-server.log").open("wb")
    server = subprocess.Popen(
        ["node", str(entry), *common, "--auth", "none", "--bind-addr", f"127.0.0.1:{port}",
         "--disable-telemetry", "--disable-update-check", "--disable-workspace-trust", str(ws)],
        stdout=log, stderr=subprocess.STDOUT, env=env, cwd=scratch, start_new_session=True,
    )  # fmt: skip
    driver: subprocess.Popen[bytes] | None = None
    if artifacts.exists():
        shutil.rmtree(artifacts)
    artifacts.mkdir(parents=True)
    out = scratch / "seen.json"
    drive_log = b""
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2)
                break
            except OSError:
                assert server.poll() is None, (scratch / "code-server.log").read_text()[-2000:]
                assert time.monotonic() < deadline, "code-server did not come up in 60 s"
                time.sleep(0.3)
        env_for_driver = {
            **env,
            **(drive_env or {}),
            "E2E_URL": f"http://127.0.0.1:{port}/?folder={ws}",
            "E2E_ARTIFACTS": str(artifacts),
            "E2E_NODE_MODULES": str(code_server),
            "E2E_OUT": str(out),
            "E2E_CHROMIUM": CHROMIUM,
        }
        driver = subprocess.Popen(
            ["node", str(driver_path)],
            env=env_for_driver,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            drive_log, _ = driver.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            _kill_group(driver)
            drive_log, _ = driver.communicate()
        (artifacts / "drive.log").write_bytes(drive_log)
    finally:
        if driver is not None and driver.poll() is None:
            _kill_group(driver)
        _kill_group(server)
        log.close()
        shutil.copy(scratch / "code-server.log", artifacts / "code-server.log")
        # one log per window session (the reload starts a second one)
        for i, p in enumerate(sorted((ud / "logs").rglob("*Maestro*.log"))):
            shutil.copy(p, artifacts / f"session{i}-{p.name}")

    assert out.exists(), f"the driver wrote nothing: {drive_log.decode(errors='replace')[-3000:]}"
    seen: dict[str, Any] = json.loads(out.read_text())
    (artifacts / "seen.json").write_text(json.dumps(seen, indent=2))
    assert "error" not in seen, f"{seen['error']}\nsteps: {seen['steps']}\nscreenshots: {artifacts}"
    return seen


def test_vscode_status_lens_run_failure_explorer(
    code_server: Path, vsix: Path, scratch: Path
) -> None:
    ws = scratch / "ws"
    ws.mkdir()
    _workspace(ws)
    seen = _session(code_server, vsix, scratch, ws, DRIVER, ARTIFACTS)
    assert len(seen["screenshots"]) >= 6 and all(
        Path(p).stat().st_size > 10_000 for p in seen["screenshots"]
    )

    # the status bar item, connected to the daemon, with the cache numbers in its tooltip
    assert "Maestro" in seen["statusBarEnd"]
    assert "daemon connected" in (seen["statusBarEndTooltip"] or ""), seen["statusBarEndTooltip"]
    assert "Cache:" in (seen["statusBarEndTooltip"] or "")
    # code lenses from the server: "Run file" on the file; none per test function (the Testing
    # gutter is the one run affordance per test in VS Code)
    assert "▶ Run file" in seen["lenses"] and "▶ Run" not in seen["lenses"], seen["lenses"]
    assert any("failed" in t for t in seen["lensesAfterRun"]), seen["lensesAfterRun"]
    # the failure in the editor: a squiggle, its hover, the Problems panel at the failing line
    assert seen["squiggles"] >= 1
    assert any("ZeroDivisionError" in h for h in seen["hover"]), seen["hover"]
    problems = "\n".join(seen["problems"])
    assert "test_div_zero failed: ZeroDivisionError: no zero please" in problems, problems
    assert (
        f"[Ln {FAIL_LINE}," in problems and f"raised here: pkg/calc.py:{RAISE_LINE}" in problems
    ), problems
    # the Test Explorer: discovered files, the failing file failed, the other passed
    rows = {r["label"]: r["icons"] for r in seen["explorer"]}
    calc = next(v for k, v in rows.items() if k.startswith("test_calc.py"))
    other = next(v for k, v in rows.items() if k.startswith("test_other.py"))
    assert any("failed" in i for i in calc), rows
    assert any("passed" in i for i in other), rows
    # the run of everything outlasted a 10 s request timeout and ended in the view
    assert seen["runAllSeconds"] > SLOW_S, seen["runAllSeconds"]
    slow = next(k for k in rows if k.startswith("test_slow.py"))
    assert any("passed" in i for i in rows[slow]), rows
    # with its real duration (the row reads "test_slow.py11.1s")
    took = re.fullmatch(r"test_slow\.py(\d+(?:\.\d+)?)s", slow)
    assert took and float(took.group(1)) >= SLOW_S, slow
    # only test_div_zero re-ran: test_add shows its carried result, not "queued"
    add = next(v for k, v in rows.items() if k.startswith("test_add"))
    assert any("passed" in i for i in add), rows
    # folders in the tree (tests/ and tests/unit/), parameter sets grouped under their function
    labels = [r["label"] for r in seen["explorer"]]
    assert any(k.startswith("tests") and not k.startswith("tests/") for k in labels), labels
    assert any(k.startswith("unit") for k in labels), labels
    many = next(v for k, v in rows.items() if k.startswith("test_many"))
    assert any("failed" in i for i in many), rows
    assert not any(k.startswith("test_many[") for k in labels), labels
    # the failure's whole report in the Test Results panel: pytest's traceback through the
    # test's assert to the line that raised in pkg/calc.py, not only its one-line message
    report = "\n".join(seen["failureReport"]).replace("\u00a0", " ")
    assert ">       assert div(1, 0) == 0" in report, seen["failureReport"]
    assert 'raise ZeroDivisionError("no zero please")' in report, seen["failureReport"]
    # one Problems entry for the one failing assert of 10 parameter sets (not 10)
    entries = [p for p in seen["problemsAfterAll"] if "test_many" in p and "failed" in p]
    assert len(entries) == 1 and "10 parameter sets" in entries[0], seen["problemsAfterAll"]
    # the source file: its impacted-tests lens and the Impacted Tests view
    assert any("impacted test" in t for t in seen["sourceLenses"]), seen["sourceLenses"]
    assert any(r.startswith("tests/test_calc.py") for r in seen["impactedView"]), seen[
        "impactedView"
    ]
    # another source file edited then saved: the lens marks the unsaved edit, then counts the
    # saved file at once (tests/test_other.py imports it)
    assert seen["otherLenses"] == ["▶ 1 impacted test file"], seen["otherLenses"]
    assert seen["otherLensesEdited"] == ["▶ 1 impacted test file (unsaved edit)"], seen[
        "otherLensesEdited"
    ]
    assert seen["otherLensesSaved"] == ["▶ 1 impacted test file"], seen["otherLensesSaved"]
    assert seen["savedMs"] < 10_000, seen["savedMs"]
    assert (ws / "pkg/other.py").read_text().endswith("# edited\n")
    # after a daemon restart and a window reload: the stored result of the unchanged inputs
    assert any("(cached, ran" in t and "failed" in t for t in seen["lensesAfterRestart"]), seen[
        "lensesAfterRestart"
    ]
    assert seen["squigglesAfterRestart"] >= 1
    after = "\n".join(seen["problemsAfterRestart"])
    assert "test_div_zero failed" in after and "cached result, ran" in after, after
    rows = {r["label"]: r["icons"] for r in seen["explorerAfterRestart"]}
    calc = next(v for k, v in rows.items() if k.startswith("test_calc.py"))
    assert any("failed" in i for i in calc), rows
    # a run the workspace policy refuses: a warning with the rule, remediation and retry time
    denied = "\n".join(seen["deniedNotifications"])
    assert "run refused by policy" in denied and "rule ops.release_freeze" in denied, denied
    assert "tests/test_frozen.py is frozen while the release is cut" in denied, denied
    assert "retry in 90 s" in denied, denied


FOLLOW_DRIVER = CLIENT / "e2e" / "drive_follow.cjs"


def test_vscode_impacted_view_follows_unsaved_edits_only_when_set(
    code_server: Path, vsix: Path, scratch: Path
) -> None:
    """`maestro.impactedView.followUnsaved`: off, typing in a source file leaves the Impacted
    Tests view on the saved file's answer (while its lens shows the server counted the edit);
    turned on in the workspace settings, the next keystrokes refresh the view to the unsaved
    edit's answer; a save refreshes it either way."""
    ws = _small_workspace(scratch, "vscfollow")
    seen = _session(
        code_server,
        vsix,
        scratch,
        ws,
        FOLLOW_DRIVER,
        ARTIFACTS.with_name("vscode-follow"),
        {"E2E_SOURCE": "pkg/other.py", "E2E_WS_SETTINGS": str(ws / ".vscode" / "settings.json")},
        timeout_s=300,
        extra_settings={
            "maestro.impactedView.followUnsaved": False,
            "maestro.trace.server": "messages",
        },
    )
    saved_answer = "1 impacted test file by pkg/other.py"
    assert saved_answer in seen["viewBefore"] and "tests/test_other.py" in seen["viewBefore"], seen
    assert "unsaved edit" not in seen["viewBefore"], seen["viewBefore"]
    # off: the server has the edit (the lens), the view was not refreshed by typing
    assert seen["lensesEdited"] == ["▶ 1 impacted test file (unsaved edit)"], seen["lensesEdited"]
    off = seen["viewOff"]
    assert saved_answer in off and "unsaved edit" not in off, off
    # on: typing refreshed it
    assert f"{saved_answer} (unsaved edit)" in seen["viewOn"], seen["viewOn"]
    # saved: the saved file's answer, whatever the setting
    assert saved_answer in seen["viewSaved"] and "unsaved edit" not in seen["viewSaved"], seen
    assert "# edited\n" in (ws / "pkg/other.py").read_text()
    # `maestro.trace.server` (vscode-languageclient's): messages traced in the Maestro output
    traced = _output_logs(ARTIFACTS.with_name("vscode-follow"))
    assert "[Trace - " in traced and "Sending request 'maestro/impactedTargets" in traced, traced[
        -2000:
    ]


def _output_logs(artifacts: Path) -> str:
    """The Maestro output channel of every window session _session kept."""
    logs = sorted(artifacts.glob("session*Maestro*.log"))
    assert logs, f"no Maestro output log in {artifacts}"
    return "\n".join(p.read_text(errors="replace") for p in logs)


RESTART_DRIVER = CLIENT / "e2e" / "drive_restart.cjs"
REAL_SOURCE = "src/dateutil/relativedelta.py"


def _icons(rows: list[dict[str, Any]], label: str) -> list[str]:
    row = next((r for r in rows if r["label"].startswith(label)), None)
    assert row is not None, f"no row {label} in {[r['label'] for r in rows]}"
    return list(row["icons"])


def test_vscode_edit_save_reload_shows_no_stale_pass(
    code_server: Path, vsix: Path, scratch: Path
) -> None:
    """A test that passed, then an edit of its file that makes it fail, saved, and a window
    reload: the Testing view and the gutter must not show the old pass (the stored result is of
    other inputs), while an untouched file's stored failure comes back."""
    ws = _small_workspace(scratch, "vscstale")
    seen = _session(
        code_server,
        vsix,
        scratch,
        ws,
        RESTART_DRIVER,
        ARTIFACTS.with_name("vscode-restart"),
        {
            "E2E_EDIT_FILE": "tests/test_other.py",
            "E2E_EDIT_TEXT": 'pkg.other.hello = lambda: "bye"\n',
            "E2E_KEPT": "test_calc.py",
        },
        timeout_s=400,
    )
    assert 'pkg.other.hello = lambda: "bye"' in (ws / "tests/test_other.py").read_text()
    assert any("passed" in i for i in _icons(seen["before"], "test_other.py")), seen["before"]
    # right after the save, in the same window: the pass is shown as outdated (dimmed)
    other = next(r for r in seen["afterSave"] if r["label"].startswith("test_other.py"))
    assert other["retired"], seen["afterSave"]
    # after the reload: the untouched file's failure is back (the server answered) ...
    assert any("failed" in i for i in _icons(seen["afterReload"], "test_calc.py")), seen[
        "afterReload"
    ]
    # ... and nothing says the edited file's test passed, in the view or in the gutter
    for label in ("test_other.py", "test_hello"):
        assert not any("passed" in i for i in _icons(seen["afterReload"], label)), seen[
            "afterReload"
        ]
        assert any("unset" in i for i in _icons(seen["afterReload"], label)), seen["afterReload"]
    assert not any("passed" in i for i in seen["gutterAfterReload"]), seen["gutterAfterReload"]
    assert not any("passed" in t for t in seen["lensesAfterReload"]), seen["lensesAfterReload"]
    # `maestro.trace.server` left at "off": no message is traced
    assert "[Trace - " not in _output_logs(ARTIFACTS.with_name("vscode-restart"))


@pytest.mark.extended
def test_vscode_real_project_lens_run_all_edit_reload(
    code_server: Path, vsix: Path, scratch: Path
) -> None:
    """python-dateutil (its sdist, its own venv): the first file opened, a source file, has its
    impacted-tests lens (the count `maestro impacted` gives), the same right after an edit and a
    save; a run of every test (1000+ tests) from the Testing view ends there; an edit of
    test_easter.py that breaks its tests, saved, then a window reload: test_easter.py is not shown
    passed, the untouched test_relativedelta.py shows its stored pass again."""
    archive, python = real_sdist(), real_python()
    base = scratch / "x"
    base.mkdir()
    with tarfile.open(archive) as tar:
        tar.extractall(base, filter="data")
    ws = scratch / "ws"
    (base / archive.name.removesuffix(".tar.gz")).rename(ws)
    (ws / "maestro.toml").write_text(f"interpreter = {str(python)!r}\n")
    commit_all(ws, "init")
    seen = _session(
        code_server,
        vsix,
        scratch,
        ws,
        RESTART_DRIVER,
        ARTIFACTS.with_name("vscode-real"),
        {
            "E2E_SOURCE": REAL_SOURCE,
            # every module of dateutil imports the package, whose __init__ names them all: an
            # edit of easter.py changes every test file's inputs, an edit of a test file its own
            "E2E_EDIT_FILE": "tests/test_easter.py",
            "E2E_EDIT_TEXT": "easter = lambda *args, **kwargs: None\n",
            "E2E_KEPT": "test_relativedelta.py",
            "E2E_KEPT_STATE": "passed",
            "E2E_RUN_TIMEOUT_S": "400",
        },
        timeout_s=900,
        interpreter_setting=False,  # maestro.toml: the project's own venv
    )
    maestro = _maestro()
    assert maestro is not None
    cli = subprocess.run(
        [str(maestro), "impacted", REAL_SOURCE, "--json"],
        cwd=ws, capture_output=True, text=True, timeout=120,
        env={**os.environ, "MAESTRO_STATE_DIR": str(scratch / "st"),
             "MAESTRO_CACHE_DIR": str(scratch / "ca")},
    )  # fmt: skip
    assert cli.returncode == 0, cli.stderr
    count = sum(1 for row in json.loads(cli.stdout)["impacted"] if row["kind"] == "test")
    assert count >= 5, cli.stdout  # most of dateutil's test files use relativedelta
    title = f"▶ {count} impacted test files"
    assert seen["sourceLenses"] == [title], seen["sourceLenses"]
    assert seen["sourceDirty"], seen["sourceTabClass"]
    assert seen["sourceLensesEdited"] == [f"{title} (unsaved edit)"], seen["sourceLensesEdited"]
    assert seen["sourceLensesSaved"] == [title], seen["sourceLensesSaved"]
    assert seen["savedMs"] < 10_000, seen["savedMs"]
    # the run of every test ended in the view: files passed, and dateutil's own failures
    before = seen["before"]
    assert any("passed" in i for i in _icons(before, "test_easter.py")), before
    assert any("passed" in i for i in _icons(before, "test_relativedelta.py")), before
    assert any("failed" in i for i in _icons(before, "test_imports.py")), before
    # the edit, saved: test_easter.py's pass is outdated; after the reload it is gone, while the
    # untouched file's stored pass is back
    saved = {r["label"].split(".py")[0]: r for r in seen["afterSave"]}
    assert saved["test_easter"]["retired"], seen["afterSave"]
    assert not saved["test_relativedelta"]["retired"], seen["afterSave"]
    after = seen["afterReload"]
    assert any("passed" in i for i in _icons(after, "test_relativedelta.py")), after
    assert not any("passed" in i for i in _icons(after, "test_easter.py")), after
    assert not any("passed" in i for i in seen["gutterAfterReload"]), seen["gutterAfterReload"]
    assert not any("passed" in t for t in seen["lensesAfterReload"]), seen["lensesAfterReload"]
