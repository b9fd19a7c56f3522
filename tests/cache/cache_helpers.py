"""Builders and raw-LMDB helpers shared by the cache tests."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import lmdb

from maestro.cache import ActionResult, Digest, Provenance, TestOutcome, Timing


def make_result(
    stdout: Digest | None = None,
    stderr: Digest | None = None,
    junit: Digest | None = None,
    *,
    cpu_s: float = 1.5,
    wall_s: float = 2.0,
    exit_code: int = 0,
) -> ActionResult:
    return ActionResult(
        exit_code=exit_code,
        tests=[
            TestOutcome(node_id="tests/test_a.py::test_ok", outcome="passed", duration_s=0.01),
            TestOutcome(
                node_id="tests/test_a.py::test_bad",
                outcome="failed",
                duration_s=0.2,
                path="tests/test_a.py",
                line=12,
                message="assert 1 == 2",
            ),
        ],
        stdout=stdout,
        stderr=stderr,
        junit=junit,
        timing=Timing(started_at=datetime(2026, 1, 2, tzinfo=UTC), wall_s=wall_s, cpu_s=cpu_s),
        provenance=Provenance.current(),
        inputs={"src/a.py": "ab" * 32},
        dynamic_deps=["data/fixture.json"],
    )


def raw_put(env_path: Path, db: bytes, key: bytes, value: bytes) -> None:
    """Write directly into the LMDB file, bypassing Cache (simulates on-disk corruption).

    The caller must have closed every Cache on this path: LMDB forbids a second open in-process.
    """
    env = lmdb.open(str(env_path), max_dbs=16, map_size=1 << 30)
    try:
        handle = env.open_db(db)
        with env.begin(write=True) as txn:
            txn.put(key, value, db=handle)
    finally:
        env.close()


def action_key(n: int) -> str:
    return f"{n:064x}"


def raw_get(env_path: Path, db: bytes, key: bytes) -> bytes | None:
    """Read one stored value directly from the LMDB file (same caveat as `raw_put`)."""
    env = lmdb.open(str(env_path), max_dbs=16, map_size=1 << 30)
    try:
        handle = env.open_db(db)
        with env.begin() as txn:
            value = txn.get(key, db=handle)
            return bytes(value) if value is not None else None
    finally:
        env.close()


def flip_failed_to_passed(env_path: Path, action_hex: str) -> None:
    """Edit a stored action result in place: every "failed" outcome becomes "passed".

    A same-length byte edit of the msgpack string, so the value still decodes: what a person
    editing the file (or a stray write) could do without breaking the encoding.
    """
    key = bytes.fromhex(action_hex)
    stored = raw_get(env_path, b"ac", key)
    assert stored is not None
    edited = stored.replace(b"\xa6failed", b"\xa6passed")
    assert edited != stored, "the stored result holds no failed outcome to edit"
    raw_put(env_path, b"ac", key, edited)
