"""The first-run bench's `--baseline` column times the same command as its maestro column: a
difference between the two is the change's, not the bench's."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    # appended, not prepended: `maestro` must keep resolving to the installed link tree
    sys.path.append(str(REPO))

from bench import bench_fidelity, bench_first_run  # noqa: E402
from bench.bench_fidelity import Bench, Ran, Spec  # noqa: E402


def test_the_baseline_writes_the_run_s_junit_file_as_the_maestro_side_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the maestro side wrote the whole run's JUnit document and the baseline did not: the
    # baseline column looked faster than the same code by that document's cost
    commands: list[list[str]] = []

    def run(cmd: Sequence[str], cwd: Path, env: dict[str, str], timeout: float, log=None) -> Ran:
        commands.append(list(cmd))
        return Ran(0.0, 0, "")

    monkeypatch.setattr(bench_fidelity, "run", run)
    monkeypatch.setattr(bench_first_run, "run", run)
    tree = tmp_path / "proj-1.0"
    (tree / ".venv").mkdir(parents=True)
    bench = Bench(Spec("proj", "1.0", ("src",), "tests", (), ("-x",)), tree, 60.0)
    bench.maestro("maestro-first-0")
    bench_first_run.with_baseline(bench, tmp_path / "baseline", "baseline-first-0")
    maestro, baseline = commands
    assert "--junit-xml" in maestro and "--junit-xml" in baseline
    # the same arguments but where the document goes
    assert sorted(a for a in maestro if not a.endswith(".xml")) == sorted(
        a for a in baseline if not a.endswith(".xml")
    )


def test_a_baseline_from_outside_a_git_checkout_says_how_to_name_one(tmp_path: Path) -> None:
    # run from a copy of the tree (no .git), `git archive` failed with a bare CalledProcessError
    with pytest.raises(SystemExit, match="--repo"):
        bench_first_run.baseline_tree("HEAD", tmp_path / "into", repo=tmp_path)


def test_a_baseline_taken_from_the_named_repo_is_laid_out_as_installed(tmp_path: Path) -> None:
    into = bench_first_run.baseline_tree("HEAD", tmp_path / "into", repo=REPO)
    assert (into / "maestro" / "engine" / "testing.py").is_file()
    assert (into / "maestro" / "cli" / "__init__.py").is_file()
