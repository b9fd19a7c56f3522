"""docs/configuration.md, generated from the settings model (maestro/config.py): every key, its
type, default, bounds and meaning, so that the reference cannot drift from what is validated.

``python -m maestro.config_doc`` prints it; ``--write`` writes docs/configuration.md.
"""

from __future__ import annotations

import dataclasses
import sys
import types
import typing
from pathlib import Path
from typing import Any, Literal

from maestro import config
from maestro.config import Settings

DOC = Path("docs/configuration.md")
_BOUNDS = (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<"))

_HEAD = """\
# Configuration reference

Generated from `maestro/config.py` by `python -m maestro.config_doc --write`
(tests/graph/test_config_model.py fails when this page and the model differ).

Everything is optional: a workspace that configures nothing gets the defaults. Settings live in
`[tool.maestro]` of `pyproject.toml`, or at the top level of `maestro.toml` (when that file
exists, pyproject.toml is not read for them).
Keys are kebab-case (`max-file-size`); snake_case is accepted too. An unknown key, a wrong type
or a value out of bounds is an error that names the file, the line and the key.

Environment: `MAESTRO_CACHE_DIR` moves the shared cache and `MAESTRO_STATE_DIR` the per-workspace
state (index, daemon socket, logs). Team policy (`[tool.maestro.policy]`) is described in
docs/policy.md, feature flags in docs/flags.md, the coordinator in docs/coordinator.md.
"""


def _is_table(tp: Any) -> type | None:
    """The settings class a field holds (directly or optionally), if it is a table."""
    args = typing.get_args(tp) if _is_union(tp) else (tp,)
    found = [a for a in args if dataclasses.is_dataclass(a)]
    return found[0] if len(found) == 1 and isinstance(found[0], type) else None


def _is_union(tp: Any) -> bool:
    return typing.get_origin(tp) in (typing.Union, types.UnionType)


def _type_name(tp: Any) -> str:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if _is_union(tp):
        names = [_type_name(a) for a in args if a is not type(None)]
        return " or ".join(names)
    if origin is Literal:
        return "one of " + ", ".join(f'`"{a}"`' for a in args)
    if origin is tuple:
        return f"list of {_type_name(args[0])}s"
    if origin is dict:
        return "table"
    scalars: dict[Any, str] = {bool: "boolean", int: "integer", float: "number", str: "string"}
    return scalars.get(tp) or str(getattr(tp, "__name__", tp))


def _default(f: dataclasses.Field[Any]) -> str:
    if f.default is not dataclasses.MISSING:
        value = f.default
    elif f.default_factory is not dataclasses.MISSING:
        value = f.default_factory()
        if dataclasses.is_dataclass(value):
            return ""
    else:
        return "required"
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, str):
        return f'`"{value}"`'
    if isinstance(value, tuple | list | dict) and not value:
        return "`[]`" if not isinstance(value, dict) else "`{}`"
    return f"`{value}`"


def _what(meta: typing.Mapping[str, Any]) -> str:
    text = str(meta.get("description", ""))
    bounds = [f"{sign} {meta[k]}" for k, sign in _BOUNDS if k in meta]
    if "pattern" in meta:
        bounds.append(f"matches `{meta['pattern']}`")
    if bounds:
        text = f"{text}; {', '.join(bounds)}" if text else ", ".join(bounds)
    return text.replace("|", "\\|")


def _tables(cls: type, name: str) -> list[tuple[str, type]]:
    """(TOML table name, settings class), depth first, the root first."""
    out = [(name, cls)]
    hints = typing.get_type_hints(cls, vars(config))
    for f in dataclasses.fields(cls):
        inner = _is_table(hints[f.name])
        if inner is not None:
            out += _tables(inner, f"{name}.{f.name.replace('_', '-')}")
        elif f.name == "targets":
            out.append((f"{name}.targets.NAME", config.Target))
    return out


def reference() -> str:
    """The whole page."""
    parts = [_HEAD]
    for table, cls in _tables(Settings, "tool.maestro"):
        hints = typing.get_type_hints(cls, vars(config))
        rows = [
            (
                f"`{f.name.replace('_', '-')}`",
                _type_name(hints[f.name]),
                _default(f),
                _what(f.metadata),
            )
            for f in dataclasses.fields(cls)
            if _is_table(hints[f.name]) is None and f.name != "targets"
        ]
        if not rows:
            continue
        parts.append(f"\n## `[{table}]`\n")
        doc = " ".join((cls.__doc__ or "").split())
        doc = doc.removeprefix(f"`[{table}]`").removeprefix(":").strip()
        if doc and not doc.startswith(f"{cls.__name__}("):  # the dataclass's generated one
            parts.append(f"\n{doc[0].upper()}{doc[1:]}\n")
        parts.append("\n| key | type | default | what it does |\n| :--- | :--- | :--- | :--- |\n")
        parts += ["| " + " | ".join(row) + " |\n" for row in rows]
    return "".join(parts)


def main(argv: list[str]) -> int:
    text = reference()
    if argv[:1] == ["--write"]:
        DOC.write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
