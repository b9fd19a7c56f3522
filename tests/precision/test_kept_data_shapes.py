"""Data files kept by workspace code where a test that never reads them can see them: the shapes
behind the fidelity bench's whole-suite data mutants, which any narrowing of "a read by a
library module counts for every file importing it" must keep catching (docs/action-key.md).

- python-dateutil's zoneinfo tarball: ``zoneinfo.get_zonefile_instance`` reads it lazily
  (``pkgutil.get_data``) and keeps it on a function attribute; ``tz.gettz`` falls back to it
  for a name the system does not have and keeps the zone it got in its own instance cache. A
  later test calling ``gettz`` is served from that cache: it runs no code of the reading module
  (`test_a_derived_object_in_another_module_cache_reruns_its_users`). Narrowing to "the nodes
  that ran the reading module's code" would serve it as passed.
- jinja2's ``tests/res`` templates and ``package.zip``: read by loader methods that keep what
  they read in ``self`` (``Environment.cache``, a ``zipimporter``'s directory); a loader held by a
  module serves a later file without a read (`test_a_loader_held_by_a_module_reruns_its_users`).
  Narrowing to "the objects handed to the reading code die with the test" would have to follow
  every object they reach.
- A module a test imported after putting a zip or folder on ``sys.path``, which a later file
  takes from ``sys.modules`` under a name the graph cannot resolve (``dist:<name>``): the run
  ties the name to the files it was loaded from (the archive for a zip), so that file re-runs
  too. jinja2's ``PackageLoader`` imports ``t_pack`` from library code instead, and those reads
  count for every importer.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
from precision_helpers import Workspace, ran_nodes

ZONES = """\
import json
from pkgutil import get_data


def _load():
    return json.loads(get_data(__name__, "zones.json"))


def instance():
    if not hasattr(instance, "cached"):
        instance.cached = _load()
    return instance.cached
"""

# tz.gettz's shape: its own cache of what the fallback returned, imported where it is used
TZ = """\
_INSTANCES = {}


def gettz(name):
    if name not in _INSTANCES:
        from pkg.zones import instance

        _INSTANCES[name] = instance()[name]
    return _INSTANCES[name]
"""


def test_a_derived_object_in_another_module_cache_reruns_its_users(ws: Workspace) -> None:
    ws.write("pkg/zones.py", ZONES)
    ws.write("pkg/zones.json", '{"X": 1}\n')
    ws.write("pkg/tz.py", TZ)
    ws.write(
        "tests/test_tz.py",
        "from pkg import tz\n\n\ndef test_zone():\n    assert tz.gettz('X') == 1\n",
    )
    # collected after test_tz.py: served from tz's cache, it runs no code of pkg/zones.py
    ws.write(
        "tests/test_user.py",
        "from pkg import tz\n\n\ndef test_later():\n    assert tz.gettz('X') == 1\n",
    )
    assert ws.run().failed == 0
    ws.write("pkg/zones.json", '{"X": 2}\n')
    summary = ws.run()
    ran = ran_nodes(summary)
    assert {"tests/test_tz.py::test_zone", "tests/test_user.py::test_later"} <= set(ran)
    assert summary.failed == 2  # as plain pytest
    # a file importing neither module does not depend on the data
    assert not any(n.startswith("tests/test_other.py") for n in ran)


LOADER = """\
from pathlib import Path


class Loader:
    def __init__(self, root):
        self.root = Path(root)
        self.cache = {}

    def get(self, name):
        if name not in self.cache:
            self.cache[name] = (self.root / name).read_text()
        return self.cache[name]
"""

SHARED = """\
from pathlib import Path

from pkg.loader import Loader

LOADER = Loader(Path(__file__).parent.parent / "tests" / "templates")
"""


@pytest.mark.extended
def test_a_loader_held_by_a_module_reruns_its_users(ws: Workspace) -> None:
    ws.write("pkg/loader.py", LOADER)
    ws.write("pkg/shared.py", SHARED)
    ws.write("tests/templates/page.html", "hello\n")
    ws.write(
        "tests/test_loader.py",
        "from pathlib import Path\n\nfrom pkg.loader import Loader\nfrom pkg.shared import LOADER"
        "\n\n\ndef test_fresh():  # its own loader, gone with the test\n"
        "    assert Loader(Path(__file__).parent / 'templates').get('page.html') == 'hello\\n'"
        "\n\n\ndef test_shared():\n    assert LOADER.get('page.html') == 'hello\\n'\n",
    )
    # collected after test_loader.py: served from the module's loader, it never reads the page
    ws.write(
        "tests/test_view.py",
        "from pkg.shared import LOADER\n\n\n"
        "def test_view():\n    assert LOADER.get('page.html') == 'hello\\n'\n",
    )
    assert ws.run().failed == 0
    ws.write("tests/templates/page.html", "bye\n")
    summary = ws.run()
    ran = set(ran_nodes(summary))
    assert {
        "tests/test_loader.py::test_fresh",
        "tests/test_loader.py::test_shared",
        "tests/test_view.py::test_view",
    } <= ran
    assert summary.failed == 3  # as plain pytest
    assert not any(n.startswith("tests/test_other.py") for n in ran)


def _zip(value: int) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("zpk/__init__.py", f"VALUE = {value}\n")
    return out.getvalue()


ZPK_FIXTURE = """
from pathlib import Path

import pytest


@pytest.fixture
def zpk(monkeypatch):
    monkeypatch.syspath_prepend(str(Path(__file__).parent / "data" / "ENTRY"))
    import zpk

    return zpk


def test_a(zpk):
    assert zpk.VALUE == 1
"""

# collected after test_a.py: plain pytest gives them the zpk test_a imported, from sys.modules
ZPK_USER = """
def test_value():
    import zpk

    assert zpk.VALUE == 1


def test_call():
    import zpk

    assert zpk.value() == 1
"""


def _zpk_source(value: int) -> str:
    return f"VALUE = {value}\n\n\ndef value():\n    return {value}\n"


def _zip(value: int) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("zpk/__init__.py", _zpk_source(value))
    return out.getvalue()


def _reruns_the_later_file(ws: Workspace, change: Callable[[], None]) -> None:
    assert ws.run().failed == 0
    change()
    summary = ws.run()
    ran = set(ran_nodes(summary))
    later = {"tests/test_b.py::test_value", "tests/test_b.py::test_call"}
    assert {"tests/test_a.py::test_a", *later} <= ran
    assert summary.failed == 3  # as plain pytest
    assert not any(n.startswith(("tests/test_other.py", "tests/test_calc.py")) for n in ran)


def test_a_module_a_test_imported_from_a_zip_reruns_a_later_file_using_it(
    ws: Workspace,
) -> None:
    (ws.root / "tests/data").mkdir(parents=True)
    (ws.root / "tests/data/zpk.zip").write_bytes(_zip(1))
    ws.write("tests/test_a.py", ZPK_FIXTURE.replace("ENTRY", "zpk.zip"))
    ws.write("tests/test_b.py", ZPK_USER)

    def change() -> None:
        (ws.root / "tests/data/zpk.zip").write_bytes(_zip(2))
        # said of the import: test_a's test loaded the module, nothing read it while this
        # file was collected
        later = next(f for f in ws.plan().files if f.target == "tests/test_b.py")
        assert set(later.node_reasons.values()) == {
            "imports zpk, whose modules were loaded from tests/data/zpk.zip (changed)"
        }

    _reruns_the_later_file(ws, change)


@pytest.mark.extended
def test_a_module_a_test_imported_from_a_folder_reruns_a_later_file_using_it(
    ws: Workspace,
) -> None:
    ws.write("tests/data/folder/zpk/__init__.py", _zpk_source(1))
    ws.write("tests/test_a.py", ZPK_FIXTURE.replace("ENTRY", "folder"))
    ws.write("tests/test_b.py", ZPK_USER)
    _reruns_the_later_file(
        ws, lambda: ws.write("tests/data/folder/zpk/__init__.py", _zpk_source(2))
    )


@pytest.mark.extended
def test_a_module_imported_from_a_zip_outside_the_workspace_reruns_a_later_file_using_it(
    ws: Workspace, outside: Path
) -> None:
    """An archive no interpreter key covers is an input by content."""
    archive = outside / "zpk.zip"
    archive.write_bytes(_zip(1))
    fixture = ZPK_FIXTURE.replace('Path(__file__).parent / "data" / "ENTRY"', repr(str(archive)))
    ws.write("tests/test_a.py", fixture)
    ws.write("tests/test_b.py", ZPK_USER)
    _reruns_the_later_file(ws, lambda: archive.write_bytes(_zip(2)))
