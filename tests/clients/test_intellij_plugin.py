"""The IntelliJ plugin (clients/intellij) cannot be built here (the JetBrains repositories are not
reachable), so this checks what can be checked without them: plugin.xml is well-formed, declares
the LSP4IJ dependency, the Maestro server and the Python language mapping; every class it names
exists as a Kotlin source with that package and class name, of the right kind; the server id used by
the code matches plugin.xml; the actions send the server's real commands and requests
(docs/lsp.md); build.gradle.kts uses the IntelliJ Platform Gradle Plugin 2.x and LSP4IJ."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2] / "clients" / "intellij"
PLUGIN_XML = ROOT / "src" / "main" / "resources" / "META-INF" / "plugin.xml"
KOTLIN = ROOT / "src" / "main" / "kotlin"
LSP4IJ = "com.redhat.devtools.lsp4ij"
DOCS = Path(__file__).resolve().parents[2] / "docs" / "lsp.md"


@pytest.fixture(scope="module")
def plugin() -> ET.Element:
    return ET.parse(PLUGIN_XML).getroot()  # raises on malformed XML


def kotlin_classes() -> dict[str, tuple[Path, str]]:
    """FQCN -> (file, declaration line) for every top-level class/object/interface."""
    out: dict[str, tuple[Path, str]] = {}
    for path in KOTLIN.rglob("*.kt"):
        text = path.read_text()
        pkg = re.search(r"^package\s+([\w.]+)", text, re.M)
        assert pkg, f"{path}: no package"
        rel_pkg = ".".join(path.parent.relative_to(KOTLIN).parts)
        assert pkg.group(1) == rel_pkg, f"{path}: package {pkg.group(1)} != directory {rel_pkg}"
        decl = r"^(?:(?:data|abstract|open|sealed)\s+)*(class|object|interface)\s+(\w+)(.*)$"
        for m in re.finditer(decl, text, re.M):
            out[f"{pkg.group(1)}.{m.group(2)}"] = (path, m.group(0))
    return out


def referenced(plugin: ET.Element) -> dict[str, str]:
    """Every class plugin.xml references -> where."""
    refs: dict[str, str] = {}
    for ext in plugin.iter("extensions"):
        for el in ext:
            for attr in ("factoryClass", "serviceImplementation", "instance", "implementationClass",
                         "documentMatcher", "implementation"):  # fmt: skip
                if attr in el.attrib:
                    refs[el.attrib[attr]] = f"<{el.tag} {attr}>"
    for action in plugin.iter("action"):
        refs[action.attrib["class"]] = f"<action id={action.attrib['id']}>"
    return refs


def test_plugin_xml_identity_and_dependencies(plugin: ET.Element) -> None:
    assert plugin.tag == "idea-plugin"
    assert plugin.findtext("id") == "dev.maestro.intellij"
    assert plugin.findtext("name") == "Maestro"
    depends = [d.text for d in plugin.findall("depends")]
    assert LSP4IJ in depends
    assert "com.intellij.modules.python" in depends  # the Python language must exist
    assert "com.intellij.modules.platform" in depends


def test_lsp4ij_server_and_python_mapping(plugin: ET.Element) -> None:
    ns = [e for e in plugin.findall("extensions") if e.get("defaultExtensionNs") == LSP4IJ]
    assert len(ns) == 1
    servers = ns[0].findall("server")
    assert len(servers) == 1
    server = servers[0]
    assert server.get("id") == "maestro" and server.get("name") == "Maestro"
    assert server.get("factoryClass") == "dev.maestro.intellij.MaestroLanguageServerFactory"
    mappings = ns[0].findall("languageMapping")
    assert [(m.get("language"), m.get("serverId"), m.get("languageId")) for m in mappings] == [
        ("Python", "maestro", "python")
    ]
    # only extension points LSP4IJ defines
    assert {el.tag for el in ns[0]} <= {"server", "languageMapping", "fileTypeMapping",
                                         "fileNamePatternMapping"}  # fmt: skip


def test_platform_extensions_and_actions(plugin: ET.Element) -> None:
    ns = [e for e in plugin.findall("extensions") if e.get("defaultExtensionNs") == "com.intellij"]
    assert len(ns) == 1
    tags = {el.tag for el in ns[0]}
    assert tags == {"applicationService", "applicationConfigurable", "notificationGroup"}
    assert ns[0].find("notificationGroup").get("id") == "Maestro"  # type: ignore[union-attr]
    actions = {a.get("id"): a for a in plugin.iter("action")}
    assert set(actions) == {"Maestro.RunImpacted", "Maestro.CacheStats", "Maestro.Explain"}
    ids = [a.get("id") for a in plugin.iter("action")] + [g.get("id") for g in plugin.iter("group")]
    assert len(ids) == len(set(ids)), "duplicate action/group ids"
    for ref in plugin.iter("reference"):
        assert ref.get("ref") in actions
    for group in plugin.iter("add-to-group"):
        assert group.get("group-id") in {"ToolsMenu", "EditorPopupMenu"}


def test_every_referenced_class_exists_in_kotlin(plugin: ET.Element) -> None:
    classes = kotlin_classes()
    refs = referenced(plugin)
    assert len(refs) == 6, refs
    for fqcn, where in refs.items():
        assert fqcn in classes, f"{where} references {fqcn}: no Kotlin source declares it"
        path, _ = classes[fqcn]
        assert path.stem == fqcn.rsplit(".", 1)[1], f"{fqcn} lives in {path.name}"
    kinds = {
        "dev.maestro.intellij.MaestroLanguageServerFactory": ": LanguageServerFactory",
        "dev.maestro.intellij.MaestroSettingsConfigurable": ": Configurable",
        "dev.maestro.intellij.MaestroSettings": ": PersistentStateComponent",
        "dev.maestro.intellij.actions.RunImpactedAction": ": ProjectAction()",
        "dev.maestro.intellij.actions.CacheStatsAction": ": ProjectAction()",
        "dev.maestro.intellij.actions.ExplainAction": ": ProjectAction()",
        # the actions' shared base: an IntelliJ action
        "dev.maestro.intellij.actions.ProjectAction": ": AnAction()",
    }
    for fqcn, supertype in kinds.items():
        assert supertype in classes[fqcn][1], f"{fqcn}: {classes[fqcn][1]!r} lacks {supertype}"


def test_factory_launches_maestro_lsp_through_lsp4ij() -> None:
    classes = kotlin_classes()
    factory = classes["dev.maestro.intellij.MaestroLanguageServerFactory"][0].read_text()
    assert "import com.redhat.devtools.lsp4ij.LanguageServerFactory" in factory
    assert "override fun createConnectionProvider(project: Project)" in factory
    provider_path, decl = classes["dev.maestro.intellij.MaestroConnectionProvider"]
    assert ": OSProcessStreamConnectionProvider()" in decl
    provider = provider_path.read_text()
    assert "import com.redhat.devtools.lsp4ij.server.OSProcessStreamConnectionProvider" in provider
    assert "override fun getInitializationOptions" in provider
    settings = classes["dev.maestro.intellij.MaestroSettings"][0].read_text()
    assert 'listOf(exe, "lsp")' in settings and 'listOf("maestro", "lsp")' in settings
    assert '"-m", "maestro.server"' in settings
    # the initialization options are the server's documented ones
    documented = set(re.findall(r"^\| `(\w+)(?:\.\w+)?` \|", DOCS.read_text(), re.M))
    sent = set(re.findall(r'"(\w+)" to ', settings))
    assert sent - {"enabled", "impactedOnSource"} <= documented, sent - documented


def test_server_id_and_protocol_names_match_the_server() -> None:
    plugin_xml = PLUGIN_XML.read_text()
    sources = "\n".join(p.read_text() for p in KOTLIN.rglob("*.kt"))
    ids = set(re.findall(r'const val ID = "(\w+)"', sources))
    assert ids == {"maestro"} and 'id="maestro"' in plugin_xml
    docs = DOCS.read_text()
    for method in set(re.findall(r'@Json(?:Request|Notification)\("([\w/]+)"\)', sources)):
        assert f"`{method}`" in docs, f"{method} is not in docs/lsp.md"
    for command in set(re.findall(r'"(maestro\.\w+)"', sources)) - {"maestro.xml"}:
        assert f"`{command}`" in docs, f"{command} is not a server command (docs/lsp.md)"
    assert '"maestro.runImpacted"' in sources
    assert "cacheStats(" in sources and "explain(" in sources
    # LSP4IJ ships LSP4J: the plugin must not bundle its own
    build = (ROOT / "build.gradle.kts").read_text()
    assert not re.search(r'(implementation|api|compileOnly)\("org\.eclipse\.lsp4j', build)


def test_gradle_build_uses_platform_plugin_2x_and_lsp4ij() -> None:
    build = (ROOT / "build.gradle.kts").read_text()
    m = re.search(r'id\("org\.jetbrains\.intellij\.platform"\) version "(\d+)\.', build)
    assert m and m.group(1) == "2", "IntelliJ Platform Gradle Plugin 2.x"
    assert "defaultRepositories()" in build
    assert 'plugin("com.redhat.devtools.lsp4ij"' in build
    assert 'bundledPlugin("PythonCore")' in build
    props = (ROOT / "gradle.properties").read_text()
    assert re.search(r"^lsp4ijVersion=\d+\.\d+\.\d+$", props, re.M)
    assert (ROOT / "settings.gradle.kts").exists()


def test_every_setting_reaches_the_launch_command_or_the_server() -> None:
    """No IntelliJ setting that does nothing: each field of MaestroSettings.Options is used by the
    server command line or the initialization options, and every option sent is one the server's
    settings model takes (a key it does not know would be ignored, silently)."""
    from pydantic.alias_generators import to_camel

    from maestro.server.settings import CodeLensSettings, Settings

    text = (KOTLIN / "dev" / "maestro" / "intellij" / "MaestroSettings.kt").read_text()
    options = re.search(r"data class Options\((.*?)\n    \)", text, re.S)
    assert options, "MaestroSettings.Options not found"
    fields = re.findall(r"^\s*var (\w+):", options.group(1), re.M)
    assert fields, "no settings fields found"
    rest = text[options.end() :]
    for field in fields:
        assert f"options.{field}" in rest, f"{field} reaches neither command() nor the server"
    sent = re.search(r"fun initializationOptions\(\).*?\n    \)\n", rest, re.S)
    assert sent, "initializationOptions() not found"
    nested = re.findall(r'"(\w+)" to mapOf\((.*?)\)', sent.group(0))
    known = {to_camel(name) for name in Settings.model_fields}
    lens_known = {to_camel(name) for name in CodeLensSettings.model_fields}
    for key, inner in nested:
        assert key == "codeLens", key
        assert set(re.findall(r'"(\w+)" to ', inner)) <= lens_known, inner
    top = set(re.findall(r'^\s+"(\w+)" to ', sent.group(0), re.M))
    assert top and top <= known, f"options the server does not know: {top - known}"
