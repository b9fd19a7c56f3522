"""Find and describe the workspace's Python interpreter (tests run there, not in the daemon).

Where it is: maestro/engine/interpreter_path.py (an explicit setting, ``<root>/.venv/bin/python``,
``$VIRTUAL_ENV/bin/python``, then ``python3`` on PATH). The interpreter is queried once per
(path, mtime) by a tiny subprocess.
"""

from __future__ import annotations

import json
import logging
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from maestro.engine.interpreter_path import find_interpreter_path as find_interpreter_path
from maestro.errors import RunnerError

log = logging.getLogger(__name__)

Source = Literal["setting", ".venv", "VIRTUAL_ENV", "PATH"]

_QUERY_TIMEOUT_S = 30.0


_ANSWER_KEYS = {"version", "implementation", "platform", "prefix", "base_prefix", "pytest_version"}


@dataclass(frozen=True)
class _QueryAnswer:
    """The query's JSON line, checked with the standard library only: this module is imported
    before an in-process run starts its pytest process, which pydantic's import would delay."""

    version: tuple[int, int, int]
    implementation: str
    platform: str
    prefix: str
    base_prefix: str
    pytest_version: str | None

    @classmethod
    def parse(cls, line: str | bytes) -> _QueryAnswer:
        """ValueError unless ``line`` is a JSON object of the query's fields and types."""
        data: Any = json.loads(line)
        if not isinstance(data, dict) or not data.keys() >= _ANSWER_KEYS:
            raise ValueError("not an answer")
        version = data.get("version")
        texts = [data.get(k) for k in ("implementation", "platform", "prefix", "base_prefix")]
        strs = [t for t in texts if isinstance(t, str)]
        pytest_version = data.get("pytest_version")
        if not (
            isinstance(version, list)
            and len(version) == 3
            and all(type(v) is int for v in version)
            and len(strs) == len(texts)
            and (pytest_version is None or isinstance(pytest_version, str))
        ):
            raise ValueError("unexpected fields")
        implementation, platform, prefix, base_prefix = strs
        return cls(
            (version[0], version[1], version[2]),
            implementation, platform, prefix, base_prefix, pytest_version,
        )  # fmt: skip


@dataclass(frozen=True)
class Interpreter:
    """A workspace interpreter as found and queried; ``path`` is kept unresolved (venv symlink)."""

    path: Path
    version: tuple[int, int, int]
    implementation: str
    platform: str
    pytest_version: str | None
    prefix: Path
    is_venv: bool
    source: Source = "setting"

    @property
    def has_pytest(self) -> bool:
        return self.pytest_version is not None

    @property
    def version_string(self) -> str:
        return ".".join(map(str, self.version))

    def require_pytest(self) -> None:
        """Raise a RunnerError with the install command when pytest is not importable."""
        if not self.has_pytest:
            raise RunnerError(
                f"pytest is not installed in the workspace interpreter {self.path}",
                hint=f"install pytest into {self.path}: {self.path} -m pip install pytest",
            )


Describe = Callable[[Path], str | None]
"""The query's answer (its JSON line) from a process already running that interpreter (the warm
pytest process), or None: then the interpreter is started to ask it."""


def query_interpreter(
    path: Path, *, source: Source = "setting", describe: Describe | None = None
) -> Interpreter:
    """Ask the interpreter for its version, platform and pytest (memoised per path and mtime)."""
    try:
        mtime = path.stat().st_mtime_ns
    except OSError as exc:
        raise RunnerError(
            f"the workspace interpreter {path} is missing ({exc.strerror})",
            hint="recreate the virtual environment, or configure another interpreter",
        ) from exc
    line = describe(path) if describe is not None else None
    if line is not None:
        try:
            return _interpreter(path, _QueryAnswer.parse(line), source)
        except ValueError:
            log.debug("ignoring a malformed description of %s", path)
    return _query(path, mtime, source)


@lru_cache(maxsize=32)
def _query(path: Path, mtime_ns: int, source: Source) -> Interpreter:
    from maestro.engine.warm import plugin_dir

    # the file runs in the workspace interpreter: stdlib only, and it never imports pytest
    query = plugin_dir() / "maestro_warm.py"
    try:
        proc = subprocess.run(
            [str(path), str(query)],
            capture_output=True,
            timeout=_QUERY_TIMEOUT_S,
            check=False,
            stdin=subprocess.DEVNULL,
            cwd=Path(path.anchor or "/"),
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise RunnerError(
            f"cannot run the workspace interpreter {path}: {exc}",
            hint="check that it starts: run `<path> -c pass` yourself, or configure another",
        ) from exc
    if proc.returncode != 0:
        detail = proc.stderr.decode(errors="replace").strip().splitlines()[-1:] or ["no output"]
        raise RunnerError(
            f"the workspace interpreter {path} failed to start: {detail[0]}",
            hint="check that it starts: run `<path> -c pass` yourself, or configure another",
        )
    try:
        answer = _QueryAnswer.parse(proc.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError) as exc:
        raise RunnerError(
            f"unexpected answer from the workspace interpreter {path}",
            hint="is it a CPython or PyPy 3.11+ interpreter?",
        ) from exc
    return _interpreter(path, answer, source)


def _interpreter(path: Path, answer: _QueryAnswer, source: Source) -> Interpreter:
    return Interpreter(
        path=path,
        version=answer.version,
        implementation=answer.implementation,
        platform=answer.platform,
        pytest_version=answer.pytest_version,
        prefix=Path(answer.prefix),
        is_venv=answer.prefix != answer.base_prefix,
        source=source,
    )


def resolve_interpreter(
    root: Path,
    *,
    configured: str | Path | None = None,
    environ: Mapping[str, str] | None = None,
    require_pytest: bool = True,
    describe: Describe | None = None,
) -> Interpreter:
    """Find, query and check the interpreter that runs this workspace's tests."""
    path, source = find_interpreter_path(root, configured=configured, environ=environ)
    interpreter = query_interpreter(path, source=source, describe=describe)
    if interpreter.version < (3, 11):
        raise RunnerError(
            f"the workspace interpreter {path} is Python {interpreter.version_string}; "
            "Maestro runs tests on Python 3.11 or newer",
            hint="point the interpreter setting at a Python 3.11+ virtual environment",
        )
    if require_pytest:
        interpreter.require_pytest()
    return interpreter
