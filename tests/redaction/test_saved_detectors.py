"""detect-secrets' detectors read back from the user cache: the same patterns, the same findings,
and a later process redacts without importing detect-secrets (0.2-0.5 s of CPU each CLI run)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from redaction_seeds import seeds

from maestro import redaction


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("MAESTRO_CACHE_DIR", str(tmp_path))
    redaction._detector_patterns.cache_clear()
    yield tmp_path
    redaction._detector_patterns.cache_clear()


def _saved(cache: Path) -> Path:
    found = list((cache / "detectors").glob("detect-secrets-*.json"))
    assert len(found) == 1
    return found[0]


def test_saved_detectors_find_what_imported_ones_find(cache: Path) -> None:
    imported = redaction._detector_patterns()  # imports, then saves
    path = _saved(cache)
    assert path.stat().st_mode & 0o777 == 0o600
    assert (cache / "detectors").stat().st_mode & 0o777 == 0o700
    redaction._detector_patterns.cache_clear()
    read_back = redaction._detector_patterns()
    assert [(p.kind, p.regex, p.group, p.triggers, p.requires, p.needs) for p in read_back] == [
        (p.kind, p.regex, p.group, p.triggers, p.requires, p.needs) for p in imported
    ]
    text = "\n".join(s.text for s in seeds())
    redactor = redaction.Redactor()
    assert redactor.findings(text)  # the seeds hold secrets the detectors find ...
    redaction._detector_patterns.cache_clear()
    path.unlink()
    assert redaction.Redactor().findings(text) == redactor.findings(text)  # ... the same ones


def test_a_damaged_saved_file_is_replaced_from_detect_secrets(cache: Path) -> None:
    redaction._detector_patterns()
    path = _saved(cache)
    path.write_text('[["aws-access-key", "(unclosed", 0, null]]')
    redaction._detector_patterns.cache_clear()
    assert len(redaction._detector_patterns()) > 10
    assert "(unclosed" not in path.read_text()


def test_a_later_process_redacts_without_importing_detect_secrets(cache: Path) -> None:
    redaction._detector_patterns()
    probe = (
        "import sys\n"
        "from maestro.redaction import Redactor\n"
        "text = 'token = \"ghp_' + 'a' * 36 + '\"\\npassword = \"hunter2hunter2\"'\n"
        "out = Redactor().redact(text)\n"
        "assert 'hunter2hunter2' not in out, out\n"
        "print('detect_secrets' in sys.modules)\n"
    )
    env = {**os.environ, "MAESTRO_CACHE_DIR": str(cache)}
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd="/", env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"


def test_reading_them_back_does_not_import_importlib_metadata(cache: Path) -> None:
    """The daemon formats its first log line with the detectors, before its first answer: the
    saved file is found by detect-secrets' version without importlib.metadata (and email)."""
    from importlib.metadata import version

    redaction._detector_patterns()
    assert _saved(cache).name == f"detect-secrets-{version('detect-secrets')}.json"
    probe = (
        "import sys\n"
        "from maestro.redaction import Redactor\n"
        "out = Redactor().redact('password = \"hunter2hunter2\"')\n"
        "assert 'hunter2hunter2' not in out, out\n"
        "print(sorted(m for m in sys.modules if m.startswith(('importlib.metadata', 'email'))))\n"
    )
    env = {**os.environ, "MAESTRO_CACHE_DIR": str(cache)}
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd="/", env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
    assert len(list((cache / "detectors").iterdir())) == 1  # read back, not saved again


def test_a_long_lived_process_reads_the_detectors_in_a_child(cache: Path) -> None:
    """No detectors saved yet: a child reads them, the process never loads detect-secrets."""
    probe = (
        "import sys\n"
        "from maestro.redaction import Redactor, import_detectors_apart\n"
        "import_detectors_apart()\n"
        "out = Redactor().redact('password = \"hunter2hunter2\"')\n"
        "assert 'hunter2hunter2' not in out, out\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'detect_secrets', 'requests'}))\n"
    )
    env = {**os.environ, "MAESTRO_CACHE_DIR": str(cache)}
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd="/", env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
    assert _saved(cache).stat().st_size > 0


def test_without_a_child_the_detectors_are_imported(
    cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(redaction, "_apart", threading.Event())
    redaction.import_detectors_apart()
    monkeypatch.setattr(sys, "executable", str(cache / "no-such-python"))
    assert len(redaction._detector_patterns()) > 10
    assert _saved(cache).stat().st_size > 0
