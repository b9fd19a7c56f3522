"""The action key: what changes it and what must not."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from maestro.cache.keys import (
    KeyContext,
    action_key,
    allowlisted_env,
    changed_inputs,
    environment_digest,
    outcome_args,
)
from maestro.engine.interpreter import Interpreter
from maestro.engine.testing import key_context

CONTEXT = KeyContext(
    pytest_version="8.3.0",
    implementation="cpython",
    python_version="3.11.9",
    platform="linux-x86_64",
    environment="e" * 64,
)
INPUTS = {"tests/test_a.py": "1" * 64, "pkg/a.py": "2" * 64, "pyproject.toml#tool.pytest": "3" * 64}


def key(context: KeyContext = CONTEXT, inputs: dict[str, str] = INPUTS, **kw: object) -> str:
    return action_key("tests/test_a.py", context, inputs, **kw).hex  # type: ignore[arg-type]


def test_key_is_deterministic_and_order_independent() -> None:
    assert key() == key(inputs=dict(reversed(list(INPUTS.items()))))
    assert len(key()) == 64


def test_every_input_changes_the_key() -> None:
    base = key()
    assert key(inputs={**INPUTS, "pkg/a.py": "9" * 64}) != base
    assert key(inputs={**INPUTS, "tests/data.txt": "absent"}) != base
    assert key(dataclasses.replace(CONTEXT, pytest_version="8.3.1")) != base
    assert key(dataclasses.replace(CONTEXT, platform="macosx-14-arm64")) != base
    assert key(dataclasses.replace(CONTEXT, environment="f" * 64)) != base
    assert key(selection=["tests/test_a.py::test_x"]) != base


def test_interpreter_version_changes_the_key(interpreter: Interpreter) -> None:
    other = dataclasses.replace(interpreter, version=(3, 12, 7))
    mine = action_key("t.py", key_context(interpreter, [], []), INPUTS)
    theirs = action_key("t.py", key_context(other, [], []), INPUTS)
    assert mine.hex != theirs.hex
    # the environment differs too: a 3.12 interpreter reads lib/python3.12/site-packages
    assert changed_inputs(mine.inputs, theirs.inputs) == ["@environment", "@python"]


def test_display_options_do_not_change_the_key_but_selection_options_do() -> None:
    assert outcome_args(["-q", "-v", "--tb", "short", "--color=yes", "-rA", "-k", "x"]) == (
        "-k",
        "x",
    )
    plain = key(dataclasses.replace(CONTEXT, pytest_args=outcome_args(["-vv", "--tb=line"])))
    assert plain == key()
    assert key(dataclasses.replace(CONTEXT, pytest_args=outcome_args(["-x"]))) != key()


def test_env_values_are_keyed_but_never_stored_in_clear() -> None:
    env = allowlisted_env(
        ["API_MODE", "LC_*"], {"API_MODE": "secret-token", "LC_ALL": "C", "X": "1"}
    )
    assert env == (("API_MODE", "secret-token"), ("LC_ALL", "C"))
    k = action_key("t.py", dataclasses.replace(CONTEXT, env=env), INPUTS)
    assert "env:API_MODE" in k.inputs and "env:X" not in k.inputs
    assert not any("secret-token" in v for v in k.inputs.values())
    other = dataclasses.replace(CONTEXT, env=(("API_MODE", "other"), ("LC_ALL", "C")))
    assert action_key("t.py", other, INPUTS).hex != k.hex


def test_environment_digest_follows_installed_distributions(tmp_path: Path) -> None:
    site = tmp_path / "site-packages"
    (site / "requests-2.31.0.dist-info").mkdir(parents=True)
    (site / "requests").mkdir()
    before = environment_digest([site])
    (site / "requests").joinpath("extra.py").write_text("")  # code inside a package: not listed
    assert environment_digest([site]) == before
    (site / "pytest_randomly-3.15.0.dist-info").mkdir()  # a new pytest plugin changes all keys
    assert environment_digest([site]) != before


def test_changed_inputs_names_added_removed_and_modified() -> None:
    after = {**INPUTS, "pkg/a.py": "0" * 64, "new.txt": "4" * 64}
    del after["tests/test_a.py"]
    assert changed_inputs(INPUTS, after) == ["new.txt", "pkg/a.py", "tests/test_a.py"]


def test_environment_digest_is_the_same_for_the_same_distributions_elsewhere(
    tmp_path: Path,
) -> None:
    sites = [tmp_path / m / ".venv" / "lib" / "python3.11" / "site-packages" for m in "ab"]
    for site in sites:
        (site / "requests-2.31.0.dist-info").mkdir(parents=True)
        (site / "__editable__.demo-0.pth").write_text(str(site.parents[3]) + "\n")
    assert environment_digest([sites[0]]) == environment_digest([sites[1]])
    (sites[1] / "requests-2.32.0.dist-info").mkdir()
    assert environment_digest([sites[0]]) != environment_digest([sites[1]])
