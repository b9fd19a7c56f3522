"""`ImpactedReport.data` is the report's JSON form built straight from the graph (a hub answer
skips building a model per row); it must stay exactly what the model itself would send."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from maestro.graph.build import BuildGraph, Change
from maestro.reports import ImpactedReport

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
