"""A workspace on disk driven by the test engine in this process (real graph, real LMDB cache, a
real pytest child): what the `maestro test` and precision tests edit and run.

On sys.path through pytest's `pythonpath` (pyproject.toml), so every test folder imports it.
"""

from __future__ import annotations

import importlib.util
import shutil
import tempfile
import textwrap
import types
from collections.abc import Iterator
from pathlib import Path

import pytest

from maestro.cache import Cache
from maestro.engine import testing
from maestro.engine.interpreter import Interpreter
from maestro.engine.runner import plugin_dir
from maestro.graph.build import BuildGraph
from maestro.paths import graph_index_path


class Workspace:
    """A workspace on disk plus helpers to edit it and run `maestro test` on it in-process."""

    def __init__(self, root: Path, interpreter: Interpreter) -> None:
        self.root = root
        self.interpreter = interpreter

    def write(self, rel: str, text: str) -> None:
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"))

    def edit(self, rel: str, old: str, new: str) -> None:
        path = self.root / rel
        text = path.read_text()
        assert old in text, f"{old!r} not in {rel}"
        path.write_text(text.replace(old, new))

    def graph(self) -> BuildGraph:
        return BuildGraph.build(self.root, index_path=graph_index_path(self.root))

    def run(self, selection: testing.Selection | None = None) -> testing.Summary:
        graph = self.graph()
        with Cache.open() as cache:
            return testing.run(graph, cache, self.interpreter, selection or testing.Selection())

    def plan(self, selection: testing.Selection | None = None) -> testing.Plan:
        with Cache.open() as cache:
            return testing.plan(
                self.graph(), cache, self.interpreter, selection or testing.Selection()
            )


@pytest.fixture
def outside() -> Iterator[Path]:
    """A folder outside the workspace and outside pytest's temporary folders, which hold a
    test's scratch (never an input): where a monorepo's sibling or the home directory would be.
    A fixture for the folders whose conftest imports it."""
    folder = Path(tempfile.mkdtemp(prefix="maestro-outside-"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def load_plugin(monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    """A fresh copy of the pytest plugin module, inert (no runner listening), for calling its
    functions directly."""
    monkeypatch.syspath_prepend(str(plugin_dir()))  # its siblings import by name
    monkeypatch.delenv("MAESTRO_EVENTS_FD", raising=False)
    spec = importlib.util.spec_from_file_location(
        "maestro_plugin_under_test", plugin_dir() / "maestro_pytest_plugin.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
