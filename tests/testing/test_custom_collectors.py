"""Files a conftest's own ``pytest_collect_file`` turns into tests (pytest's "Working with
non-python tests" example; pygments' golden-output samples) run under Maestro as under pytest:
real pytest children, real LMDB. Plain pytest is asked for the truth first."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from test_fidelity_trials import outcomes, pytest_says
from testing_helpers import Workspace, ran

from maestro.engine import collect_probe

# pytest's documented YAML example, reduced: one `name: value` spec per line (no PyYAML)
CONFTEST = """
import pytest


def pytest_collect_file(parent, file_path):
    if file_path.suffix == ".yaml" and file_path.name.startswith("test"):
        return SpecFile.from_parent(parent, path=file_path)
    if file_path.suffix == ".py" and file_path.name.startswith("case_"):
        return SpecFile.from_parent(parent, path=file_path)


class SpecFile(pytest.File):
    def collect(self):
        for line in self.path.read_text().splitlines():
            name, sep, value = line.lstrip("# ").partition(":")
            if sep and not line.startswith("def "):
                yield SpecItem.from_parent(self, name=name.strip(), spec=value.strip())


class SpecItem(pytest.Item):
    def __init__(self, *, spec, **kwargs):
        super().__init__(**kwargs)
        self.spec = spec
        self.funcargs = {}  # pytest-lsp, installed beside Maestro, breaks an item without

    def runtest(self):
        if self.spec != "ok":
            raise AssertionError(f"{self.name} says {self.spec}")

    def reportinfo(self):
        return self.path, 0, f"usecase: {self.name}"
"""


@pytest.fixture
def probes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """One entry per probe process started."""
    started: list[int] = []
    real = collect_probe.probe

    def counted(*args: Any, **kwargs: Any) -> tuple[str, ...]:
        started.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(collect_probe, "probe", counted)
    return started


def yaml_workspace(ws: Workspace) -> None:
    ws.write("tests/conftest.py", CONFTEST)
    ws.write("tests/specs/test_simple.yaml", "hello: ok\nworld: ok\n")
    ws.write("tests/specs/test_more.yaml", "one: ok\n")
    # taken by the collector, not by python_files: pytest never imports it as a module
    ws.write("tests/specs/case_mod.py", "# alpha: ok\ndef test_not_a_test():\n    assert False\n")
    ws.write("tests/specs/README.md", "hello: broken\n")  # the collector does not take it
    ws.write("tests/specs/notes.yaml", "hello: broken\n")  # nor this


def test_files_a_conftest_collects_run_cache_and_rerun_as_under_pytest(
    ws: Workspace, probes: list[int]
) -> None:
    yaml_workspace(ws)
    first = outcomes(ws.run())
    assert first == pytest_says(ws)
    assert first["tests/specs/test_simple.yaml::world"] == "passed"
    assert first["tests/specs/case_mod.py::alpha"] == "passed"
    assert not any("README" in n or "notes" in n or "test_not_a_test" in n for n in first)
    assert len(probes) == 1

    again = ws.run()
    assert ran(again) == [] and outcomes(again) == first
    assert len(probes) == 1  # nothing was added or removed: the answer is kept

    ws.edit("tests/specs/README.md", "broken", "still broken")
    assert ran(ws.run()) == []  # not a test, not an input

    ws.edit("tests/specs/test_simple.yaml", "world: ok", "world: broken")
    edited = ws.run()
    assert ran(edited) == ["tests/specs/test_simple.yaml"]
    assert outcomes(edited) == pytest_says(ws)
    assert outcomes(edited)["tests/specs/test_simple.yaml::world"] == "failed"
    assert len(probes) == 1  # a data file's content is an input of its tests, not a question

    ws.edit("tests/specs/test_simple.yaml", "world: broken", "world: ok")
    reverted = ws.run()  # the first run's content again: its result is in the cache
    assert ran(reverted) == [] and outcomes(reverted) == first

    ws.write("tests/specs/test_new.yaml", "fresh: ok\n")
    added = ws.run()
    assert ran(added) == ["tests/specs/test_new.yaml"]
    assert outcomes(added) == pytest_says(ws)
    assert len(probes) == 2

    (ws.root / "tests/specs/test_more.yaml").unlink()
    removed = outcomes(ws.run())
    assert removed == pytest_says(ws)
    assert "tests/specs/test_more.yaml::one" not in removed


@pytest.mark.extended
def test_a_conftest_that_starts_collecting_more_files_is_asked_again(
    ws: Workspace, probes: list[int]
) -> None:
    yaml_workspace(ws)
    assert "tests/specs/notes.yaml::hello" not in outcomes(ws.run())
    ws.edit("tests/conftest.py", 'file_path.name.startswith("test")', "True")
    after = outcomes(ws.run())
    assert after == pytest_says(ws)
    assert after["tests/specs/notes.yaml::hello"] == "failed"
    assert len(probes) == 2


def test_a_workspace_without_a_collecting_conftest_starts_no_probe(
    ws: Workspace, probes: list[int], isolated: Path
) -> None:
    ws.write("tests/conftest.py", "import pytest\n\n\n@pytest.fixture\ndef x():\n    return 1\n")
    summary = ws.run()
    assert summary.files and set(outcomes(summary).values()) == {"passed"}
    assert probes == []
    assert not list((isolated / "state").rglob("collectors.json"))
