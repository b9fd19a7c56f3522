"""Files a conftest's own ``pytest_collect_file`` turns into tests (pytest's "Working with
non-python tests" example; pygments' golden-output samples) run under Maestro as under pytest:
real pytest children, real LMDB. Plain pytest is asked for the truth first."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from test_fidelity_trials import outcomes, pytest_says
from testing_helpers import Workspace, ran

from maestro.engine import collect_probe
from maestro.engine.interpreter import Interpreter, query_interpreter
from maestro.errors import RunnerError

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


# sybil's documented set-up (cssselect's docs/conftest.py): the hook is a name bound to what a
# factory returns, not a function defined in the conftest
ASSIGNED_CONFTEST = """
import pytest


class Collector:
    def __init__(self, suffix):
        self.suffix = suffix

    def pytest(self):
        def collect(parent, file_path):
            if file_path.suffix == self.suffix:
                return SpecFile.from_parent(parent, path=file_path)

        return collect


class SpecFile(pytest.File):
    def collect(self):
        for line in self.path.read_text().splitlines():
            name, sep, value = line.partition(":")
            if sep:
                yield SpecItem.from_parent(self, name=name.strip(), spec=value.strip())


class SpecItem(pytest.Item):
    def __init__(self, *, spec, **kwargs):
        super().__init__(**kwargs)
        self.spec = spec
        self.funcargs = {}

    def runtest(self):
        assert self.spec == "ok", f"{self.name} says {self.spec}"

    def reportinfo(self):
        return self.path, 0, self.name


pytest_collect_file = Collector(".rst").pytest()
"""


def test_a_conftest_binding_the_hook_to_a_name_collects_as_under_pytest(ws: Workspace) -> None:
    # cssselect 1.6.0 with testpaths ["tests", "docs"]: pytest ran docs/index.rst's 6 sybil
    # examples, Maestro none of them, and said "21 passed" when one of them failed
    ws.write("docs/conftest.py", ASSIGNED_CONFTEST)
    ws.write("docs/index.rst", "intro: ok\nexample: ok\n")
    ws.write("tests/test_a.py", "def test_a():\n    assert True\n")
    ws.write("pytest.ini", "[pytest]\ntestpaths = tests docs\n")
    first = outcomes(ws.run())
    assert first == pytest_says(ws)
    assert first["docs/index.rst::example"] == "passed"

    ws.edit("docs/index.rst", "example: ok", "example: broken")
    edited = outcomes(ws.run())
    assert edited == pytest_says(ws)
    assert edited["docs/index.rst::example"] == "failed"


# A linter's collector (pytest-ruff's, pytest-flake8's shape): every Python file pytest walks
# past, conftest.py included, gets an item of its own
LINT_CONFTEST = """
import pytest


def pytest_collect_file(parent, file_path):
    if file_path.suffix == ".py":
        return LintFile.from_parent(parent, path=file_path)


class LintFile(pytest.File):
    def collect(self):
        yield LintItem.from_parent(self, name="lint")


class LintItem(pytest.Item):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.funcargs = {}

    def runtest(self):
        assert "FIX" + "ME" not in self.path.read_text()

    def reportinfo(self):
        return self.path, 0, "lint"
"""


def test_a_collector_taking_every_module_runs_on_conftest_py_too(ws: Workspace) -> None:
    # pytest-ruff on importlib_metadata: plain pytest ran conftest.py::ruff; Maestro never
    # offered conftest.py to the collector, so a lint failure there was silently not run
    ws.write("tests/conftest.py", LINT_CONFTEST)
    ws.write("tests/test_a.py", "def test_a():\n    pass\n")
    truth = pytest_says(ws)
    assert truth["tests/conftest.py::lint"] == "passed"
    assert outcomes(ws.run()) == truth
    ws.edit("tests/conftest.py", "import pytest", "import pytest  # FIXME")
    truth = pytest_says(ws)
    assert truth["tests/conftest.py::lint"] == "failed"
    assert outcomes(ws.run()) == truth


# An installed plugin (a ``pytest11`` entry point, as pytest-checkdocs is) collecting files of its
# own: one kind addressable by its file, one item hung on the folder (checkdocs' `.::project`)
PLUGIN = """
import pytest


def pytest_collect_file(parent, file_path):
    if file_path.suffix == ".check":
        return CheckFile.from_parent(parent, path=file_path)
    if file_path.name == "project.cfg":
        return CheckItem.from_parent(parent, name="project", expect="ok")


class CheckFile(pytest.File):
    def collect(self):
        yield CheckItem.from_parent(self, name="content", expect=self.path.read_text().strip())


class CheckItem(pytest.Item):
    def __init__(self, *, expect, **kwargs):
        super().__init__(**kwargs)
        self.expect = expect
        self.funcargs = {}

    def runtest(self):
        assert self.expect == "ok"

    def reportinfo(self):
        return self.path, 0, self.name
"""


def _venv_with_plugin(root: Path) -> Interpreter:
    """The workspace's own .venv (where Maestro looks for installed plugins), on this test
    environment's packages, with the plugin installed as a distribution."""
    venv = root / ".venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    site = next((venv / "lib").glob("python3*/site-packages"))
    (site / "host.pth").write_text(str(Path(pytest.__file__).parent.parent) + "\n")
    (site / "demo_collect.py").write_text(PLUGIN)
    info = site / "demo_collect-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: demo-collect\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[pytest11]\ndemo = demo_collect\n")
    return query_interpreter(venv / "bin" / "python")


def test_files_an_installed_plugin_collects_run_as_under_pytest(
    ws: Workspace, caplog: pytest.LogCaptureFixture
) -> None:
    ws.interpreter = _venv_with_plugin(ws.root)
    ws.write("tests/spec.check", "ok\n")
    ws.write("tests/project.cfg", "[demo]\n")
    done = subprocess.run(
        [str(ws.interpreter.path), "-m", "pytest", "-rA", "-q", "-p", "no:cacheprovider"],
        cwd=ws.root, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert "PASSED tests/spec.check::content" in done.stdout, done.stdout
    assert "PASSED tests::project" in done.stdout, done.stdout
    with caplog.at_level(logging.WARNING, logger="maestro.engine.collect_probe"):
        first = ws.run()
    assert outcomes(first)["tests/spec.check::content"] == "passed"
    # pytest cannot be given the folder's item by a file: said, not run, and the run goes on
    assert "tests/project.cfg" in caplog.text and "not run by Maestro" in caplog.text
    assert "tests/spec.check" not in ran(ws.run())
    ws.write("tests/spec.check", "broken\n")
    again = ws.run()
    assert ran(again) == ["tests/spec.check"]
    assert outcomes(again)["tests/spec.check::content"] == "failed"


def test_a_conftest_pytest_cannot_load_is_named_with_pytest_s_own_reason(ws: Workspace) -> None:
    # docopt-ng under pytest 9: its conftest's pytest_collect_file takes `path`, which pytest 9
    # removed; plain pytest printed why, Maestro said only "[Errno 2] No such file or
    # directory: '/tmp/maestro-probe-.../answer.json'" (pytest writes the reason to stderr)
    ws.write("tests/conftest.py", CONFTEST + "\nraise RuntimeError('the conftest says no')\n")
    ws.write("tests/specs/test_simple.yaml", "hello: ok\n")
    with pytest.raises(RunnerError) as raised:
        ws.run()
    assert "the conftest says no" in str(raised.value)
    assert "answer.json" not in str(raised.value)
