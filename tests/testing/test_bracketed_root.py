"""A workspace whose folder name holds brackets ("proj[v2]") is printed whole: rich read "[v2]"
as a markup tag and `maestro daemon status` / `maestro status` said "daemon not running for
.../proj", another folder."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

MAESTRO = str(Path(sys.executable).with_name("maestro"))


def _said(root: Path, tmp_path: Path, *args: str) -> str:
    env = {**os.environ, "MAESTRO_STATE_DIR": str(tmp_path / "state")}
    env["MAESTRO_CACHE_DIR"] = str(tmp_path / "cache")
    done = subprocess.run(
        [MAESTRO, *args, "--root", str(root)],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return done.stdout + done.stderr


def test_a_root_with_brackets_is_printed_whole(tmp_path: Path) -> None:
    root = tmp_path / "proj[v2]"
    root.mkdir()
    (root / "pyproject.toml").write_text('[project]\nname = "p"\nversion = "0"\n')
    for args in (("daemon", "status"), ("status",)):
        said = _said(root, tmp_path, *args)
        assert f"not running for {root}\n" in said, (args, said)
