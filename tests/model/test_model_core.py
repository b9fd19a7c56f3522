"""Unit tests of maestro.model on synthetic data: telemetry, features, training, persistence."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from synth import TESTS, synthetic_runs

from maestro.model.dataset import evaluate, replay
from maestro.model.features import FAR, FEATURES, History, changed_symbols
from maestro.model.rank import rank, select, threshold_for_recall
from maestro.model.telemetry import ChangeSet, Telemetry, TestResult
from maestro.model.train import (
    ModelStore,
    Predictor,
    UntrustedModelError,
    choose_kind,
    load_trusted,
    should_retrain,
    train,
)

COL = {n: i for i, n in enumerate(FEATURES)}


@pytest.fixture
def telemetry(tmp_path: Path) -> Telemetry:
    tel = Telemetry(tmp_path / "telemetry.sqlite3")
    for ts, change, results in synthetic_runs(120):
        tel.record_run(change, results, ts=ts)
    return tel


def test_telemetry_round_trip_window_and_export(tmp_path: Path) -> None:
    tel = Telemetry(tmp_path / "t.sqlite3")
    change = ChangeSet(("a.py",), ("f",), {"tests/test_a.py": 1}, {"tests/test_a.py": 1})
    now = 10 * 86400.0
    old = tel.record_run(change, [TestResult("tests/test_a.py::t", "passed", 0.1)], ts=0.0)
    spec = tel.record_run(
        change,
        [
            TestResult("tests/test_a.py::t", "failed", 0.2),
            TestResult("tests/test_a.py::u", "passed", 0.1),
        ],
        kind="speculative",
        ts=now,
    )
    assert old != spec
    runs = list(tel.runs(days=5, now=now))
    assert [r.id for r in runs] == [spec]
    assert runs[0].change == change
    assert runs[0].used == {"tests/test_a.py::t": False, "tests/test_a.py::u": False}
    assert tel.mark_used(spec, ["tests/test_a.py::t"]) == 1
    assert next(iter(tel.runs(days=5, now=now))).used["tests/test_a.py::t"] is True
    assert len(list(tel.runs(days=None))) == 2
    buf = io.StringIO()
    assert tel.export_raw_csv(buf, days=None) == 3
    lines = buf.getvalue().splitlines()
    assert lines[0].startswith("run_id,ts,kind,changed_files")
    assert tel.counts() == {"runs": 2, "speculative_runs": 1, "results": 3, "failures": 1}
    assert tel.prune(5, now=now) == 1


def test_features_see_only_the_past() -> None:
    hist = History()
    change = ChangeSet(("pkg/mod.py",), ("funca",), {"tests/test_0.py": 1}, {"tests/test_0.py": 1})
    t = "tests/test_0.py::TestFunca::test_0"
    other = "tests/test_9.py::TestFuncb::test_0"
    X = hist.features(change, [t, other], 0.0)
    assert X.shape == (2, len(FEATURES))
    assert X[0, COL["fail_rate"]] == 0.0
    assert X[0, COL["distance"]] == 1 and X[1, COL["distance"]] == FAR
    assert X[0, COL["name_match"]] == 1.0 and X[1, COL["name_match"]] == 0.0
    hist.observe(change, [TestResult(t, "failed", 0.01), TestResult(other, "passed", 0.02)], 0.0)
    X = hist.features(change, [t, other], 3600.0)
    assert X[0, COL["fail_rate"]] == pytest.approx(0.5, rel=0.01)  # 1 failure, 1 pseudo-pass
    assert X[0, COL["recent_failures"]] == 1 and X[0, COL["last_failed"]] == 1
    assert X[0, COL["cofail_file"]] == pytest.approx(0.5)
    assert X[0, COL["cofail_symbol"]] == pytest.approx(0.5)
    assert X[0, COL["hours_since_failure"]] == pytest.approx(1.0)
    assert X[1, COL["cofail_symbol"]] == 0.0
    # decay: a week later the failure weighs half
    later = hist.fail_rate(t, 7 * 86400.0)
    assert later == pytest.approx(0.5 / 1.5, rel=0.01)


def test_changed_symbols() -> None:
    old = "import x\n\nclass A:\n    def f(self):\n        return 1\n\ndef g():\n    return 2\n"
    new = old.replace("return 1", "return 3")
    assert changed_symbols(old, new) == {"A.f"}
    assert changed_symbols(old, old.replace("import x", "import y")) == set()
    assert changed_symbols(old, old.replace("    return 2\n", "")) == {"g"}


def test_training_kinds_and_fallback() -> None:
    assert choose_kind(10, 0) == "heuristic"
    assert choose_kind(50, 5) == "logistic"
    assert choose_kind(5000, 300) == "gbdt"
    X = np.random.default_rng(0).random((30, len(FEATURES)))
    assert train(X, np.zeros(30, dtype=np.int_)).info.kind == "heuristic"
    p = train(X, np.zeros(30, dtype=np.int_)).predict(X)
    assert p.shape == (30,) and np.all((p > 0) & (p < 1))
    y = (X[:, 0] > 0.7).astype(np.int_)
    logistic = train(X, y)
    assert logistic.info.kind == "logistic"
    assert logistic.predict(X).shape == (30,)


def test_gbdt_calibrated_probabilities_and_ranking() -> None:
    runs = synthetic_runs(150)
    from maestro.model.telemetry import Run

    as_runs = [Run(i, ts, "explicit", c, tuple(r), {}) for i, (ts, c, r) in enumerate(runs)]
    train_set, hist = replay(as_runs[:100])
    test_set, _ = replay(as_runs[100:], hist)
    model = train(train_set.X, train_set.y)
    assert model.info.kind == "gbdt"
    p = model.predict(test_set.X)
    assert p.shape == (len(test_set.y),)
    assert np.all((p >= 0) & (p <= 1))
    # calibration: the mean prediction is close to the observed failure rate
    assert abs(p.mean() - test_set.y.mean()) < 0.05
    ev = evaluate(model, test_set)
    assert ev.apfd["model"] > ev.apfd["random"] + 0.2
    assert ev.recall_top["model"] > 0.8  # random: ~0.33
    ts, change, _ = runs[-1]
    ranked = rank(TESTS, change, hist, model, now=ts)
    func = change.symbols[0]
    assert f"Test{func.title()}" in ranked[0].test
    assert "names a changed function" in ranked[0].reasons
    sel = select(ranked, 0.5)
    assert sel.run and sel.skipped
    assert all("P(fail)" in s.reason for s in sel.skipped)
    assert threshold_for_recall([[0.9, 0.1, 0.5]], [[True, False, True]], 1.0) == 0.5


def test_select_never_skips_changed_test_files() -> None:
    from maestro.model.rank import Ranked

    ranked = [Ranked("tests/test_a.py::x", 0.9), Ranked("tests/test_b.py::y", 0.01)]
    assert [r.test for r in select(ranked, 0.5).run] == ["tests/test_a.py::x"]
    sel = select(ranked, 0.5, changed_files=["tests/test_b.py"])
    assert len(sel.run) == 2 and not sel.skipped


def test_select_files_is_conservative_and_says_why() -> None:
    from maestro.model.rank import select_files

    hist = History()
    prior = ChangeSet(("src/x.py",), (), {}, {})
    hist.observe(
        prior,
        [
            TestResult("tests/test_ok.py::a", "passed", 0.01),
            TestResult("tests/test_ok.py::b", "passed", 0.01),
            TestResult("tests/test_bad.py::a", "failed", 0.01),
            TestResult("tests/test_mine.py::a", "passed", 0.01),
        ],
        1000.0,
    )
    change = ChangeSet(
        ("src/y.py", "tests/test_mine.py"),
        (),
        {"tests/test_ok.py": 2, "tests/test_bad.py": 2, "tests/test_mine.py": 0},
        {},
    )
    targets = [
        "tests/test_ok.py", "tests/test_bad.py", "tests/test_mine.py", "tests/test_new.py",
        "tests/test_stale.py",
    ]  # fmt: skip
    out = {
        d.target: d
        for d in select_files(
            targets, change, hist, 0.9, failed_last=["tests/test_stale.py"], now=2000.0
        )
    }
    assert not out["tests/test_ok.py"].runs
    assert out["tests/test_ok.py"].reason.startswith("P(fail) 0.0")
    assert "2 hop(s) from the change" in out["tests/test_ok.py"].reason
    assert out["tests/test_bad.py"].reason == "failed last time: never skipped"
    assert out["tests/test_stale.py"].reason == "failed last time: never skipped"
    assert out["tests/test_mine.py"].reason == "test file changed: never skipped"
    assert out["tests/test_new.py"].reason == "no history: never skipped"
    assert [t for t, d in out.items() if not d.runs] == ["tests/test_ok.py"]
    low = select_files(targets, change, hist, 0.0, now=2000.0)
    assert all(d.runs for d in low)


def test_executed_change_feature_round_trips_and_explains(tmp_path: Path) -> None:
    import sqlite3

    # a store written before the column existed still opens, and gains it
    old = tmp_path / "old.sqlite3"
    db = sqlite3.connect(old)
    db.executescript(
        "CREATE TABLE runs (id INTEGER PRIMARY KEY AUTOINCREMENT, ts REAL NOT NULL, "
        "kind TEXT NOT NULL, files TEXT NOT NULL, symbols TEXT NOT NULL, "
        "distances TEXT NOT NULL, closure_hits TEXT NOT NULL);"
        "INSERT INTO runs (ts, kind, files, symbols, distances, closure_hits) "
        "VALUES (1.0, 'explicit', '[]', '[]', '{}', '{}');"
    )
    db.close()
    with Telemetry(old) as tel:
        (run,) = tel.runs(days=None)
        assert run.change.executed == {}
        executed = {"tests/test_a.py::t1": 1, "tests/test_a.py::t2": 0}
        change = ChangeSet(("src/a.py",), ("f",), {"tests/test_a.py": 1}, {}, executed)
        tel.record_run(change, [TestResult("tests/test_a.py::t1", "failed", 0.1)], ts=2.0)
        assert list(tel.runs(days=None))[-1].change.executed == executed
    tests = ["tests/test_a.py::t1", "tests/test_a.py::t2", "tests/test_a.py::t3"]
    X = History().features(change, tests, 3.0)
    assert X[:, COL["executed_change"]].tolist() == [1.0, 0.0, 0.0]
    assert X[:, COL["has_record"]].tolist() == [1.0, 1.0, 0.0]
    top = {r.test: r for r in rank(tests, change, History(), now=3.0)}
    assert "executed a changed function" in top["tests/test_a.py::t1"].reasons
    assert "executed a changed function" not in top["tests/test_a.py::t2"].reasons


def test_model_trained_on_other_features_is_refused(telemetry: Telemetry, tmp_path: Path) -> None:
    import json

    data, _ = replay(list(telemetry.runs(days=None)))
    store = ModelStore(tmp_path / "models")
    info = store.save(train(data.X, data.y, kind="logistic"))
    meta = store.dir / f"model-v{info.version}.json"
    doc = json.loads(meta.read_text())
    doc["features"] = doc["features"][:12]  # a model from before executed_change/has_record
    meta.write_text(json.dumps(doc))
    with pytest.raises(UntrustedModelError, match="other features"):
        store.load()


def test_skops_round_trip_versions_and_digest(telemetry: Telemetry, tmp_path: Path) -> None:
    data, _ = replay(list(telemetry.runs(days=None)))
    model = train(data.X, data.y)
    store = ModelStore(tmp_path / "model")
    info = store.save(model)
    assert info.version == 1 and len(info.digest) == 64
    loaded = store.load()
    assert isinstance(loaded, Predictor) and loaded.info.kind == model.info.kind
    np.testing.assert_allclose(loaded.predict(data.X[:50]), model.predict(data.X[:50]))
    assert store.save(model).version == 2 and store.versions() == [1, 2]
    assert store.current_version() == 2
    assert not list((tmp_path / "model").glob("*.pkl"))
    assert should_retrain(None, 1) and not should_retrain(info, 10)


def test_tampered_model_file_is_refused(telemetry: Telemetry, tmp_path: Path) -> None:
    data, _ = replay(list(telemetry.runs(days=None)))
    store = ModelStore(tmp_path / "model")
    info = store.save(train(data.X, data.y))
    path = tmp_path / "model" / f"model-v{info.version}.skops"
    path.write_bytes(path.read_bytes() + b"\0")
    with pytest.raises(UntrustedModelError, match="digest"):
        store.load()


class Evil:
    """Stands for a type a model file from elsewhere may carry."""

    def __init__(self) -> None:
        self.payload = "rm -rf /"


def test_untrusted_types_are_refused(tmp_path: Path) -> None:
    import skops.io as sio
    from sklearn.linear_model import LogisticRegression

    path = tmp_path / "foreign.skops"
    sio.dump({"estimator": LogisticRegression(), "extra": Evil()}, path)
    with pytest.raises(UntrustedModelError, match="allowlist"):
        load_trusted(path)
    # and through the store: a foreign file dropped in with matching metadata is refused too
    store = ModelStore(tmp_path / "model")
    X = np.random.default_rng(1).random((40, len(FEATURES)))
    info = store.save(train(X, (X[:, 0] > 0.5).astype(np.int_)))
    target = tmp_path / "model" / f"model-v{info.version}.skops"
    target.write_bytes(path.read_bytes())
    import hashlib
    import json

    meta = tmp_path / "model" / f"model-v{info.version}.json"
    data = json.loads(meta.read_text())
    data["digest"] = hashlib.sha256(target.read_bytes()).hexdigest()
    meta.write_text(json.dumps(data))
    with pytest.raises(UntrustedModelError, match="allowlist"):
        store.load()


def test_file_budget_counts_whole_files() -> None:
    """The daemon runs whole files: the same top-third budget over files scores each file by
    its most likely test and catches every failing test in the files it runs."""
    from maestro.model.dataset import Dataset

    tests = [
        "tests/test_a.py::a1", "tests/test_a.py::a2", "tests/test_a.py::a3",
        "tests/test_b.py::b1", "tests/test_c.py::c1", "tests/test_c.py::c2",
    ]  # fmt: skip
    y = np.array([0, 1, 0, 1, 0, 0])
    X = np.zeros((len(tests), len(FEATURES)))

    class Scores:  # the Predictor protocol: a fixed P(fail) per row
        def predict(self, X: np.ndarray) -> np.ndarray:
            return np.array([0.1, 0.2, 0.1, 0.9, 0.3, 0.05])

    data = Dataset(X, y, np.zeros(len(tests), dtype=int), tests)
    ev = evaluate(Scores(), data)  # type: ignore[arg-type]
    # one of three files fits the budget: test_b (0.9); it holds 1 of the 2 failing files/tests
    assert ev.failing_files == 2
    assert ev.files_recall_top["model"] == 0.5
    assert ev.files_node_recall_top["model"] == 0.5
    assert ev.files_cost_top["model"] == 1 / 6
    # the node-level budget (2 of 6 tests: b1 0.9, c1 0.3) catches the same one
    assert ev.recall_top["model"] == 0.5


def test_select_tests_skips_inside_a_file_only_what_it_may() -> None:
    from maestro.model.rank import select_tests

    hist = History()
    seen = ChangeSet(("src/other.py",), distances={"tests/test_a.py": 1, "tests/test_b.py": 1})
    hist.observe(
        seen,
        [
            TestResult("tests/test_a.py::failed", "failed", 0.01),
            TestResult("tests/test_a.py::quiet", "passed", 0.01),
            TestResult("tests/test_b.py::only", "passed", 0.01),
            TestResult("tests/test_c.py::quiet", "passed", 0.01),
        ],
        1.0,
    )
    change = ChangeSet(("src/x.py",))  # far from every test
    files = {
        "tests/test_a.py": ["tests/test_a.py::failed", "tests/test_a.py::quiet",
                            "tests/test_a.py::new"],
        "tests/test_b.py": ["tests/test_b.py::only"],
        "tests/test_c.py": ["tests/test_c.py::quiet", "tests/test_c.py::other"],
    }  # fmt: skip
    skipped = select_tests(files, change, hist, 0.99, now=2.0)
    # test_a: the failure and the unknown test stay, the quiet one goes; test_b would lose its
    # only test, so it keeps it; test_c's quiet test goes, the unknown one stays
    assert {f: [s.test for s in ss] for f, ss in skipped.items()} == {
        "tests/test_a.py": ["tests/test_a.py::quiet"],
        "tests/test_c.py": ["tests/test_c.py::quiet"],
    }
    assert all(
        s.reason.startswith("P(fail) ") and "< 0.99" in s.reason for s in skipped["tests/test_a.py"]
    )
    # a changed test file keeps every test
    assert "tests/test_a.py" not in select_tests(
        files, change, hist, 0.99, changed_files=["tests/test_a.py"], now=2.0
    )
