"""The local telemetry store writes rows already redacted (node ids, changed paths, symbols),
with the redactor the result store uses; finding rows by the ids callers hold still works."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from redaction_seeds import environ_for, seeds
from test_redaction import leaked

from maestro.model.telemetry import ChangeSet, Telemetry, TestResult
from maestro.redaction import Redactor


def _stored(path: Path) -> str:
    files = [p for p in path.parent.iterdir() if p.name.startswith(path.name)]  # + -wal, -shm
    return "\n".join(p.read_bytes().decode("utf-8", "replace") for p in files)


def test_rows_are_redacted_before_they_are_written(tmp_path: Path) -> None:
    planted = list(seeds())
    redactor = Redactor.from_environ(environ_for(planted))  # as the engine builds it
    path = tmp_path / "telemetry.sqlite3"
    ids = [f"tests/test_p.py::test_param[{i}-{s.text}]" for i, s in enumerate(planted)]
    change = ChangeSet(
        files=tuple(f"data/{i}-{s.text}.txt" for i, s in enumerate(planted[:40])),
        symbols=tuple(f"pkg.mod.f{i} {s.text}" for i, s in enumerate(planted[40:80])),
        distances={f"tests/t{i} {s.text}.py": 1 for i, s in enumerate(planted[80:120])},
        executed={ids[0]: 1},
    )
    with Telemetry(path, redactor=redactor) as tel:
        run = tel.record_run(
            change, [TestResult(t, "failed", 0.1) for t in ids], kind="speculative", ts=1.0
        )
        assert tel.mark_used(run, ids[:3]) == 3  # found by the raw ids the daemon holds
        [stored_run] = tel.runs(days=None)
        assert len(stored_run.results) == len(planted)
        assert sum(1 for v in stored_run.used.values() if v) == 3
    text = _stored(path)
    missed = Counter(s.kind for s in planted if leaked(s, text))
    assert not missed, f"unredacted in the telemetry database: {dict(missed)}"
    assert text.count("[REDACTED:") >= len(planted)
    assert "tests/test_p.py::test_param[0-" in text  # the ids keep their shape


def test_ordinary_rows_are_stored_unchanged(tmp_path: Path) -> None:
    ids = [f"tests/test_a.py::test_{i}[x-{i}]" for i in range(50)]
    with Telemetry(tmp_path / "t.sqlite3", redactor=Redactor.from_environ({})) as tel:
        tel.record_run(ChangeSet(files=("src/a.py",)), [TestResult(t, "passed", 0.0) for t in ids])
        [run] = tel.runs(days=None)
    assert sorted(r.test for r in run.results) == sorted(ids)
    assert run.change.files == ("src/a.py",)
