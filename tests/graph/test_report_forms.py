"""`ImpactedReport.data` and `stats_data` are the reports' JSON forms built straight from the
graph (a hub answer skips building a model per row; a cold `graph stats` imports no pydantic);
they must stay exactly what the models themselves would send."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from maestro.cli.graph_render import stats_json
from maestro.graph.build import BuildGraph, Change
from maestro.graph.stats import STATS_SCHEMA, stats_data
from maestro.reports import GraphStatsReport, ImpactedReport

Make = Callable[[dict[str, str | bytes]], Path]


@pytest.mark.parametrize(("hops", "why"), [(None, True), (1, False), (0, True)])
def test_data_is_the_model_json_form(make_ws: Make, hops: int | None, why: bool) -> None:
    root = make_ws(
        {
            "pkg/__init__.py": "",
            "pkg/core.py": "",
            "pkg/api.py": "from pkg import core\n",
            "tests/test_api.py": "import pkg.api\n",
            "tests/test_core.py": "from pkg.core import *\n",
        }
    )
    graph = BuildGraph.build(root)
    changes = [Change("pkg/core.py")]
    impacts = graph.impacted(changes)
    assert len(impacts) == 2 and any(i.chain for i in impacts)
    data = ImpactedReport.data(str(root), changes, impacts, 1.25, hops=hops, etag="e", why=why)
    model = ImpactedReport.model_validate(data)
    assert model.model_dump(mode="json", by_alias=True) == data


@pytest.mark.parametrize("with_targets", [False, True])
def test_stats_data_is_the_model_json_form(make_ws: Make, with_targets: bool) -> None:
    root = make_ws(
        {
            "pkg/__init__.py": "",
            "pkg/core.py": "import yaml_not_installed\n",
            "pkg/bad.py": "def f(:\n",
            "tests/test_core.py": "import pkg.core\n",
        }
    )
    graph = BuildGraph.build(root)
    data = stats_data(graph, with_targets=with_targets, check_syntax=True)
    assert data["diagnostics"] and data["edges"]
    model = GraphStatsReport.model_validate(data)
    assert model.model_dump(mode="json", by_alias=True) == data
    built = GraphStatsReport.of_data(data)  # no validation: the same JSON
    assert built.model_dump_json(by_alias=True, indent=2) == model.model_dump_json(
        by_alias=True, indent=2
    )
    # `graph stats --json` writes it with the stdlib: the same characters
    assert stats_json(data) == model.model_dump_json(by_alias=True, indent=2)


@pytest.mark.parametrize("seconds", [0.0, 0.0001, 0.3264, 1.0, 12.5, 123456.7891])
def test_stats_json_is_what_the_model_writes(seconds: float) -> None:
    odd = "".join(chr(i) for i in range(0x250)) + '\u2028\ufeff\U0001f600 "q" \\ é'
    data = {
        "schema": STATS_SCHEMA,
        "root": f"/w/{odd}",
        "files": 1,
        "python_files": 1,
        "tests": 0,
        "declared_targets": 0,
        "edges": {"import": 3, "init": 1},
        "distributions": 0,
        "unresolved_imports": 0,
        "reused_from_index": 0,
        "scanned": 1,
        "build_seconds": seconds,
        "diagnostics": [{"path": odd, "line": 1, "severity": "error", "message": odd}],
        "syntax_unchecked": 0,
        "targets": [odd, "//x"],
    }
    model = GraphStatsReport.model_validate(data)
    expected = model.model_dump_json(by_alias=True, indent=2, exclude={"etag", "unchanged"})
    assert stats_json(data) == expected
    assert stats_json({**data, "edges": {}, "diagnostics": [], "targets": None}) == (
        GraphStatsReport.model_validate(
            {**data, "edges": {}, "diagnostics": [], "targets": None}
        ).model_dump_json(by_alias=True, indent=2)
    )
