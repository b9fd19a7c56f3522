"""JUnit XML from action results, so cached and fresh results merge into one report.

pytest's own `--junitxml` describes one process; a `maestro test` run is part cache, part process,
so the report is rendered from the per-test outcomes instead, following pytest's conventions
(classname = dotted file path plus classes, name = function with parameters).
"""

from __future__ import annotations

import platform
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from datetime import UTC, datetime

from maestro import nodeids
from maestro.cache.action import ActionResult, TestOutcome


def _names(node_id: str) -> tuple[str, str]:
    names = nodeids.parts(node_id)
    module = names[0].removesuffix(".py").replace("/", ".")
    if len(names) == 1:  # a result of the file itself (a module-level skip, a collection error)
        return "", module
    return ".".join([module, *names[1:-1]]), names[-1]


def _case(suite: ET.Element, test: TestOutcome, *, cached: bool) -> None:
    classname, name = _names(test.node_id)
    case = ET.SubElement(
        suite,
        "testcase",
        classname=classname,
        name=name,
        file=nodeids.parts(test.node_id)[0],
        time=f"{test.duration_s:.3f}",
    )
    if test.line is not None:
        case.set("line", str(test.line))
    message = test.message or ""
    where = f"{test.path}:{test.line}: " if test.path and test.line else ""
    match test.outcome:
        case "failed":
            ET.SubElement(case, "failure", message=message).text = where + message
        case "error":
            ET.SubElement(case, "error", message=message).text = where + message
        case "skipped" | "xfailed":
            ET.SubElement(case, "skipped", type="pytest.skip", message=message)
        case _:
            pass
    props = []
    if cached:
        props.append(("maestro.cached", "true"))
    if test.flaky:
        props.append(("maestro.flaky", "true"))
    if props:
        holder = ET.SubElement(case, "properties")
        for key, value in props:
            ET.SubElement(holder, "property", name=key, value=value)


def render(
    results: Iterable[tuple[ActionResult, bool]],
    *,
    name: str = "pytest",
    skipped_files: Iterable[tuple[str, str]] = (),
) -> bytes:
    """One `<testsuites>` document for (result, served_from_cache) pairs; `skipped_files`
    (test file or node id, why) are what predictive mode did not run, one skipped testcase each."""
    root = ET.Element("testsuites")
    suite = ET.SubElement(root, "testsuite", name=name)
    counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    total = 0.0
    for target, why in skipped_files:
        classname, case_name = _names(target)
        case = ET.SubElement(
            suite, "testcase", classname=classname, name=case_name, file=target, time="0.000"
        )
        ET.SubElement(case, "skipped", type="maestro.predictive", message=why)
        counts["tests"] += 1
        counts["skipped"] += 1
    for result, cached in results:
        for test in result.tests:
            _case(suite, test, cached=cached)
            counts["tests"] += 1
            total += test.duration_s
            if test.outcome == "failed":
                counts["failures"] += 1
            elif test.outcome == "error":
                counts["errors"] += 1
            elif test.outcome in ("skipped", "xfailed"):
                counts["skipped"] += 1
    for key, value in counts.items():
        suite.set(key, str(value))
    suite.set("time", f"{total:.3f}")
    suite.set("timestamp", datetime.now(UTC).isoformat(timespec="seconds"))
    suite.set("hostname", platform.node())
    ET.indent(root)
    data: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return data
