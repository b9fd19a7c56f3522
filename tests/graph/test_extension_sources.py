"""An edit to an extension module's C source reaches no test (tests import the built module):
`maestro impacted` said "Nothing impacted" and nothing more (found on wrapt by a user trial in
the editor). It now says that the tests import the built module, which must be rebuilt, and how
many test files the rebuilt module reaches; a C file the workspace builds nothing from gets no
such note. Real compiler, real build, the real CLI in process and through the daemon."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from project_python import project_python
from workspace_procs import EXTENSION_C_SOURCE

MAESTRO = str(Path(sys.executable).with_name("maestro"))

C_SOURCE = EXTENSION_C_SOURCE

FILES = {
    "src/pkg/__init__.py": "",
    "src/pkg/_speed.c": C_SOURCE,
    "tools/probe.c": "int main(void) { return 0; }\n",  # built by nothing here
    "setup.py": (
        "from setuptools import Extension, setup\n"
        'setup(name="pkg", package_dir={"": "src"}, packages=["pkg"],\n'
        '      ext_modules=[Extension("pkg._speed", ["src/pkg/_speed.c"])])\n'
    ),
    "pytest.ini": "[pytest]\npythonpath = src\n",
    ".gitignore": "build/\n*.so\n__pycache__/\n",
    "tests/test_speed.py": (
        "from pkg._speed import answer\n\n\ndef test_answer():\n    assert answer() == 42\n"
    ),
    "tests/test_other.py": "def test_other():\n    pass\n",
}


def _run(root: Path, tmp_path: Path, *args: str, daemon: str = "off") -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAESTRO_")}
    env.update(
        MAESTRO_DAEMON=daemon,
        MAESTRO_CACHE_DIR=str(tmp_path / "cache"),
        MAESTRO_STATE_DIR=str(tmp_path / "state"),
    )
    done = subprocess.run(
        [MAESTRO, *args], cwd=root, env=env, capture_output=True, text=True, timeout=180
    )
    return done.stdout + done.stderr


def test_an_edited_extension_source_says_the_module_must_be_rebuilt(tmp_path: Path) -> None:
    if shutil.which("cc") is None:
        pytest.skip("no C compiler")
    root = tmp_path / "ws"
    for rel, text in {
        **FILES,
        "maestro.toml": f"interpreter = {str(project_python())!r}\n",
    }.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    subprocess.run(
        [sys.executable, "setup.py", "-q", "build_ext", "--inplace"],
        cwd=root, check=True, capture_output=True, timeout=180,
    )  # fmt: skip
    subprocess.run(["git", "init", "-q"], cwd=root, check=True, timeout=30)
    subprocess.run(["git", "add", "-A"], cwd=root, check=True, timeout=30)
    subprocess.run(
        ["git", "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "init"],
        cwd=root, check=True, timeout=30,
    )  # fmt: skip
    (built,) = [p.name for p in (root / "src/pkg").iterdir() if p.suffix == ".so"]
    (root / "src/pkg/_speed.c").write_text(C_SOURCE.replace("42", "43"))
    (root / "tools/probe.c").write_text("int main(void) { return 1; }\n")
    said = _run(root, tmp_path, "impacted")
    assert "Nothing impacted by 2 changes." in said, said
    expected = (
        f"note: src/pkg/_speed.c is a source of the extension module src/pkg/{built}, which 1"
        " test file imports: tests import the built module, not its source; rebuild it"
    )
    assert expected in said, said
    assert "probe.c" not in said, said
    # `maestro test --impacted` selects from the same answer: it says so too, in process and
    # through the daemon, after its "nothing impacted" line
    said = _run(root, tmp_path, "test", "--impacted")
    assert "nothing impacted" in said and expected in said, said
    assert "probe.c" not in said, said
    try:  # the daemon's answer, the one an editor gets
        said = _run(root, tmp_path, "impacted", "--json", daemon="start")
        report = json.loads(said[said.index("{") : said.rindex("}") + 1])
        assert len(report["notes"]) == 1 and "src/pkg/_speed.c is a source" in report["notes"][0]
        said = _run(root, tmp_path, "test", "--impacted", daemon="start")
        assert "nothing impacted" in said and expected in said, said
    finally:
        _run(root, tmp_path, "daemon", "stop")


def test_a_rebuilt_extension_module_impacts_the_tests_that_import_it(tmp_path: Path) -> None:
    """After the edit the module was rebuilt: the tests now import the edited code. Before,
    impacted still said nothing, told to rebuild, and `Run impacted tests` ran nothing while
    pytest failed (multidict 7.2.1 in the editor, `==` inverted in _multidict.c and
    `pip install -e .`: 26 of the 300 tests of 6 files failed, none was impacted)."""
    if shutil.which("cc") is None:
        pytest.skip("no C compiler")
    root = tmp_path / "ws"
    for rel, text in {
        **FILES,
        "maestro.toml": f"interpreter = {str(project_python())!r}\n",
    }.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    build = [sys.executable, "setup.py", "-q", "build_ext", "--inplace"]
    subprocess.run(build, cwd=root, check=True, capture_output=True, timeout=180)
    subprocess.run(["git", "init", "-q"], cwd=root, check=True, timeout=30)
    subprocess.run(["git", "add", "-A"], cwd=root, check=True, timeout=30)
    subprocess.run(
        ["git", "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "init"],
        cwd=root, check=True, timeout=30,
    )  # fmt: skip
    (root / "src/pkg/_speed.c").write_text(C_SOURCE.replace("42", "43"))
    subprocess.run(build, cwd=root, check=True, capture_output=True, timeout=180)
    said = _run(root, tmp_path, "impacted")
    assert "tests/test_speed.py" in said and "rebuild it" not in said, said
    assert "tests/test_other.py" not in said, said
    said = _run(root, tmp_path, "test", "--impacted")
    assert "1 failed" in said and "test_answer" in said, said


@pytest.mark.parametrize("source", ["src/pkg/_speedmodule.c", "src/pkg/speedups.c"])
def test_a_rebuilt_module_of_another_name_than_its_source_impacts_its_tests(
    tmp_path: Path, source: str
) -> None:
    """`Extension("pvectorc", ["pvectorcmodule.c"])` (pyrsistent 0.20.0): the built module's
    name is not its source's. Before, after the edit and `pip install -e .`, Run impacted
    tests from the C file answered "no impacted tests; ... rebuild it" and ran nothing while
    pytest failed 74 tests; the build file's name for the extension (or CPython's `module`
    suffix) now finds the rebuilt module."""
    if shutil.which("cc") is None:
        pytest.skip("no C compiler")
    root = tmp_path / "ws"
    files = {**FILES, "maestro.toml": f"interpreter = {str(project_python())!r}\n"}
    del files["src/pkg/_speed.c"]
    files[source] = C_SOURCE
    files["setup.py"] = files["setup.py"].replace('"src/pkg/_speed.c"', f'"{source}"')
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    build = [sys.executable, "setup.py", "-q", "build_ext", "--inplace"]
    subprocess.run(build, cwd=root, check=True, capture_output=True, timeout=180)
    subprocess.run(["git", "init", "-q"], cwd=root, check=True, timeout=30)
    subprocess.run(["git", "add", "-A"], cwd=root, check=True, timeout=30)
    subprocess.run(
        ["git", "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "init"],
        cwd=root, check=True, timeout=30,
    )  # fmt: skip
    (root / source).write_text(C_SOURCE.replace("42", "43"))
    subprocess.run(build, cwd=root, check=True, capture_output=True, timeout=180)
    said = _run(root, tmp_path, "impacted", source)
    assert "tests/test_speed.py" in said and "rebuild it" not in said, said
    assert "tests/test_other.py" not in said, said
    said = _run(root, tmp_path, "test", "--impacted")
    assert "1 failed" in said and "test_answer" in said, said
