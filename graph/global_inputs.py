"""Global inputs: configuration and dependency files that can change any test's outcome.

They count only through the parts that matter: `[tool.ruff]` in pyproject.toml changes no test,
`[tool.pytest.ini_options]` or `[project] dependencies` may change them all. Each relevant part is
a node of its own (`pyproject.toml#tool.pytest.ini_options`), digested separately, so a change is
attributed to exactly the sections that differ.
"""

from __future__ import annotations

import configparser
import fnmatch
import hashlib
import json
import tomllib
from typing import Any

# pyproject.toml: dotted keys whose content can change what the tests see.
PYPROJECT_KEYS = (
    "build-system",
    "project.dependencies",
    "project.optional-dependencies",
    "project.requires-python",
    "project.entry-points",
    "project.scripts",
    "project.gui-scripts",
    "dependency-groups",
    "tool.pytest",
    "tool.setuptools",
    "tool.poetry.dependencies",
    "tool.poetry.group",
    "tool.hatch.build",
    "tool.uv.sources",
    "tool.pdm.dev-dependencies",
    "tool.coverage",
)
SETUP_CFG_SECTIONS = ("tool:pytest", "options", "options.extras_require", "options.entry_points")
TOX_SECTIONS = ("pytest",)
# Files that matter as a whole.
WHOLE_FILES = ("setup.py", "pytest.ini", ".pytest.ini", "Pipfile", "Pipfile.lock", "uv.lock",
               "poetry.lock", "pdm.lock", "pylock.toml")  # fmt: skip
WHOLE_PATTERNS = ("requirements*.txt", "requirements/*.txt", "constraints*.txt")


def is_global_input(rel: str) -> bool:
    if rel in ("pyproject.toml", "setup.cfg", "tox.ini") or rel in WHOLE_FILES:
        return True
    return any(fnmatch.fnmatch(rel, pat) for pat in WHOLE_PATTERNS)


def is_root_global_input(rel: str) -> bool:
    """A global input at the workspace root: the graph reads it for its content (sections)."""
    return "/" not in rel and is_global_input(rel)


def _digest(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _get(data: dict[str, Any], dotted: str) -> Any:
    node: Any = data
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def section_digests(rel: str, content: bytes | None) -> dict[str, str]:
    """Digest of each relevant section of global input `rel`: {"file#section": sha256}.

    A file that does not parse yields one opaque section for the whole file, so any change to it
    still invalidates the tests (safe), and the parse error is the runner's to report.
    """
    if content is None:
        return {}
    whole = {f"{rel}#*": hashlib.sha256(content).hexdigest()}
    name = rel.rsplit("/", 1)[-1]
    try:
        if rel == "pyproject.toml":
            data = tomllib.loads(content.decode("utf-8"))
            return {
                f"{rel}#{key}": _digest(value)
                for key in PYPROJECT_KEYS
                if (value := _get(data, key)) is not None
            }
        if rel in ("setup.cfg", "tox.ini"):
            parser = configparser.ConfigParser(interpolation=None)
            parser.read_string(content.decode("utf-8"))
            sections = SETUP_CFG_SECTIONS if rel == "setup.cfg" else TOX_SECTIONS
            return {
                f"{rel}#{sec}": _digest(dict(parser.items(sec)))
                for sec in sections
                if parser.has_section(sec)
            }
    except (UnicodeDecodeError, tomllib.TOMLDecodeError, configparser.Error, ValueError):
        return whole
    del name
    return whole
