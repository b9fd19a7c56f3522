"""Where policy comes from, and what its annotations say.

Three layers, each a set of Rego modules whose packages live under the layer's root:

- ``builtin`` (``package maestro.builtin.<point>``): shipped in this package (policy/rego/).
- ``workspace`` (``package maestro.workspace.<point>``): ``.maestro/policy/*.rego``, with data
  from ``[tool.maestro.policy]`` (``data.config.workspace``).
- ``team`` (``package maestro.team.<point>``): the coordinator's signed bundle
  (``data.config.team`` from its data.json).

A module outside its layer's root is refused: that is what keeps a workspace from redefining a
team rule (the composition in engine.py makes any layer's deny final).
"""

from __future__ import annotations

import json
import re
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from maestro.errors import ConfigError, PolicyError

Layer = Literal["builtin", "workspace", "team"]
LAYERS: tuple[Layer, ...] = ("builtin", "workspace", "team")
WORKSPACE_DIR = ".maestro/policy"

_PACKAGE = re.compile(r"^\s*package\s+([A-Za-z_][\w.]*)", re.MULTILINE)
_RULE_HEAD = re.compile(r"^\s*(?:default\s+)?([A-Za-z_]\w*)")


@dataclass(frozen=True, slots=True)
class Annotation:
    """A METADATA block's fields that Maestro uses."""

    rule: str  # custom.id, else <package>.<rule name>
    title: str = ""
    description: str = ""
    remediation: str = ""
    file: str = ""
    line: int = 0


@dataclass(slots=True)
class Module:
    name: str  # shown in errors: builtin/run.rego, .maestro/policy/caps.rego, team:caps.rego
    text: str
    layer: Layer
    package: str = ""

    def __post_init__(self) -> None:
        found = _PACKAGE.search(self.text)
        self.package = found.group(1) if found else ""


@dataclass(slots=True)
class PolicySources:
    """Everything one compiled policy set is made of."""

    modules: list[Module] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)  # data.config.<layer>
    shadow: set[Layer] = field(default_factory=set)  # layers recorded, not enforced
    revision: str = ""  # the team bundle's revision, when one is in force

    def with_team(
        self, modules: list[Module], data: dict[str, Any], revision: str
    ) -> PolicySources:
        """These sources with a team bundle's modules and data in force. Only the team puts
        its rules in shadow mode (its data.json's ``shadow``); with a team bundle in force a
        workspace cannot shadow the built-in rules either, since the team's settings drive
        them (a workspace switching them off would override a team deny)."""
        kept = [m for m in self.modules if m.layer != "team"]
        config = {**self.data, "team": data}
        shadow = self.shadow - {"builtin"} if revision else set(self.shadow)
        named = data.get("shadow", [])
        shadow |= {layer for layer in LAYERS if isinstance(named, list) and layer in named}
        return PolicySources([*kept, *modules], config, shadow, revision)


def builtin_defaults() -> dict[str, Any]:
    """The built-in rules' settings (``rego/builtin/defaults.json``), before any layer's."""
    text = (resources.files("maestro.policy") / "rego" / "builtin" / "defaults.json").read_text()
    value: dict[str, Any] = json.loads(text)
    return value


def builtin_modules() -> list[Module]:
    root = resources.files("maestro.policy") / "rego" / "builtin"
    return [
        Module(f"builtin/{entry.name}", entry.read_text(encoding="utf-8"), "builtin")
        for entry in sorted(root.iterdir(), key=lambda e: e.name)
        if entry.name.endswith(".rego")
    ]


def workspace_modules(root: Path, *, tests: bool = False) -> list[Module]:
    """The workspace's policy modules; with ``tests``, its ``*_test.rego`` files instead (they
    run under `maestro policy test` only and may use any package)."""
    folder = root / WORKSPACE_DIR
    if not folder.is_dir():
        return []
    out: list[Module] = []
    for path in sorted(folder.glob("*.rego")):
        if path.name.endswith("_test.rego") != tests:
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise PolicyError(f"cannot read policy module: {exc}", where=str(path)) from None
        out.append(Module(f"{WORKSPACE_DIR}/{path.name}", text, "workspace"))
    return out


def workspace_config(root: Path) -> dict[str, Any]:
    """``[tool.maestro.policy]`` of pyproject.toml (or ``[policy]`` of maestro.toml)."""
    for name, table in (
        ("maestro.toml", ("policy",)),
        ("pyproject.toml", ("tool", "maestro", "policy")),
    ):
        path = root / name
        if not path.is_file():
            continue
        try:
            doc: Any = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"cannot read policy settings: {exc}", where=name) from None
        for key in table:
            doc = doc.get(key, {}) if isinstance(doc, dict) else {}
        if not isinstance(doc, dict):
            raise ConfigError(f"[{'.'.join(table)}] must be a table", where=name)
        if doc or name == "maestro.toml":
            return doc
    return {}


def load(root: Path | None) -> PolicySources:
    """Built-in and workspace layers (the team layer joins from a verified bundle)."""
    modules = builtin_modules()
    config: dict[str, Any] = {"builtin": {}, "workspace": {}, "team": {}}
    shadow: set[Layer] = set()
    if root is not None:
        modules += workspace_modules(root)
        ws = workspace_config(root)
        for layer in ws.pop("shadow", []) or []:
            if layer == "team":
                raise ConfigError(
                    "policy.shadow names 'team': a workspace cannot put the team's rules in"
                    " shadow mode", where="pyproject.toml",
                    hint='the team does, in its bundle\'s data.json: "shadow": ["team"]',
                )  # fmt: skip
            if layer not in LAYERS:
                raise ConfigError(
                    f"policy.shadow names {layer!r}", where="pyproject.toml",
                    hint="shadow takes the workspace's layer names: builtin, workspace",
                )  # fmt: skip
            shadow.add(layer)
        config["workspace"] = ws
    return PolicySources(modules, config, shadow)


def check_roots(modules: list[Module]) -> None:
    """Refuse a module outside its layer's package root (file and line named)."""
    for m in modules:
        allowed = (f"maestro.{m.layer}",)
        if not m.package:
            raise PolicyError("a Rego module needs a package line", where=f"{m.name}:1:1")
        if not any(m.package == a or m.package.startswith(a + ".") for a in allowed):
            line = m.text[: m.text.find("package")].count("\n") + 1
            raise PolicyError(
                f"package {m.package} is outside the {m.layer} layer",
                where=f"{m.name}:{line}:1",
                hint=f"{m.layer} policy declares `package maestro.{m.layer}.<point>`"
                " (run, select, cache, coordinator, plugin)",
            )


def read_annotations(module: Module) -> list[Annotation]:
    """The METADATA blocks of a module (OPA's format: ``# METADATA`` then YAML comments).
    A rule's id is ``custom.id``; a package-scoped block gives the package's default remediation."""
    lines = module.text.splitlines()
    out: list[Annotation] = []
    i = 0
    while i < len(lines):
        if lines[i].strip() != "# METADATA":
            i += 1
            continue
        start = i + 1
        block: list[str] = []
        i += 1
        while i < len(lines) and lines[i].lstrip().startswith("#"):
            block.append(lines[i].lstrip()[1:].removeprefix(" "))
            i += 1
        import yaml  # only where METADATA is read: the CLI's cache gates load no module

        try:
            meta = yaml.safe_load("\n".join(block)) or {}
        except yaml.YAMLError as exc:
            raise PolicyError(
                f"METADATA is not YAML: {exc}", where=f"{module.name}:{start}:1"
            ) from None
        if not isinstance(meta, dict):
            continue
        head = lines[i] if i < len(lines) else ""
        custom = meta.get("custom") or {}
        name = _RULE_HEAD.match(head)
        rule = str(custom.get("id") or "")
        if not rule:
            rule = (
                module.package
                if head.strip().startswith("package") or not name
                else (f"{module.package}.{name.group(1)}")
            )
        out.append(
            Annotation(
                rule=rule,
                title=str(meta.get("title") or ""),
                description=str(meta.get("description") or ""),
                remediation=str(custom.get("remediation") or ""),
                file=module.name,
                line=start,
            )
        )
    return out
