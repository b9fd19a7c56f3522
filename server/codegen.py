"""Generate the clients' protocol types and the reference of docs/lsp.md from ``methods.py``.

    python -m maestro.server.codegen           # rewrite the generated files
    python -m maestro.server.codegen --check   # exit 1 and name the files that drifted

The models' JSON Schema (pydantic) is the intermediate form: params in validation mode (what a
client may send: a field with a default may be left out), results and notifications in
serialization mode. Each target language gets one declaration per schema definition.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, TypeAdapter

from maestro.server import methods

log = logging.getLogger(__name__)

TS_FILE = Path("clients/vscode/src/model/protocol.ts")
KOTLIN_FILE = Path("clients/intellij/src/main/kotlin/dev/maestro/intellij/Protocol.kt")
DOCS_FILE = Path("docs/lsp.md")
DOCS_BEGIN = "<!-- begin generated: python -m maestro.server.codegen -->"
DOCS_END = "<!-- end generated -->"
DRIFT = "out of date with server/methods.py; run python -m maestro.server.codegen"
KOTLIN_PACKAGE = "dev.maestro.intellij"

Schema = dict[str, Any]
Mode = Literal["validation", "serialization"]


@dataclass
class Definitions:
    """Every named shape of the protocol, by name, with the order it was first met."""

    schemas: dict[str, Schema]

    @classmethod
    def collect(cls) -> Definitions:
        found: dict[str, Schema] = {}

        def add(kind: Any, mode: Mode) -> str:
            schema = TypeAdapter(kind).json_schema(
                mode=mode, by_alias=True, ref_template="#/$defs/{model}"
            )
            for name, sub in schema.pop("$defs", {}).items():
                _merge(found, name, sub)
            name = schema.get("title") or kind.__name__
            _merge(found, name, schema)
            return str(name)

        for request in methods.REQUESTS:
            add(request.params, "validation")
            add(request.result, "serialization")
        for note in methods.NOTIFICATIONS:
            add(note.params, "serialization")
        for command in methods.COMMANDS:
            add(command.result, "serialization")
        # the types they extend, so that each client's type extends them instead of restating
        # their fields (after the rest: the order of the types met before stays as it was)
        while missing := [
            base
            for name in found
            for base in _protocol_bases(getattr(methods, name, None))
            if base.__name__ not in found
        ]:
            add(missing[0], "serialization")
        return cls(found)


def _protocol_bases(kind: Any) -> list[Any]:
    """The types of methods.py that ``kind`` extends and that hold fields."""
    bases = (*getattr(kind, "__orig_bases__", ()), *getattr(kind, "__bases__", ()))
    return [
        base
        for base in dict.fromkeys(bases)
        if getattr(base, "__module__", None) == methods.__name__
        and (
            base.model_fields
            if isinstance(base, type) and issubclass(base, BaseModel)
            else getattr(base, "__annotations__", None)
        )
    ]


def _merge(found: dict[str, Schema], name: str, schema: Schema) -> None:
    held = found.get(name)
    if held is not None and held != schema:
        # the same model seen in both modes: keep the union of its fields, required where both say
        props = {**held.get("properties", {}), **schema.get("properties", {})}
        required = sorted(set(held.get("required", [])) & set(schema.get("required", [])))
        found[name] = {**held, "properties": props, "required": required}
        return
    found[name] = schema


def _ref(schema: Schema) -> str | None:
    ref = schema.get("$ref")
    return str(ref).rsplit("/", 1)[-1] if ref else None


def _literal(value: Any) -> str:
    return json.dumps(value)


# --- TypeScript --------------------------------------------------------------------------------


_TS_SCALARS = {
    "string": "string",
    "integer": "number",
    "number": "number",
    "boolean": "boolean",
    "null": "null",
}


def ts_type(schema: Schema) -> str:
    ref = _ref(schema)
    if ref:
        return ref
    if "const" in schema:
        return _literal(schema["const"])
    if "enum" in schema:
        return " | ".join(_literal(v) for v in schema["enum"])
    if "anyOf" in schema:
        return " | ".join(dict.fromkeys(ts_type(s) for s in schema["anyOf"]))
    kind = schema.get("type")
    if kind in _TS_SCALARS:
        return _TS_SCALARS[kind]
    if kind == "array":
        item = ts_type(schema.get("items", {}))
        return f"({item})[]" if " " in item else f"{item}[]"
    if kind == "object" and "properties" not in schema:
        extra = schema.get("additionalProperties")
        return f"Record<string, {ts_type(extra) if isinstance(extra, dict) else 'unknown'}>"
    return "unknown"


def _doc(text: str | None, indent: str) -> list[str]:
    if not text:
        return []
    words = " ".join(text.split())
    return [f"{indent}/** {words} */"]


def generate_ts(defs: Definitions) -> str:
    out = [
        "// Generated from server/methods.py by `python -m maestro.server.codegen`: do not edit.",
        "// The Maestro language server's custom protocol (docs/lsp.md). Pure types and constants:",
        "// no `vscode` import, so the unit tests run under `node --test`.",
        "",
        "/** The protocol version this file was generated for: the server advertises its own",
        " * as `capabilities.experimental.maestroProtocol`. */",
        f"export const PROTOCOL_VERSION = {methods.PROTOCOL_VERSION};",
        "",
        "export const METHODS = {",
        *(f"  {_key(r.method)}: {_literal(r.method)}," for r in methods.REQUESTS),
        *(f"  {_key(n.method)}: {_literal(n.method)}," for n in methods.NOTIFICATIONS),
        "} as const;",
        "",
        "/** Server command ids (vscode-languageclient registers them from the server). */",
        "export const SERVER_COMMANDS = {",
        *(f"  {_key(c.name)}: {_literal(c.name)}," for c in methods.COMMANDS),
        "} as const;",
        "",
        "/** Params and result type of each request, params of each notification. */",
        "export interface Requests {",
        *(
            f"  {_literal(r.method)}: {{ params: {r.params.__name__}; "
            f"result: {r.result.__name__} }};"
            for r in methods.REQUESTS
        ),
        "}",
        "export interface Notifications {",
        *(f"  {_literal(n.method)}: {n.params.__name__};" for n in methods.NOTIFICATIONS),
        "}",
        "",
    ]
    for name, schema in defs.schemas.items():
        out += _doc(schema.get("description"), "")
        props: dict[str, Schema] = schema.get("properties", {})
        if schema.get("type") != "object" or not props:
            out += [f"export type {name} = {_ts_alias(schema)};", ""]
            continue
        required = set(schema.get("required", []))
        base = _base_of(name, defs)
        inherited: dict[str, Schema] = defs.schemas[base]["properties"] if base else {}
        out.append(f"export interface {name}{f' extends {base}' if base else ''} {{")
        for key, prop in props.items():
            if inherited.get(key) == prop:  # declared by the base interface
                continue
            out += _doc(prop.get("description"), "  ")
            optional = "" if key in required else "?"
            out.append(f"  {key}{optional}: {ts_type(prop)};")
        out += ["}", ""]
    return "\n".join(out).rstrip() + "\n"


def _base_of(name: str, defs: Definitions) -> str | None:
    """The protocol type ``name`` extends in methods.py (a TypedDict or model subclass), if
    generated."""
    kind = getattr(methods, name, None)
    for base in (*getattr(kind, "__orig_bases__", ()), *getattr(kind, "__bases__", ())):
        found = getattr(base, "__name__", None)
        if found in defs.schemas and found != name:
            return str(found)
    return None


def _ts_alias(schema: Schema) -> str:
    if schema.get("type") == "object" and "properties" in schema:
        return "Record<string, never>"
    return ts_type(schema)


def _key(method: str) -> str:
    """maestro/testExplorer/discover -> discover; maestro.runNode -> runNode."""
    return re.split(r"[/.]", method)[-1]


# --- Kotlin ------------------------------------------------------------------------------------


_KOTLIN_SCALARS = {"string": "String", "integer": "Long", "number": "Double", "boolean": "Boolean"}


def kotlin_type(schema: Schema) -> str:
    """The Kotlin type of a schema, without nullability (a union with null adds it)."""
    ref = _ref(schema)
    if ref:
        return ref
    if "const" in schema or "enum" in schema:
        values = schema.get("enum", [schema.get("const")])
        return "String" if all(isinstance(v, str) for v in values) else "Any"
    if "anyOf" in schema:
        kinds = [s for s in schema["anyOf"] if s.get("type") != "null"]
        if len(kinds) == 1:
            return kotlin_type(kinds[0])
        return "Any"
    kind = schema.get("type")
    if kind in _KOTLIN_SCALARS:
        return _KOTLIN_SCALARS[kind]
    if kind == "array":
        return f"List<{kotlin_type(schema.get('items', {}))}>"
    if kind == "object" and "properties" not in schema:
        extra = schema.get("additionalProperties")
        return f"Map<String, {kotlin_type(extra) if isinstance(extra, dict) else 'Any?'}>"
    return "Any"


def generate_kotlin(defs: Definitions) -> str:
    notes = methods.NOTIFICATIONS
    out = [
        "// Generated from server/methods.py by `python -m maestro.server.codegen`: do not edit.",
        f"package {KOTLIN_PACKAGE}",
        "",
        "import org.eclipse.lsp4j.jsonrpc.services.JsonRequest",
        "import java.util.concurrent.CompletableFuture",
        "",
        "/** The Maestro language server's custom protocol (docs/lsp.md). Every property is",
        " * nullable: Gson leaves absent keys null, whatever Kotlin declares. */",
        "object MaestroMethods {",
        "    /** The protocol version this file was generated for: the server advertises its own",
        "     * as `capabilities.experimental.maestroProtocol`. */",
        f"    const val PROTOCOL_VERSION = {methods.PROTOCOL_VERSION}",
        *(f"    const val {_const(r.method)} = {_literal(r.method)}" for r in methods.REQUESTS),
        *(f"    const val {_const(n.method)} = {_literal(n.method)}" for n in notes),
        "}",
        "",
        "object MaestroCommands {",
        *(f"    const val {_const(c.name)} = {_literal(c.name)}" for c in methods.COMMANDS),
        "}",
        "",
        "/** The custom requests, typed (implemented by the server proxy of lsp4j). */",
        "interface MaestroRequests {",
    ]
    for r in methods.REQUESTS:
        out += [
            f"    @JsonRequest({_literal(r.method)})",
            f"    fun {_key(r.method)}(params: {r.params.__name__}): "
            f"CompletableFuture<{r.result.__name__}>",
            "",
        ]
    out[-1:] = ["}", ""]
    extended = {base for name in defs.schemas if (base := _kotlin_base(name, defs))}
    for name, schema in defs.schemas.items():
        props: dict[str, Schema] = schema.get("properties", {})
        out += _doc(schema.get("description"), "")
        if schema.get("type") != "object":
            out += [f"typealias {name} = {kotlin_type(schema)}", ""]
            continue
        if not props:
            out += [f"class {name}", ""]
            continue
        # A data class cannot be extended: a base is an open class, its subclasses declare only
        # their own properties (Gson reads and writes the inherited ones all the same).
        base = _kotlin_base(name, defs)
        inherited: dict[str, Schema] = defs.schemas[base]["properties"] if base else {}
        out.append(f"{'open' if name in extended else 'data'} class {name}(")
        for key, prop in props.items():
            if key in inherited:
                continue
            out += _doc(prop.get("description"), "    ")
            out.append(f"    val {_kotlin_name(key)}: {kotlin_type(prop)}? = null,")
        out += [f"){f' : {base}()' if base else ''}", ""]
    return "\n".join(out).rstrip() + "\n"


def _kotlin_base(name: str, defs: Definitions) -> str | None:
    """The base ``name`` extends in Kotlin: its protocol base, when it keeps every property of
    that base as declared there and adds one of its own (else the class restates them all)."""
    base = _base_of(name, defs)
    if base is None:
        return None
    props: dict[str, Schema] = defs.schemas[name].get("properties", {})
    inherited: dict[str, Schema] = defs.schemas[base].get("properties", {})
    keeps = all(props.get(key) == prop for key, prop in inherited.items())
    return base if keeps and inherited and len(props) > len(inherited) else None


def _const(method: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", _key(method)).upper()


_KOTLIN_KEYWORDS = {"in", "is", "as", "fun", "val", "var", "when", "object", "class", "typealias"}


def _kotlin_name(key: str) -> str:
    return f"`{key}`" if key in _KOTLIN_KEYWORDS else key


# --- docs/lsp.md -------------------------------------------------------------------------------


def generate_docs(defs: Definitions) -> str:
    out = [
        DOCS_BEGIN,
        "",
        f"Protocol version {methods.PROTOCOL_VERSION} (the server's "
        f"`capabilities.experimental.{methods.PROTOCOL_CAPABILITY}`).",
        "",
        "### Requests (client → server)",
        "",
        "| method | params | result | |",
        "| --- | --- | --- | --- |",
        *(
            f"| `{r.method}` | `{r.params.__name__}` | `{r.result.__name__}` | {r.doc} |"
            for r in methods.REQUESTS
        ),
        "",
        "### Notifications (server → client)",
        "",
        "| method | params | |",
        "| --- | --- | --- |",
        *(
            f"| `{n.method}` | `{n.params.__name__}` | {n.doc}"
            + (f" Only with `{n.gated}`." if n.gated else "")
            + " |"
            for n in methods.NOTIFICATIONS
        ),
        "",
        "### Commands (`workspace/executeCommand`)",
        "",
        "| command | arguments | returns | |",
        "| --- | --- | --- | --- |",
        *(
            f"| `{c.name}` | {c.arguments or '—'} | `{c.result.__name__}` | {c.doc} |"
            for c in methods.COMMANDS
        ),
        "",
        "### Types",
        "",
        "Field names as on the wire; `?` marks a key that may be absent.",
        "",
    ]
    for name, schema in defs.schemas.items():
        about = schema.get("description")
        out.append(f"**`{name}`**" + (f" — {_one_line(about)}" if about else ""))
        props: dict[str, Schema] = schema.get("properties", {})
        if schema.get("type") != "object" or not props:
            out += ["", f"`{_ts_alias(schema)}`" if schema.get("type") != "object" else "`{}`", ""]
            continue
        required = set(schema.get("required", []))
        out += ["", "| field | type | |", "| --- | --- | --- |"]
        for key, prop in props.items():
            mark = "" if key in required else "?"
            kind = ts_type(prop).replace("|", "\\|")
            out.append(f"| `{key}{mark}` | `{kind}` | {_one_line(prop.get('description') or '')} |")
        out.append("")
    out.append(DOCS_END)
    return "\n".join(out)


def _one_line(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def splice_docs(current: str, section: str) -> str:
    """docs/lsp.md with its generated section replaced (appended when it has none)."""
    start, end = current.find(DOCS_BEGIN), current.find(DOCS_END)
    if start < 0 or end < start:
        return current.rstrip() + "\n\n## Reference (generated)\n\n" + section + "\n"
    return current[:start] + section + current[end + len(DOCS_END) :]


# --- entry point -------------------------------------------------------------------------------


def outputs(root: Path) -> dict[Path, str]:
    """Each generated file's path under ``root`` -> the text it must have."""
    defs = Definitions.collect()
    docs = root / DOCS_FILE
    current = docs.read_text(encoding="utf-8") if docs.exists() else "# Maestro LSP\n"
    return {
        root / TS_FILE: generate_ts(defs),
        root / KOTLIN_FILE: generate_kotlin(defs),
        docs: splice_docs(current, generate_docs(defs)),
    }


def drifted(root: Path) -> list[Path]:
    """The generated files whose text differs from what methods.py gives."""
    return [
        path
        for path, text in outputs(root).items()
        if not path.exists() or path.read_text(encoding="utf-8") != text
    ]


def _say(line: str) -> None:
    sys.stdout.write(line + "\n")


def main(argv: Iterable[str] | None = None, *, write: Callable[[str], object] = _say) -> int:
    parser = argparse.ArgumentParser(prog="python -m maestro.server.codegen", description=__doc__)
    parser.add_argument("--root", type=Path, default=Path.cwd(), help="the repository (default .)")
    parser.add_argument("--check", action="store_true", help="only report drift (exit 1)")
    ns = parser.parse_args(list(argv) if argv is not None else None)
    if ns.check:
        stale = drifted(ns.root)
        for path in stale:
            write(f"{path}: {DRIFT}")
        return 1 if stale else 0
    for path, text in outputs(ns.root).items():
        path.write_text(text, encoding="utf-8")
        write(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
