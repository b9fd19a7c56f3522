"""Through a real daemon, a cached result is what pytest would say: the daemon learns the same
recorded inputs (child processes, conftest reads, session fixtures, opaque programs) as an
in-process run, and its next lookup keys match what it stored."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import DaemonEnv, maestro_test, plain_pytest_outcomes

FILES = {
    "pyproject.toml": '[project]\nname = "w"\nversion = "0"\n\n'
    '[tool.pytest.ini_options]\ntestpaths = ["tests"]\n',
    "pkg/__init__.py": "",
    "pkg/child.py": "def answer():\n    return 42\n",
    "tests/conf.json": '{"expected": 3}\n',
    "tests/words.txt": "hello\n",
    "tests/conftest.py": (
        "import json, pathlib, pytest\n\n"
        "CONF = json.loads((pathlib.Path(__file__).parent / 'conf.json').read_text())\n\n"
        "@pytest.fixture(scope='session')\n"
        "def words():\n"
        "    return (pathlib.Path(__file__).parent / 'words.txt').read_text()\n"
    ),
    "tests/test_child.py": (
        "import subprocess, sys\n\n"
        "def test_child():\n"
        "    out = subprocess.run([sys.executable, '-c', 'import pkg.child as c; "
        "print(c.answer())'], capture_output=True, text=True, check=True).stdout\n"
        "    assert out.strip() == '42'\n"
    ),
    "tests/test_conf.py": "from conftest import CONF\n\ndef test_conf():\n"
    "    assert CONF['expected'] == 3\n",
    "tests/test_words_a.py": "def test_a(words):\n    assert words == 'hello\\n'\n",
    "tests/test_words_b.py": "def test_b(words):\n    assert words == 'hello\\n'\n",
    # a module-level skip: one result whose JUnit classname is empty, as pytest writes it
    "tests/test_optional.py": (
        "import pytest\n\npytest.skip('no twisted', allow_module_level=True)\n"
    ),
    # a parameter id holding "::": pytest splits only the part before "[" (classname, name)
    "tests/test_params.py": (
        "import pytest\n\n"
        "@pytest.mark.parametrize('addr', ['ff::aa:1::2', '1.2.3.4'])\n"
        "def test_addr(addr):\n    assert addr\n"
    ),
    "tests/test_cat.py": (
        "import subprocess\n\n"
        "def test_cat():\n"
        "    out = subprocess.run(['cat', 'tests/conf.json'], capture_output=True, text=True)\n"
        "    assert '3' in out.stdout\n"
    ),
}


@pytest.fixture
def ws(daemon_env: DaemonEnv, monkeypatch: pytest.MonkeyPatch) -> DaemonEnv:
    monkeypatch.setenv("MAESTRO_CACHE_DIR", str(daemon_env.base / "cache"))
    daemon_env.write_old(FILES)
    return daemon_env


def test_daemon_results_match_pytest_after_each_kind_of_change(
    ws: DaemonEnv, tmp_path: Path
) -> None:
    assert maestro_test(ws, tmp_path) == plain_pytest_outcomes(ws, tmp_path)
    assert ws.holder(), "the CLI should have started the daemon"
    edits = [
        ("pkg/child.py", "return 42", "return 41"),  # code a Python child runs
        ("tests/conf.json", "3", "4"),  # read by conftest at import, and by `cat`
        ("tests/words.txt", "hello", "bye"),  # read by a session fixture
    ]
    for rel, old, new in edits:
        path = ws.root / rel
        path.write_text(path.read_text().replace(old, new))
        truth = plain_pytest_outcomes(ws, tmp_path)
        assert maestro_test(ws, tmp_path) == truth, rel
        assert "passed" in truth.values() or rel  # the truth is not trivially all failures
        path.write_text(path.read_text().replace(new, old))
        assert maestro_test(ws, tmp_path) == plain_pytest_outcomes(ws, tmp_path), f"{rel} reverted"
