"""The editor protocol is one module (server/methods.py): the clients' types and docs/lsp.md are
generated from it, the server validates params against it and answers in its shapes."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any, get_type_hints

import pytest
from pydantic import TypeAdapter, ValidationError

from maestro.server import codegen, methods

ROOT = Path(__file__).resolve().parents[2]


def test_generated_files_match_methods() -> None:
    """Fails when methods.py changed and `python -m maestro.server.codegen` was not run (or a
    generated file was edited by hand)."""
    stale = codegen.drifted(ROOT)
    assert not stale, f"regenerate with `python -m maestro.server.codegen`: {stale}"


def test_check_names_a_hand_edited_file(tmp_path: Path) -> None:
    for rel in (codegen.TS_FILE, codegen.KOTLIN_FILE, codegen.DOCS_FILE):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / rel, tmp_path / rel)
    said: list[str] = []
    assert codegen.main(["--root", str(tmp_path), "--check"], write=said.append) == 0
    ts = tmp_path / codegen.TS_FILE
    ts.write_text(ts.read_text().replace("hitRate", "hit_rate"))
    assert codegen.main(["--root", str(tmp_path), "--check"], write=said.append) == 1
    assert said == [f"{ts}: {codegen.DRIFT}"]
    assert codegen.main(["--root", str(tmp_path)], write=said.append) == 0
    assert codegen.drifted(tmp_path) == []


def test_every_shape_is_camel_case_on_the_wire() -> None:
    """One spelling for the editor: the daemon's cache counters too (they were snake_case)."""
    defs = codegen.Definitions.collect()
    daemon_models = {
        "StatusResult",
        "RemoteStatus",
        "TelemetryUploadStatus",
        "TeamModelStatus",
        "SpeculationStatus",
        "WhyReport",
    }
    for name, schema in defs.schemas.items():
        if name in daemon_models:  # the daemon's own status and why report, as it sends them
            continue
        for key in schema.get("properties", {}):
            assert "_" not in key, f"{name}.{key} is not camelCase"


def test_ts_row_changed_is_the_changed_path() -> None:
    """protocol.ts once declared `changed?: boolean` where the server sends a path."""
    ts = (ROOT / codegen.TS_FILE).read_text()
    row = ts[ts.index("export interface ImpactedRow {") :]
    row = row[: row.index("}")]
    assert "  changed: string;" in row


def test_params_validate_camel_case_and_ignore_unknown_keys() -> None:
    p = methods.ImpactedTargetsParams.model_validate(
        {"textDocument": {"uri": "file:///ws/a.py"}, "cacheState": "refresh", "later": 1}
    )
    assert p.cache_state == "refresh" and p.documents() == ["file:///ws/a.py"]
    with pytest.raises(ValidationError):
        methods.ImpactedTargetsParams.model_validate({"cacheState": "sometimes"})


def test_invalid_params_error_names_the_field() -> None:
    try:
        methods.ExplorerRunParams.model_validate({"include": "tests/test_a.py"})
    except ValidationError as exc:
        error = methods.InvalidParams("maestro/testExplorer/run", exc)
    assert error.code == -32602
    assert error.message.startswith("maestro/testExplorer/run: invalid params: include:")
    assert "docs/lsp.md" in error.data["hint"]


@pytest.mark.parametrize("spec", methods.REQUESTS, ids=lambda s: s.method)
def test_every_request_result_is_a_documented_type(spec: methods.Request[Any, Any]) -> None:
    docs = (ROOT / codegen.DOCS_FILE).read_text()
    assert f"`{spec.method}`" in docs and f"**`{spec.result.__name__}`**" in docs
    TypeAdapter(spec.result).json_schema(mode="serialization")  # a type pydantic can describe
    get_type_hints(spec.params)


def test_kotlin_subclasses_extend_their_base_instead_of_restating_it() -> None:
    """A Kotlin data class cannot be extended: the protocol base is an open class and the
    subclass declares only its own properties (Gson fills the inherited ones)."""
    kotlin = (ROOT / codegen.KOTLIN_FILE).read_text()
    for base, sub, own in (
        ("RunSummary", "RunResult", "files"),
        ("WorkspaceParams", "ExplainParams", "target"),
    ):
        assert f"open class {base}(" in kotlin
        declared = kotlin.split(f"data class {sub}(\n")[1].split("\n)")[0]
        assert f"val {own}:" in declared and "val root:" not in declared, declared
        assert f"data class {sub}(\n{declared}\n) : {base}()" in kotlin


def test_a_base_sent_only_through_its_subclasses_is_generated_once() -> None:
    """RunRef is never a message of its own; the run messages extend it in every client instead
    of each restating the run's id, root, kind and label."""
    kotlin = (ROOT / codegen.KOTLIN_FILE).read_text()
    ts = (ROOT / codegen.TS_FILE).read_text()
    assert "open class RunRef(" in kotlin
    for sub, own in (("RunStatus", "done"), ("RunAccepted", "superseded")):
        declared = kotlin.split(f"data class {sub}(\n")[1].split("\n) : ")[0]
        assert f"val {own}:" in declared and "val runId:" not in declared, declared
        assert f"export interface {sub} extends RunRef {{" in ts
    summary = kotlin.split("open class RunSummary(\n")[1].split("\n)")[0]
    assert "val runId:" not in summary
    assert "open class RunSummary(\n" + summary + "\n) : RunRef()" in kotlin


def _documented(value: Any) -> str:
    """A default as docs/lsp.md writes it (JSON)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    return f"{value:g}" if isinstance(value, float) else str(value)


def test_the_initialization_options_table_is_the_settings_model() -> None:
    """docs/lsp.md "Initialization options" lists every key the server takes, with its default,
    and no key it does not take: editors' settings are written from that table."""
    from pydantic.alias_generators import to_camel

    from maestro.server.settings import CodeLensSettings, Settings

    docs = (ROOT / codegen.DOCS_FILE).read_text()
    section = docs.split("\n## Initialization options\n", 1)[1].split("\n## ", 1)[0]
    table = dict(re.findall(r"^\| `([\w.]+)` \| .+? \| (\S+) \| ", section, re.M))
    expected: dict[str, str] = {}
    for name, field in Settings.model_fields.items():
        if name == "code_lens":
            for sub, inner in CodeLensSettings.model_fields.items():
                expected[f"codeLens.{to_camel(sub)}"] = _documented(inner.default)
        else:
            expected[to_camel(name)] = _documented(field.default)
    assert table == expected
