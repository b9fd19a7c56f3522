"""Installed distributions, read from site-packages files (no importlib.metadata, no processes)."""

from __future__ import annotations

import base64
import hashlib
import os
import sys
from importlib import metadata
from pathlib import Path

from maestro.graph.environment import distribution_map, installed_edits, site_packages


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_every_kind_of_installed_metadata(tmp_path: Path) -> None:
    site = tmp_path / "site-packages"
    _write(
        site / "Foo_Bar-1.2.dist-info" / "METADATA",
        "Metadata-Version: 2.1\nName: Foo-Bar\nVersion: 1.2\n\nName: not a header\n",
    )
    _write(site / "Foo_Bar-1.2.dist-info" / "top_level.txt", "foo_bar\n_foo_speedups\n")
    _write(
        site / "solo-3.0.dist-info" / "METADATA",
        "Metadata-Version: 2.1\nName: solo\nVersion: 3.0\n",
    )
    _write(
        site / "solo-3.0.dist-info" / "RECORD",
        "solo.py,sha256=x,10\n"
        '"solo_data/a,b.txt",sha256=y,3\n'
        "solo-3.0.dist-info/METADATA,,\n"
        "../../bin/solo,,\n"
        "__pycache__/solo.cpython-311.pyc,,\n",
    )
    _write(site / "old.egg-info" / "PKG-INFO", "Metadata-Version: 1.0\nName: old\nVersion: 0.1\n")
    _write(site / "old.egg-info" / "top_level.txt", "oldpkg\n")
    _write(site / "flat-2.0-py3.11.egg-info", "Metadata-Version: 1.0\nName: flat\nVersion: 2.0\n")
    _write(site / "broken-1.0.dist-info" / "RECORD", "broken.py,,\n")  # no METADATA: skipped
    # name, version (and the metadata folder, whose install record tells an edit)
    assert {top: found[:2] for top, found in distribution_map([site]).items()} == {
        "foo_bar": ["Foo-Bar", "1.2"],
        "_foo_speedups": ["Foo-Bar", "1.2"],
        "solo": ["solo", "3.0"],
        "solo_data": ["solo", "3.0"],
        "oldpkg": ["old", "0.1"],
    }


def test_agrees_with_importlib_metadata_on_a_real_environment() -> None:
    dirs = site_packages(Path(sys.prefix))
    expected: dict[str, list[str]] = {}
    for dist in metadata.distributions(path=[str(d) for d in dirs]):
        name = dist.metadata["Name"] or ""
        tops = {t.strip() for t in (dist.read_text("top_level.txt") or "").splitlines()}
        if not tops - {""}:
            tops = {
                f.parts[0].removesuffix(".py").split(".")[0]
                for f in dist.files or ()
                if f.parts
                and not f.parts[0].endswith((".dist-info", ".egg-info", ".pth", ".data"))
                and f.parts[0] not in ("..", "__pycache__")
            }
        for top in tops - {""}:
            expected.setdefault(top, [name, dist.version])
    found = distribution_map(dirs)
    assert len(found) > 20
    # same names and versions; which of two distributions claiming a name wins may differ
    same = {k for k in expected if found.get(k, [])[:2] == expected[k]}
    assert len(same) >= len(expected) - 2, sorted(set(expected) - same)[:10]
    assert found["pytest"][0] == "pytest" and found["pytest"][1] == metadata.version("pytest")


def test_edits_of_installed_code_are_told_by_the_install_record(tmp_path: Path) -> None:
    site = tmp_path / "site-packages"
    _write(site / "dep" / "__init__.py", "X = 1\n")
    _write(site / "dep" / "data.json", "{}")  # data the code reads beside it
    _write(site / "dep" / "__pycache__" / "__init__.cpython-311.pyc", "")  # never an edit
    _write(site / "dep-1.0.dist-info" / "METADATA", "Name: dep\nVersion: 1.0\n")
    _write(
        site / "dep-1.0.dist-info" / "RECORD",
        "dep/__init__.py,,\ndep/data.json,,\ndep/__pycache__/__init__.cpython-311.pyc,,\n",
    )
    _write(site / "old.egg-info" / "PKG-INFO", "Name: old\nVersion: 0.1\n")
    _write(site / "old.egg-info" / "installed-files.txt", "../oldmod.py\nPKG-INFO\n")
    _write(site / "oldmod.py", "Y = 1\n")
    record = site / "dep-1.0.dist-info" / "RECORD"
    legacy = site / "old.egg-info" / "installed-files.txt"
    then = record.stat().st_mtime - 60
    cache = site / "dep" / "__pycache__"
    for path in (site / "dep", site / "dep" / "__init__.py", site / "dep" / "data.json", cache):
        os.utime(path, (then, then))
    os.utime(cache / "__init__.cpython-311.pyc", (then, then))
    os.utime(site / "oldmod.py", (then, then))
    info = str(site / "dep-1.0.dist-info")
    assert installed_edits(info, "dep") == {}
    assert installed_edits(str(site / "old.egg-info"), "oldmod") == {}
    (cache / "__init__.cpython-311.pyc").write_text("recompiled")  # Python's, after an edit
    assert installed_edits(info, "dep") == {}
    (site / "dep" / "data.json").write_text("[]")
    assert list(installed_edits(info, "dep") or ()) == ["dep/data.json"]
    (site / "dep" / "__init__.py").write_text("X = 2\n")
    assert sorted(installed_edits(info, "dep") or ()) == ["dep/__init__.py", "dep/data.json"]
    (site / "dep" / "new.py").write_text("")
    (site / "dep" / "new.json").write_text("")  # new data no record lists: read by no code
    edited = ["dep/__init__.py", "dep/data.json", "dep/new.py"]
    assert sorted(installed_edits(info, "dep") or ()) == edited
    (site / "oldmod.py").unlink()
    assert installed_edits(str(site / "old.egg-info"), "oldmod") == {"oldmod.py": "deleted"}
    assert record.exists() and legacy.exists()
    assert installed_edits(str(site / "none.dist-info"), "none") is None  # nothing to compare


def test_an_edit_undone_is_no_edit_when_the_record_has_its_hash(tmp_path: Path) -> None:
    # a user who reverts the print they added to a dependency keys as a clean install again
    # (and shares the team's results), though the file's time moved on
    site = tmp_path / "site-packages"
    code = b"X = 1\n"
    sha = base64.urlsafe_b64encode(hashlib.sha256(code).digest()).rstrip(b"=").decode()
    _write(site / "dep.py", code.decode())
    _write(site / "dep-1.0.dist-info" / "RECORD", f"dep.py,sha256={sha},6\n")
    then = (site / "dep-1.0.dist-info" / "RECORD").stat().st_mtime - 60
    os.utime(site / "dep.py", (then, then))
    info = str(site / "dep-1.0.dist-info")
    (site / "dep.py").write_text("X = 2\n")
    assert list(installed_edits(info, "dep") or ()) == ["dep.py"]
    (site / "dep.py").write_bytes(code)
    assert installed_edits(info, "dep") == {}


def test_an_edited_installed_file_is_hashed_once_while_its_stat_holds(tmp_path: Path) -> None:
    # an environment whose files all look newer than their record (a conda package's times)
    # must not hash every loaded module at every run
    site = tmp_path / "site-packages"
    _write(site / "dep-1.0.dist-info" / "RECORD", "dep.py,sha256=AAAA,6\n")
    _write(site / "dep.py", "X = 2\n")
    info, memo = str(site / "dep-1.0.dist-info"), {}
    first = installed_edits(info, "dep", memo)
    assert first and list(memo) == [str(site / "dep.py")]
    memo[str(site / "dep.py")][3] = "f" * 64  # a stale digest is served only while the stat holds
    assert installed_edits(info, "dep", memo) == {"dep.py": "f" * 64}
    (site / "dep.py").write_text("X = 33\n")
    assert installed_edits(info, "dep", memo) not in ({"dep.py": "f" * 64}, first)


def test_a_venv_in_a_folder_named_with_brackets_is_found(tmp_path: Path) -> None:
    # glob read "proj[v2]" as a pattern: no site-packages were found, and the keys were made of
    # the Maestro process's own installed packages instead of the workspace's
    root = tmp_path / "proj[v2]"
    site = root / ".venv" / "lib" / "python3.11" / "site-packages"
    site.mkdir(parents=True)
    (root / ".venv" / "pyvenv.cfg").write_text("home = /usr/bin\n")
    assert site_packages(root) == [site]
