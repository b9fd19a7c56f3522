"""Make the README's VS Code screenshots (docs/img/vscode-before-run.png,
docs/img/vscode-after-failing-run.png): code-server with the built extension on the editor
tests' project, driven in headless Chromium by vscode_screenshots.cjs.

    .venv/bin/python tests/e2e/vscode_screenshots.py     # from the repository root

Needs what the VS Code e2e test needs (`make vscode vscode-e2e-setup`: the .vsix, code-server and
playwright-core under $MAESTRO_VSCODE_E2E_DIR or .bench/vscode-e2e, Debian's chromium).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1]))  # tests/: workspace_procs, as under pytest
sys.path.insert(0, str(Path(__file__).parent))
from editor_helpers import FILES, REPO, Project, kill_daemons

DRIVER = Path(__file__).with_name("vscode_screenshots.cjs")
IMG = REPO / "docs" / "img"


def setup_dir() -> Path:
    for candidate in (os.environ.get("MAESTRO_VSCODE_E2E_DIR"), REPO / ".bench" / "vscode-e2e"):
        if candidate and (Path(candidate) / "node_modules" / "code-server").is_dir():
            return Path(candidate) / "node_modules"
    raise SystemExit("code-server is not set up: run `make vscode-e2e-setup` first")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> int:
    modules = setup_dir()
    version = json.loads((REPO / "clients/vscode/package.json").read_text())["version"]
    vsix = REPO / "clients" / "vscode" / f"maestro-vscode-{version}.vsix"
    if not vsix.exists():
        raise SystemExit(f"{vsix} is missing: run `make vscode` first")
    base = Path(tempfile.mkdtemp(prefix="mshot", dir="/tmp"))
    project = Project(base)
    project.env["HOME"] = os.environ.get("HOME", str(base))  # code-server's own files
    for rel, text in FILES.items():
        project.write(rel, text)
    project.commit()
    ud, ext = base / "ud", base / "ext"
    (ud / "User").mkdir(parents=True)
    maestro = Path(sys.executable).with_name("maestro")
    settings = {
        "security.workspace.trust.enabled": False,
        "workbench.startupEditor": "none",
        "workbench.tips.enabled": False,
        "telemetry.telemetryLevel": "off",
        "extensions.ignoreRecommendations": True,
        "git.enabled": False,
        "files.exclude": {"**/__pycache__": True, "**/.pytest_cache": True},
        "maestro.path": str(maestro),
        "maestro.interpreter": sys.executable,
    }
    (ud / "User" / "settings.json").write_text(json.dumps(settings, indent=2))
    entry = modules / "code-server" / "out" / "node" / "entry.js"
    common = [
        "--user-data-dir",
        str(ud),
        "--extensions-dir",
        str(ext),
        "--config",
        str(base / "c.yaml"),
    ]
    subprocess.run(
        ["node", str(entry), *common, "--install-extension", str(vsix)],
        check=True, capture_output=True, env=project.env, timeout=120,
    )  # fmt: skip
    port = free_port()
    server = subprocess.Popen(
        ["node", str(entry), *common, "--auth", "none", "--bind-addr", f"127.0.0.1:{port}",
         "--disable-telemetry", "--disable-update-check", "--disable-workspace-trust",
         str(project.root)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=project.env, cwd=base,
        start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise SystemExit("code-server did not come up in 60 s") from None
                time.sleep(0.3)
        IMG.mkdir(parents=True, exist_ok=True)
        env = {
            **project.env,
            "E2E_URL": f"http://127.0.0.1:{port}/?folder={project.root}",
            "E2E_NODE_MODULES": str(modules),
            "E2E_CHROMIUM": os.environ.get("MAESTRO_E2E_CHROMIUM", "/usr/bin/chromium"),
            "E2E_BEFORE": str(IMG / "vscode-before-run.png"),
            "E2E_AFTER": str(IMG / "vscode-after-failing-run.png"),
        }
        done = subprocess.run(["node", str(DRIVER)], env=env, timeout=600, check=False)
        return done.returncode
    finally:
        os.killpg(server.pid, 15)
        server.wait(timeout=10)
        kill_daemons(project.root)
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
