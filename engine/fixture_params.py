"""Node-level selection after a change to only the ``params`` of pytest fixtures.

A fixture's params decide which nodes the tests using it (directly or through fixtures that
request it) have: one per element, named by the element's id. Each stored node records the
element it got (`TestOutcome.params`, from the plugin). After an edit of the list, a node whose
element is the same value under the same id at the same index is served; a node whose element
changed or is gone re-runs or disappears; a new element's node is new. Since the new nodes'
ids are not known before pytest collects them, each test function using the fixture is named
to pytest whole and its served nodes are deselected (`regroup`).

Anything that cannot be judged per node (a node without a record, a test parametrizing the
name itself, a fixture run at import or collection time, other changes to the same file) keeps
the whole file.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from maestro.cache.action import ActionResult
    from maestro.graph.fingerprints import FileFingerprints, FingerprintDiff


@dataclass
class ParamChange:
    """What a params change means for one test file's previous result: node id -> why it
    re-runs (its element changed, is gone or cannot be compared; or it did not pass), and
    the test functions (node ids without their ``[...]``) whose nodes change -> why."""

    reasons: dict[str, str] = field(default_factory=dict)
    functions: dict[str, str] = field(default_factory=dict)


def function_of(node_id: str) -> str:
    """``t.py::C::test_f[1-a]`` -> ``t.py::C::test_f``: what pytest takes for all its nodes."""
    head, sep, last = node_id.rpartition("::")
    return f"{head}{sep}{last.partition('[')[0]}"


def param_changes(
    previous: ActionResult,
    path: str,
    before: FileFingerprints,
    after: FileFingerprints,
    delta: FingerprintDiff,
    where: str,
) -> ParamChange | None:
    """The nodes of `previous` that the change of `delta.fixtures` (fixture functions of
    `path` whose params changed, nothing else of the module) re-runs, or None when it
    cannot be told per node. `where` names the fixture for the reasons."""
    if not delta.fixtures or delta.added or delta.deleted:
        return None
    for name in delta.changed:  # a fixture's own fingerprint holds its decorator
        old = before.fixture_defs.get(name)
        if name not in delta.fixtures or old is None or old != after.fixture_defs.get(name):
            return None  # its code changed too
    trace = previous.trace
    if trace is None:
        return None
    keys = {f"{path}::{name}": name for name in delta.fixtures}
    ran_early = {trace.functions[i] for i in trace.import_time if 0 <= i < len(trace.functions)}
    if ran_early & keys.keys():
        return None  # its value was used outside any test (a collection hook's)
    found = ParamChange()
    for test in previous.tests:
        if test.params is None or any(k.startswith("?::") for k in test.params):
            return None
        for key, name in keys.items():
            index = test.params.get(key)
            if index is None:
                continue  # the node does not use the fixture: its id and value are the same
            if index < 0:
                return None
            found.functions.setdefault(
                function_of(test.node_id), f"uses the fixture whose params changed ({where})"
            )
            why = _element_change(
                before.fixture_params.get(name), after.fixture_params.get(name), index
            )
            if why is not None:
                found.reasons.setdefault(test.node_id, f"{why} ({where})")
        if test.outcome != "passed" and test.node_id not in found.reasons:
            found.reasons[test.node_id] = f"did not pass last time, and params changed ({where})"
    return found


def _element_change(
    old: tuple[str, ...] | None, new: tuple[str, ...] | None, index: int
) -> str | None:
    """Why the node that got element `index` of a fixture's params changes: None when the
    element is the same value under the same id in both versions."""
    if old is None or new is None or index >= len(old):
        return "got a fixture parameter whose value and id cannot be compared"
    if index >= len(new):
        return "got a fixture parameter that was removed"
    if old[index] != new[index]:
        return "got a fixture parameter whose value or id changed"
    return None


def regroup(
    result: ActionResult, reasons: Mapping[str, str], functions: Collection[str]
) -> tuple[tuple[str, ...], tuple[str, ...], ActionResult]:
    """(what pytest is given, the node ids it deselects, the previous result reduced to the
    nodes it serves) for a file whose `functions` have nodes that change: each is given
    whole (new elements' nodes run) but for its nodes without a reason, which are served;
    its other nodes leave the result (re-run under their new id, or gone). The other nodes
    with a reason are given by their id."""
    whole = set(functions)
    given = sorted(whole) + [n for n in reasons if function_of(n) not in whole]
    served = tuple(
        t.node_id
        for t in result.tests
        if function_of(t.node_id) in whole and t.node_id not in reasons
    )
    kept = [t for t in result.tests if function_of(t.node_id) not in whole or t.node_id in served]
    return tuple(given), served, result.model_copy(update={"tests": kept})
