"""Secrets a test prints, raises or fails with never reach the cache: the action result's
messages, the stdout/stderr/JUnit blobs in the CAS (what a team cache would upload) hold the
redaction markers instead, and the run still reports the failure."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from testing_helpers import Workspace

from maestro.cache import Cache

GITHUB = "ghp_" + "Zq7" * 12  # 36 characters after the prefix: a GitHub token's shape
AWS = "AKIA" + "QW3RT7UZ9PLM4XNB"
DEPLOY = "correct-horse-battery-staple-42"  # a value known from the environment, no pattern


def _secrets_in(data: bytes) -> list[str]:
    text = data.decode("utf-8", "replace")
    return [s for s in (GITHUB, AWS, DEPLOY) if s in text]


def test_secrets_printed_by_tests_are_redacted_before_the_cache(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DEPLOY_PASSWORD", DEPLOY)  # the developer's shell holds it
    ws.write("tests/creds.txt", DEPLOY + "\n")
    ws.write(
        "tests/test_leak.py",
        f'''
        import pathlib
        import sys
        import warnings

        TOKEN = "{GITHUB}"


        def test_prints_and_fails():
            print("pushing with", TOKEN)
            print("aws key", "{AWS}", file=sys.stderr)
            assert False, f"auth failed for {{TOKEN}}"


        def test_reads_a_secret_file():
            secret = pathlib.Path(__file__).with_name("creds.txt").read_text().strip()
            warnings.warn(f"using {{secret}}")
            raise RuntimeError("login refused: " + secret)
        ''',
    )
    summary = ws.run()
    assert summary.failed + summary.errors == 2  # the failures themselves are still reported
    leak = next(f for f in summary.files if f.target == "tests/test_leak.py")
    assert leak.result is not None
    messages = [t.message or "" for t in leak.result.tests]
    assert any("[REDACTED:github-token:" in m for m in messages), messages
    assert not _secrets_in("\n".join(messages).encode())
    with Cache.open() as cache:
        blobs = {name: cache.get_blob(d) for name, d in
                 (("stdout", leak.result.stdout), ("stderr", leak.result.stderr),
                  ("junit", leak.result.junit)) if d is not None}  # fmt: skip
        stored = Path(os.fspath(cache.path)) / "data.mdb"
        raw = stored.read_bytes() if stored.exists() else b""
    assert set(blobs) == {"stdout", "stderr", "junit"}
    for name, data in blobs.items():
        assert data is not None and not _secrets_in(data), (name, data[:2000])
    assert b"[REDACTED:" in blobs["stdout"] and b"[REDACTED:" in blobs["junit"]
    assert not _secrets_in(raw), "a secret is somewhere in the LMDB file"
