"""detect-secrets' detectors shipped with Maestro (maestro/detectors_table.py): a first run, whose
user cache holds none yet, redacts without importing detect-secrets and requests (0.1-0.2 s of
CPU of every first run), with exactly the detectors the installed package has."""

from __future__ import annotations

import os
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest

from maestro import detectors_table, redaction


def test_the_bundled_rows_are_the_installed_detect_secrets_rows() -> None:
    installed = version("detect-secrets")
    rows = redaction._imported_detectors()
    if installed != detectors_table.VERSION:
        pytest.skip(f"detect-secrets {installed} installed; the table is for its own version")
    assert list(detectors_table.ROWS) == rows, "put these rows in maestro/detectors_table.py:\n" + (
        "".join(f"    {row!r},\n" for row in rows)
    )


def test_a_first_run_redacts_without_importing_detect_secrets(tmp_path: Path) -> None:
    probe = (
        "import sys\n"
        "from maestro.redaction import Redactor\n"
        "text = 'token = \"ghp_' + 'a' * 36 + '\"\\npassword = \"hunter2hunter2\"'\n"
        "out = Redactor().redact(text)\n"
        "assert 'hunter2hunter2' not in out and 'ghp_' + 'a' * 36 not in out, out\n"
        "print('detect_secrets' in sys.modules)\n"
    )
    cache = tmp_path / "empty-cache"
    env = {**os.environ, "MAESTRO_CACHE_DIR": str(cache)}
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd="/", env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"
    assert list((cache / "detectors").glob("detect-secrets-*.json"))  # later runs read that
