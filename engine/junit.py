"""JUnit XML from action results, so cached and fresh results merge into one report.

pytest's own `--junitxml` describes one process; a `maestro test` run is part cache, part process,
so the report is rendered from the per-test outcomes instead, following pytest's conventions
(classname = dotted file path plus classes, name = function with parameters).
"""

from __future__ import annotations

import platform
import re
from collections.abc import Iterable, Iterator
from collections.abc import Set as AbstractSet
from datetime import UTC, datetime

from maestro import nodeids
from maestro.cache.action import ActionResult, TestOutcome

# The document is written as xml.etree.ElementTree writes it after ElementTree.indent (the same
# bytes: a test holds them to it), without building the element tree: a first run renders
# one document per test file and the whole run's with --junit-xml.
_INDENT = "  "
_DECLARATION = "<?xml version='1.0' encoding='utf-8'?>\n"
# The message of the error written for a teardown that failed after its test failed or was
# skipped: how pytest's message for it begins (the result keeps no text of that teardown).
TEARDOWN = "failed on teardown"


def _attr(text: str) -> str:
    """An attribute value escaped as ElementTree escapes it: as element text, and quotes and
    white space other than blanks."""
    return _replaced(_cdata(text), _ATTRIBUTE)


def _cdata(text: str) -> str:
    """Element text escaped as ElementTree escapes it, after what XML 1.0 forbids (a terminal's
    ESC, a lone surrogate) is written ``#x1B`` as pytest's --junitxml writes it."""
    return _replaced(_ILLEGAL.sub(_illegal, text), _TEXT)


# the characters XML 1.0 forbids (pytest's junitxml.bin_xml_escape)
_ILLEGAL = re.compile("[^\t\n\r\x20-\x7e\x80-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _illegal(found: re.Match[str]) -> str:
    code = ord(found.group())
    return f"#x{code:02X}" if code <= 0xFF else f"#x{code:04X}"


# in ElementTree's order ("&" first); each replaced only where present (most values hold none)
_TEXT = (("&", "&amp;"), ("<", "&lt;"), (">", "&gt;"))
_ATTRIBUTE = (('"', "&quot;"), ("\r", "&#13;"), ("\n", "&#10;"), ("\t", "&#09;"))


def _replaced(text: str, table: tuple[tuple[str, str], ...]) -> str:
    for old, new in table:
        if old in text:
            text = text.replace(old, new)
    return text


def _start(tag: str, attrs: Iterable[tuple[str, str]]) -> str:
    return "<" + tag + "".join(f' {k}="{_attr(v)}"' for k, v in attrs)


def _names(node_id: str) -> tuple[str, str]:
    names = nodeids.parts(node_id)
    module = names[0].removesuffix(".py").replace("/", ".")
    if len(names) == 1:  # a result of the file itself (a module-level skip, a collection error)
        return "", module
    return ".".join([module, *names[1:-1]]), names[-1]


def _case(
    out: list[str], test: TestOutcome, *, cached: bool, more: Iterable[TestOutcome] = ()
) -> None:
    """One ``<testcase>`` at the suite's depth, its closing line included; the outcome elements
    of ``more`` (reports pytest writes into the same case) follow the test's own."""
    classname, name = _names(test.node_id)
    attrs = [
        ("classname", classname),
        ("name", name),
        ("file", nodeids.parts(test.node_id)[0]),
        ("time", f"{test.duration_s:.3f}"),
    ]
    if test.line is not None:
        attrs.append(("line", str(test.line)))
    children: list[str] = []
    message = test.message or ""
    where = f"{test.path}:{test.line}: " if test.path and test.line else ""
    match test.outcome:
        case "failed" | "error" as kind:
            text = test.details or where + message  # pytest writes its whole report there
            tag = "failure" if kind == "failed" else "error"
            opened = _start(tag, [("message", message)])
            children.append(f"{opened}>{_cdata(text)}</{tag}>" if text else f"{opened} />")
        case "skipped" | "xfailed" as kind:
            typed = "pytest.xfail" if kind == "xfailed" else "pytest.skip"
            children.append(_start("skipped", [("type", typed), ("message", message)]) + " />")
            if kind == "skipped" and "error" in test.also:  # pytest adds it to the same case
                children.append(_start("error", [("message", TEARDOWN)]) + " />")
        case _:
            pass
    for other in more:  # errors or skips of the same file (see _cases)
        said = other.message or ""
        if other.outcome == "skipped":
            children.append(_start("skipped", [("type", "pytest.skip"), ("message", said)]) + " />")
            continue
        text = other.details or (
            (f"{other.path}:{other.line}: " if other.path and other.line else "") + said
        )
        opened = _start("error", [("message", said)])
        children.append(f"{opened}>{_cdata(text)}</error>" if text else f"{opened} />")
    props = []
    if cached:
        props.append(("maestro.cached", "true"))
    if test.flaky:
        props.append(("maestro.flaky", "true"))
    if props:
        inner = "\n" + _INDENT * 4
        held = inner.join(_start("property", [("name", k), ("value", v)]) + " />" for k, v in props)
        children.append(f"<properties>{inner}{held}\n{_INDENT * 3}</properties>")
    out.append("\n" + _INDENT * 2 + _start("testcase", attrs))
    if children:
        inner = "\n" + _INDENT * 3
        out.append(">" + inner + inner.join(children) + "\n" + _INDENT * 2 + "</testcase>")
    else:
        out.append(" />")
    if test.outcome == "failed" and "error" in test.also:
        # pytest closes the failed case and opens another for its teardown's error
        again = [(k, "0.000" if k == "time" else v) for k, v in attrs]
        error = _start("error", [("message", TEARDOWN)]) + " />"
        out.append(f"\n{_INDENT * 2}{_start('testcase', again)}>\n{_INDENT * 3}{error}")
        out.append(f"\n{_INDENT * 2}</testcase>")


def _teardown_errors(test: TestOutcome) -> int:
    """The teardown error written beside a failed or skipped test's own outcome (0 or 1)."""
    return int(test.outcome in ("failed", "skipped") and "error" in test.also)


def _subtest_reports(test: TestOutcome) -> dict[str, int]:
    """What pytest's JUnit file counts for a test's subtests and the reports they bring, beyond
    the test's own outcome: each subtest's report (a pass too, whatever pytest's verbosity),
    and the test's own call when a subtest decided its outcome. Without subtests, a test's
    ``also`` is a teardown's error (counted by `_teardown_errors`) or the passing call before
    it, which pytest's file does not count apart."""
    failed = test.also.count("failed")
    skipped = test.also.count("skipped") + test.also.count("xfailed")
    own = test.also.count("passed") if test.outcome != "error" or failed else 0
    return {
        "tests": test.subtests_passed + failed + skipped + own,
        "failures": failed,
        "skipped": skipped,
    }


def _each(tests: Iterable[TestOutcome]) -> Iterator[TestOutcome]:
    """One outcome per test as pytest writes them: a node id several tests share is one
    testcase for each of them. The node's passed subtests, kept as one sum, go with the first."""
    for test in tests:
        if not test.each:
            yield test
            continue
        for i, one in enumerate(test.each):
            yield test.model_copy(
                update={
                    "outcome": one.outcome,
                    "duration_s": one.duration_s,
                    "path": one.path,
                    "line": one.line,
                    "message": one.message,
                    "also": one.also,
                    "subtests_passed": 0 if i else test.subtests_passed,
                    "each": [],
                }
            )


def _cases(tests: Iterable[TestOutcome]) -> Iterator[tuple[TestOutcome, list[TestOutcome]]]:
    """Each testcase to write: a test, and the reports pytest adds to its case. A file's own
    node (its collection) that failed more than once (a module collected as tests and as
    doctests) is one case holding each error, or each skip, as pytest's collect reports share
    one case."""
    held: tuple[TestOutcome, list[TestOutcome]] | None = None
    for one in _each(tests):
        if (
            held is not None
            and "::" not in one.node_id
            and one.node_id == held[0].node_id
            and one.outcome == held[0].outcome
            and one.outcome in ("error", "skipped")
        ):
            held[1].append(one)
            continue
        if held is not None:
            yield held
        held = (one, [])
    if held is not None:
        yield held


def render(
    results: Iterable[tuple[ActionResult, bool | AbstractSet[str]]],
    *,
    name: str = "pytest",
    skipped_files: Iterable[tuple[str, str]] = (),
) -> bytes:
    """One `<testsuites>` document for (result, served from the cache) pairs, served being
    True, False or the node ids served of a file run in part; `skipped_files`
    (test file or node id, why) are what predictive mode did not run, one skipped testcase each."""
    cases: list[str] = []
    counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    total = 0.0
    for target, why in skipped_files:
        classname, case_name = _names(target)
        attrs = [("classname", classname), ("name", case_name), ("file", target)]
        skipped = _start("skipped", [("type", "maestro.predictive"), ("message", why)])
        cases.append(
            "\n" + _INDENT * 2 + _start("testcase", [*attrs, ("time", "0.000")]) + ">"
            f"\n{_INDENT * 3}{skipped} />\n{_INDENT * 2}</testcase>"
        )
        counts["tests"] += 1
        counts["skipped"] += 1
    for result, served in results:
        for test, more in _cases(result.tests):
            cached = served if isinstance(served, bool) else test.node_id in served
            _case(cases, test, cached=cached, more=more)
            counts["tests"] += len(more)
            counts["skipped" if test.outcome == "skipped" else "errors"] += len(more)
            total += sum(other.duration_s for other in more)
            teardown = _teardown_errors(test)
            counts["tests"] += 1 + (teardown if test.outcome == "failed" else 0)
            counts["errors"] += teardown
            total += test.duration_s
            if test.outcome == "failed":
                counts["failures"] += 1
            elif test.outcome == "error":
                counts["errors"] += 1
            elif test.outcome in ("skipped", "xfailed"):
                counts["skipped"] += 1
            for key, n in _subtest_reports(test).items():
                counts[key] += n
    timestamp, hostname = _stamp()
    suite = _start(
        "testsuite",
        [
            ("name", name),
            *((key, str(value)) for key, value in counts.items()),
            ("time", f"{total:.3f}"),
            ("timestamp", timestamp),
            ("hostname", hostname),
        ],
    )
    body = f"{suite}>{''.join(cases)}\n{_INDENT}</testsuite>" if cases else f"{suite} />"
    document = f"{_DECLARATION}<testsuites>\n{_INDENT}{body}\n</testsuites>"
    # as ElementTree encodes: what UTF-8 cannot hold (a lone surrogate) as a character reference
    return document.encode("utf-8", "xmlcharrefreplace")


def _stamp() -> tuple[str, str]:
    """The suite's timestamp and hostname."""
    return datetime.now(UTC).isoformat(timespec="seconds"), platform.node()
