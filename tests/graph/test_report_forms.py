"""`ImpactedReport.data` and `stats_data` are the reports' JSON forms built straight from the
graph (a hub answer skips building a model per row; a cold `graph stats` imports no pydantic);
they must stay exactly what the models themselves would send."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from maestro.graph.build import BuildGraph, Change
from maestro.graph.stats import stats_data
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
