"""The fidelity bench's copy of testmon's baseline database: testmon keeps SQLite in WAL mode and
its process may exit without a checkpoint, leaving its last writes in `testmondata-wal`; the
bench must copy what a reader sees, and a restored baseline must not replay a later run's -wal."""

from __future__ import annotations

import contextlib
import sqlite3
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    # appended, not prepended: `maestro` must keep resolving to the installed link tree
    sys.path.append(str(REPO))

from bench.bench_fidelity import copy_sqlite  # noqa: E402

_WRITER = """
import os, sqlite3, sys
con = sqlite3.connect(sys.argv[1])
con.execute("PRAGMA journal_mode=WAL")
con.execute("PRAGMA wal_autocheckpoint=0")
for statement in sys.argv[2:]:
    con.execute(statement)
con.commit()
os._exit(0)  # as a process that never closes its connection: no checkpoint, the -wal stays
"""


def _write(path: Path, *statements: str) -> None:
    subprocess.run([sys.executable, "-c", _WRITER, str(path), *statements], check=True)


def _rows(path: Path) -> list[str]:
    with contextlib.closing(sqlite3.connect(path)) as con:
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        return [r[0] for r in con.execute("SELECT name FROM t ORDER BY name")]


def test_a_baseline_left_in_the_wal_is_copied_and_a_stale_wal_is_not_replayed(
    tmp_path: Path,
) -> None:
    db, base = tmp_path / "testmondata", tmp_path / "testmondata.base"
    _write(db, "CREATE TABLE t (name TEXT)", "INSERT INTO t VALUES ('a'), ('b')")
    assert Path(f"{db}-wal").stat().st_size > 0  # the baseline's rows are in the -wal only

    copy_sqlite(db, base)
    assert _rows(base) == ["a", "b"]

    _write(db, "INSERT INTO t VALUES ('a mutant run')")  # leaves its own -wal beside the file
    copy_sqlite(base, db)  # the next mutant starts from the baseline
    assert _rows(db) == ["a", "b"]
