"""The JUnit document is the bytes xml.etree.ElementTree writes for the same report.

engine/junit.py writes the XML itself (the element tree cost a first run more than the rest of
storing its results); `_reference` below is how it was built with ElementTree, and any report,
escaping included, must come out byte for byte the same. Characters XML 1.0 forbids (a
terminal's ESC, NUL, a lone surrogate), which ElementTree writes as they are, are first written
``#x1B`` as pytest's --junitxml writes them, so that every document parses.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from datetime import UTC, datetime

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from maestro import nodeids
from maestro.cache.action import ActionResult, Provenance, TestOutcome, TestRun, Timing
from maestro.engine import junit
from maestro.redaction import Redacted

STAMP = ("2026-12-05T07:00:00+00:00", "host<&\">'\n\r\t")


def _legal(text: str) -> str:
    """pytest's junitxml.bin_xml_escape: what XML 1.0 forbids, as ``#x1B``."""
    illegal = "[^\t\n\r\x20-\x7e\x80-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]"
    return re.sub(illegal, lambda m: f"#x{ord(m.group()):02X}", text)


def _reference(
    results: Iterable[tuple[ActionResult, bool]],
    *,
    name: str = "pytest",
    skipped_files: Iterable[tuple[str, str]] = (),
) -> bytes:
    def names(node_id: str) -> tuple[str, str]:
        parts = [_legal(p) for p in nodeids.parts(node_id)]
        module = parts[0].removesuffix(".py").replace("/", ".")
        if len(parts) == 1:
            return "", module
        return ".".join([module, *parts[1:-1]]), parts[-1]

    root = ET.Element("testsuites")
    suite = ET.SubElement(root, "testsuite", name=_legal(name))
    counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    total = 0.0
    for target, why in skipped_files:
        classname, case_name = names(target)
        case = ET.SubElement(
            suite,
            "testcase",
            classname=classname,
            name=case_name,
            file=_legal(target),
            time="0.000",
        )
        ET.SubElement(case, "skipped", type="maestro.predictive", message=_legal(why))
        counts["tests"] += 1
        counts["skipped"] += 1
    for result, cached in results:
        last: tuple[ET.Element, TestOutcome] | None = None
        for test in result.tests:
            if (
                last is not None
                and "::" not in test.node_id
                and test.node_id == last[1].node_id
                and test.outcome == last[1].outcome
                and test.outcome in ("error", "skipped")
            ):  # a file collected twice (tests, doctests) that failed or skipped twice: one case
                message = _legal(test.message or "")
                where = _legal(f"{test.path}:{test.line}: ") if test.path and test.line else ""
                if test.outcome == "error":
                    again = ET.Element("error", message=message)
                    again.text = where + message
                    counts["errors"] += 1
                else:
                    again = ET.Element("skipped", type="pytest.skip", message=message)
                    counts["skipped"] += 1
                held = last[0].find("properties")
                last[0].insert(len(last[0]) - (held is not None), again)
                counts["tests"] += 1
                total += test.duration_s
                continue
            classname, case_name = names(test.node_id)
            case = ET.SubElement(
                suite, "testcase", classname=classname, name=case_name,
                file=_legal(nodeids.parts(test.node_id)[0]), time=f"{test.duration_s:.3f}",
            )  # fmt: skip
            if test.line is not None:
                case.set("line", str(test.line))
            message = _legal(test.message or "")
            where = _legal(f"{test.path}:{test.line}: ") if test.path and test.line else ""
            counts["tests"] += 1
            total += test.duration_s
            if test.outcome == "failed":
                ET.SubElement(case, "failure", message=message).text = where + message
                counts["failures"] += 1
            elif test.outcome == "error":
                ET.SubElement(case, "error", message=message).text = where + message
                counts["errors"] += 1
            elif test.outcome in ("skipped", "xfailed"):
                kind = "pytest.xfail" if test.outcome == "xfailed" else "pytest.skip"
                ET.SubElement(case, "skipped", type=kind, message=message)
                counts["skipped"] += 1
            last = (case, test)
            props = [("maestro.cached", "true")] if cached else []
            props += [("maestro.flaky", "true")] if test.flaky else []
            if props:
                holder = ET.SubElement(case, "properties")
                for key, value in props:
                    ET.SubElement(holder, "property", name=key, value=value)
    for key, value in counts.items():
        suite.set(key, str(value))
    suite.set("time", f"{total:.3f}")
    suite.set("timestamp", STAMP[0])
    suite.set("hostname", _legal(STAMP[1]))
    ET.indent(root)
    data: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return data


def _result(*tests: TestOutcome) -> ActionResult:
    at = datetime(2026, 12, 5, tzinfo=UTC)
    return ActionResult(
        exit_code=0,
        tests=list(tests),
        timing=Timing(started_at=at, wall_s=0, cpu_s=0),
        provenance=Provenance.current(),
    )


@pytest.fixture(autouse=True)
def _fixed_stamp(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(junit, "_stamp", lambda: STAMP)


ODD = "a&b<c>d\"e'f\r\n\tg\x1b\x00h é \udc80 💥 ]]> &amp; "


def test_every_shape_of_report_is_written_as_elementtree_writes_it() -> None:
    """Each outcome, with and without a location and a message, cached and flaky, a
    parametrized id, a class, a file-level result, predictive skips, text to escape (quotes,
    newlines, tabs, markup, a lone surrogate, control characters), and an empty report."""
    tests = [
        TestOutcome(node_id="tests/test_a.py::test_ok", outcome="passed", duration_s=0.0004),
        TestOutcome(
            node_id="tests/test_a.py::TestK::test_fail[x::y-<1>]",
            outcome="failed",
            duration_s=1.23456,
            path="src/m.py",
            line=12,
            message=Redacted(f"assert 1 == 2 {ODD}"),
            flaky=True,
        ),
        TestOutcome(node_id="t.py::test_err", outcome="error", message=Redacted("boom")),
        TestOutcome(node_id="t.py::test_err_empty", outcome="error"),
        TestOutcome(node_id="t.py::test_fail_blank", outcome="failed", message=Redacted("  ")),
        TestOutcome(node_id="t.py::test_skip", outcome="skipped", message=Redacted(ODD), line=3),
        TestOutcome(node_id="t.py::test_xf", outcome="xfailed", path="t.py", line=0),
        TestOutcome(node_id="t.py::test_xp", outcome="xpassed", flaky=True),
        TestOutcome(node_id="pkg/t.py", outcome="skipped", message=Redacted("module skip")),
    ]
    runs = [(_result(*tests[:4]), False), (_result(*tests[4:]), True), (_result(), False)]
    skipped = [("tests/test_z.py", f"p=0.01 {ODD}"), ("t.py::test_q[1]", "")]
    for kwargs in ({}, {"name": f"tests/{ODD}.py"}, {"skipped_files": skipped}):
        assert junit.render(runs, **kwargs) == _reference(runs, **kwargs)  # type: ignore[arg-type]
    assert junit.render([]) == _reference([])
    assert junit.render([(_result(), True)], skipped_files=skipped) == _reference(
        [(_result(), True)], skipped_files=skipped
    )


_text = st.text(st.characters(codec="utf-8") | st.sampled_from(list("&<>\"'\r\n\t\x00:[]/")))
_outcomes = st.builds(
    TestOutcome,
    node_id=_text,
    outcome=st.sampled_from(["passed", "failed", "skipped", "error", "xfailed", "xpassed"]),
    duration_s=st.floats(0, 1e6, allow_nan=False),
    path=st.none() | _text,
    line=st.none() | st.integers(0, 10**6),
    message=st.none() | _text.map(Redacted),
    flaky=st.booleans(),
)


_TWICE_SKIPPED = [TestOutcome(node_id="", outcome="skipped") for _ in range(2)]


@settings(max_examples=150, deadline=None)
@example([(_TWICE_SKIPPED, False)], [], "")  # one case holding both skips, as pytest writes it
@given(
    st.lists(st.tuples(st.lists(_outcomes, max_size=4), st.booleans()), max_size=3),
    st.lists(st.tuples(_text, _text), max_size=2),
    _text,
)
def test_any_report_is_written_as_elementtree_writes_it(
    runs: list[tuple[list[TestOutcome], bool]], skipped: list[tuple[str, str]], name: str
) -> None:
    results = [(_result(*tests), cached) for tests, cached in runs]
    document = junit.render(results, name=name, skipped_files=skipped)
    assert document == _reference(results, name=name, skipped_files=skipped)
    ET.fromstring(document)  # any report parses


def test_a_file_that_failed_to_collect_twice_is_one_case_holding_both_errors() -> None:
    """--doctest-modules collects a test module twice under the file's node id: when both
    fail, pytest writes one testcase with two errors (and counts two)."""
    twice = [
        TestOutcome(node_id="tests/test_x.py", outcome="error", message=Redacted(f"boom {i}"))
        for i in range(2)
    ]
    results = [(_result(*twice, TestOutcome(node_id="tests/test_y.py::t", outcome="passed")), True)]
    written = junit.render(results)
    assert written == _reference(results)
    assert written.count(b"<testcase") == 2
    assert b'errors="2"' in written and b'tests="3"' in written


def test_passed_subtests_of_a_node_id_run_twice_are_counted_once() -> None:
    """Two tests under one node id keep their passed subtests as one sum: the suite counts it
    once, as pytest counts each subtest's report once (not once per test of the node id)."""
    node = TestOutcome(
        node_id="tests/test_x.py::t",
        outcome="passed",
        also=["passed"],
        subtests_passed=3,
        each=[TestRun(outcome="passed"), TestRun(outcome="passed")],
    )
    written = junit.render([(_result(node), False)])
    assert written.count(b"<testcase") == 2
    assert b'tests="5"' in written, written
