"""The policy engine: compile a policy set once, answer decisions from it, swap it atomically.

Composition (docs/policy.md): every layer's rules are evaluated, none can see or redefine
another's (each owns its package root, sources.check_roots), and a generated module per decision
point unions what they fired. The result is the most restrictive: any enforced ``deny`` denies,
else any ``queue`` queues, else allow. So a team deny stands whatever a workspace allows; a
layer listed in ``shadow`` is recorded but not enforced.

A set that does not compile never replaces the one in force (``last good``); an evaluation
error applies the decision point's fail mode (:func:`fail_closed`).

A decision is a pure function of (policy set, input) unless a module calls a builtin that is
not (the clock, randomness, the network: :data:`IMPURE`), so each set remembers its recent
decisions by input: a repeated input costs a dictionary lookup instead of a Rego evaluation.
When no module reads ``input.execution_id`` (or the input as a whole), the execution id is left
out of the input Rego sees and of the memo's key, so the next run's identical decisions (the
same test file served from the cache, the same change selected) are remembered too. The clock
is handled the same way: a rule says when to retry as an instant (``retry_at_ms``) that is
turned into ``retry_after_ms`` after the memo, so when no module reads ``input.now_ms`` it is
left out too (and an open window's ``next_open_ms``, which is "now", when only the built-in
rules read that field: they read it of closed windows only).
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from maestro.errors import PolicyError, PolicyEvalError
from maestro.lru import LruCache
from maestro.policy.isolate import ChildCompiler
from maestro.policy.model import POINTS, Decision, FiredRule, Point, PolicyInput, Result
from maestro.policy.rego import Compiled, answer
from maestro.policy.sources import (
    LAYERS,
    Annotation,
    Module,
    PolicySources,
    builtin_defaults,
    check_roots,
    load,
    read_annotations,
)
from maestro.policy.targets import Test, answers, plain, target_tests

log = logging.getLogger(__name__)

KINDS = ("deny", "queue", "include", "keep", "quarantine", "warn")
ERROR_RULE = "policy.error"
CHECKED_FILE = "checked.json"
"""In ``memo_dir``: the digests of policy sets a child compiled (policy/isolate.py)."""
MEMO_SIZE = 16384
"""Decisions a policy set remembers (by input, least recently used out). A plan asks one
``serve`` decision per test file it serves from the cache: sized for suites of thousands."""
IMPURE = re.compile(
    r"\b(?:time\.now_ns|rand\.intn|uuid\.rfc4122|http\.send|net\.lookup_ip_addr|opa\.runtime)\b"
)
"""Builtins whose answer is not a function of the input: a set calling one is not memoized."""
_READS_EXECUTION = re.compile(r"\bexecution_id\b|\binput\b(?!\.)")
"""A module naming the execution id, or using ``input`` other than as ``input.FIELD``."""
_READS_CLOCK = re.compile(r"\bnow_ms\b|\binput\b(?!\.)")
_READS_OPENINGS = re.compile(r"\bnext_open_ms\b|\binput\b(?!\.)")
_READS_TARGET = re.compile(r"\btarget\b|\binput\b(?!\.)")
"""A module naming ``target`` (as a field or a key of what it fires) or using the input whole."""
SERVES_KEPT = MEMO_SIZE
"""Served files whose ``serve`` input an engine keeps to decide again on the next set."""
WARM_CHUNK = 64
ANSWERS_KEPT = 1024
"""Distinct answer texts a set keeps read (an answer naming its target is one per file)."""
"""Serve decisions a warm-up evaluates between checks that its set is still in force."""


def fail_closed(inp: PolicyInput) -> bool:
    """Whether an evaluation error denies (uploads to the team cache, plugin loads) or allows
    with a warning (local runs, selection, local cache, coordinator admission)."""
    if inp.point == "plugin":
        return True
    return inp.point == "cache" and getattr(inp, "action", "") == "upload"


UNMARKED = "cache_unmarked"
"""The cache point without the built-in layer's rules: what a ``serve`` decision of a file
carrying no marker asks when a workspace or team module has cache rules. The built-in cache
rules fire for a marker or an upload only (a test compares both entry points), and they cost a
third of such a decision in rego-cpp; a plan asks one per served file."""


def _compose(
    point: str, present: set[tuple[str, str, str]], *, package: str = "",
    layers: Sequence[str] = LAYERS,
) -> str:  # fmt: skip
    """The point's decision module: what each layer's rules of each kind fired, as one rule
    per (layer, kind) named ``<layer>_<kind>`` (the layer is read from the name, which costs
    rego-cpp less than tagging every element with it). Only kinds a layer's modules define
    are composed (each undefined reference costs every decision a lookup)."""
    lines = [f"package decision.{package or point}", "", "import rego.v1", ""]
    for layer in layers:
        for kind in KINDS:
            if (layer, point, kind) in present:
                lines.append(f"{layer}_{kind} := data.maestro.{layer}.{point}.{kind}")
    return "\n".join(lines) + "\n"


# a line that may start a rule of that kind (over-matching only composes an empty set)
_KIND_HEAD = {k: re.compile(rf"^\s*(?:default\s+)?{k}\b", re.MULTILINE) for k in KINDS}


def _defines(module: Module) -> set[tuple[str, str, str]]:
    parts = module.package.split(".")
    if len(parts) < 3 or parts[2] not in POINTS:
        return set()
    return {
        (module.layer, parts[2], k) for k, head in _KIND_HEAD.items() if head.search(module.text)
    }


_PACKAGE_OF = re.compile(r"^\s*package\s+([A-Za-z_][\w.]*)", re.MULTILINE)
_DATA_REF = re.compile(r"\bdata\b((?:\s*\.\s*[A-Za-z_]\w*)*)")


def _other_point(package: str) -> bool:
    """A package of another decision point than ``cache`` (``maestro.<layer>.run...``, the
    composed ``decision.run``): what a ``serve`` decision cannot reach unless named."""
    parts = package.split(".")
    if parts[:1] == ["decision"]:
        return len(parts) > 1 and parts[1] in POINTS and parts[1] != "cache"
    return (
        parts[:1] == ["maestro"] and len(parts) > 2 and parts[2] in POINTS and parts[2] != "cache"
    )


def serve_digest(
    modules: Mapping[str, str], data: Any, shadow: Sequence[str], notes: Mapping[str, Annotation],
    flags: Sequence[bool],
) -> str:  # fmt: skip
    """What a set's ``serve`` decisions are a function of: its modules but other points' own
    (``maestro.<layer>.run``...), unless a remaining module refers to data in a way that may
    reach them (``data.maestro.workspace.run.x``, ``data.maestro``, ``data[...]``, ``data``
    whole: then every module counts), its data, shadow layers, the annotations' titles and
    remediations, and the flags that shape an input and its memo key. Two sets with the same
    serve digest decide every ``serve`` input alike (but for the ``policy`` digest they
    stamp), so a set after an edit of run rules keeps the previous set's serve decisions."""
    kept = {n: t for n, t in modules.items() if not _other_point(_package(t))}
    if any(_may_reach_other_points(t) for t in kept.values()):
        kept = dict(modules)
    h = hashlib.sha256()
    for name in sorted(kept):
        h.update(name.encode() + b"\0" + kept[name].encode() + b"\0")
    h.update(orjson.dumps(data, option=orjson.OPT_SORT_KEYS))
    h.update(repr(sorted(shadow)).encode())
    h.update(repr(sorted((r, a.title, a.remediation) for r, a in notes.items())).encode())
    h.update(repr(list(flags)).encode())
    return h.hexdigest()[:16]


def _may_reach_other_points(text: str) -> bool:
    """Whether a module refers to data that may be another point's package: one named
    (``data.maestro.workspace.run``), or a ref too short to tell (``data.maestro[x]``,
    ``data``). Text in comments and strings counts too (only ever more modules kept)."""
    for found in _DATA_REF.finditer(text):
        path = [part.strip() for part in found.group(1).split(".")[1:]]
        if not path:
            return True
        if path[0] not in ("maestro", "decision"):
            continue  # data.config...
        depth = 3 if path[0] == "maestro" else 2
        if len(path) < depth or _other_point(".".join(path[:depth])):
            return True
    return False


def _package(text: str) -> str:
    found = _PACKAGE_OF.search(text)
    return found.group(1) if found else ""


def merge_settings(layers: list[Any]) -> dict[str, Any]:
    """The layers' settings as the built-in rules read them: lists unioned, tables of tables
    as entries carrying their ``name`` (every layer's), flags true when any layer sets them."""
    merged: dict[str, Any] = {}
    for layer in layers:
        for key, value in layer.items() if isinstance(layer, dict) else []:
            if isinstance(value, list):
                have = merged.setdefault(key, [])
                have.extend(v for v in value if v not in have)
            elif isinstance(value, dict) and all(isinstance(v, dict) for v in value.values()):
                merged.setdefault(key, []).extend({**v, "name": n} for n, v in value.items())
            elif isinstance(value, bool):
                merged[key] = bool(merged.get(key)) or value
    return merged


@dataclass
class PolicySet:
    """One compiled policy: modules, data, annotations, and the digest naming it."""

    sources: PolicySources
    compiled: Compiled
    annotations: dict[str, Annotation]
    digest: str
    data: dict[str, Any]  # what Rego sees as `data` (data.config.<layer>)
    pure: bool = True  # no module calls an IMPURE builtin: decisions are memoized
    blind: bool = True  # no module reads the execution id: it is not part of Rego's input
    timeless: bool = True  # no module reads now_ms: neither is it
    openings: bool = False  # a non-built-in module reads windows' next_open_ms
    ruled: frozenset[tuple[str, str]] = frozenset()  # (layer, point) pairs with rule modules
    # no workspace or team module reads a cache input's target: an unmarked file's serve
    # decision is the same for every file with the same outcome (:meth:`_group`)
    target_blind: bool = False
    # else, the string tests through which they read it, when that is the only way
    # (:mod:`.targets`): unmarked files with the same answers share one evaluation
    target_tests: tuple[Test, ...] | None = None
    unmarked: bool = False  # the set has the :data:`UNMARKED` entry point
    serves: str = ""  # what its serve decisions are a function of (:func:`serve_digest`)
    added: int = 0  # decisions put in the memo (persisted ones are not counted)
    _memo: LruCache[bytes, Decision] = field(
        default_factory=lambda: LruCache(MEMO_SIZE), repr=False
    )
    _plain: dict[str, Decision] = field(default_factory=dict, repr=False)
    _answers: dict[tuple[str, bytes], Decision] = field(default_factory=dict, repr=False)

    @classmethod
    def compile(cls, sources: PolicySources) -> PolicySet:
        check_roots(sources.modules)
        present = {found for m in sources.modules for found in _defines(m)}
        modules = {m.name: m.text for m in sources.modules}
        for point in POINTS:
            modules[f"compose/{point}.rego"] = _compose(point, present)
        queries: dict[str, str] = {p: f"data.decision.{p}" for p in POINTS}
        unmarked = any(layer != "builtin" and p == "cache" for layer, p, _ in present)
        if unmarked:
            others = [layer for layer in LAYERS if layer != "builtin"]
            modules[f"compose/{UNMARKED}.rego"] = _compose(
                "cache", present, package=UNMARKED, layers=others
            )
            queries[UNMARKED] = f"data.decision.{UNMARKED}"
        config = {
            "builtin": builtin_defaults(),
            **{k: v for k, v in sources.data.items() if k != "builtin"},
        }
        config["merged"] = merge_settings([config.get(layer, {}) for layer in LAYERS])
        data = {"config": config}
        compiled = Compiled(modules, data, queries)
        notes: dict[str, Annotation] = {}
        for m in sources.modules:
            for a in read_annotations(m):
                notes.setdefault(a.rule, a)
        h = hashlib.sha256()
        for name in sorted(modules):
            h.update(name.encode() + b"\0" + modules[name].encode() + b"\0")
        h.update(orjson.dumps(data, option=orjson.OPT_SORT_KEYS))
        h.update(repr(sorted(sources.shadow)).encode())
        pure = not any(IMPURE.search(m.text) for m in sources.modules)
        blind = not any(_READS_EXECUTION.search(m.text) for m in sources.modules)
        timeless = not any(_READS_CLOCK.search(m.text) for m in sources.modules)
        openings = any(
            _READS_OPENINGS.search(m.text) for m in sources.modules if m.layer != "builtin"
        )
        target_blind = not any(
            _READS_TARGET.search(m.text) for m in sources.modules if m.layer != "builtin"
        )
        tests = (
            None if target_blind
            else target_tests(m.text for m in sources.modules if m.layer != "builtin")
        )  # fmt: skip
        digest = h.hexdigest()[:16]
        ruled = frozenset((layer, point) for layer, point, _ in present)
        serves = serve_digest(
            modules, data, sorted(sources.shadow), notes,
            [pure, blind, timeless, openings, target_blind, unmarked, tests is not None,
             all(layer == "builtin" for layer, point in ruled if point == "cache")],
        )  # fmt: skip
        return cls(
            sources, compiled, notes, digest, data, pure, blind, timeless, openings, ruled,
            target_blind=target_blind, target_tests=tests, unmarked=unmarked, serves=serves,
        )  # fmt: skip

    def only_builtin(self, point: str) -> bool:
        """Whether only built-in modules define rules of ``point`` (no workspace or team)."""
        return all(layer == "builtin" for layer, p in self.ruled if p == point)

    def annotation(self, rule: str) -> Annotation | None:
        """The rule's annotation, else its family's (``caps.db_serial`` -> ``caps``)."""
        parts = rule.split(".")
        while parts:
            found = self.annotations.get(".".join(parts))
            if found is not None:
                return found
            parts.pop()
        return None

    def _left_out(self) -> set[str]:
        """Input fields Rego is not given: the execution id and the clock, when no module
        reads them."""
        left_out = set()
        if self.blind:
            left_out.add("execution_id")
        if self.timeless:
            left_out.add("now_ms")
        return left_out

    def _key(self, point: str, payload: dict[str, Any]) -> bytes:
        keyed = payload
        if not self.openings and isinstance(payload.get("windows"), dict):
            # an open window's next_open_ms is the clock; no rule that reads it here
            keyed = {**payload, "windows": {
                n: {**w, "next_open_ms": 0} if w.get("open") else w
                for n, w in payload["windows"].items()
            }}  # fmt: skip
        return point.encode() + orjson.dumps(keyed, option=orjson.OPT_SORT_KEYS)

    def _group(self, point: str, each: dict[str, Any]) -> dict[str, Any]:
        """What tells ``each`` apart for this set. A ``serve`` decision of a file carrying no
        marker does not depend on its target when no workspace or team module reads targets:
        the built-in cache rules fire for a marker or an upload only (a test pins this). A
        plan's unmarked files then share one evaluation per outcome. When they read it
        through string tests only (:attr:`target_tests`), the tests' answers stand for it:
        one evaluation per outcome and answers. The key without ``target`` is never an
        input's own (a cache input always has one, and no ``target_tests`` field)."""
        if point != "cache" or each.get("action") != "serve" or each.get("markers"):
            return each
        if self.target_blind:
            return {k: v for k, v in each.items() if k != "target"}
        target = each.get("target")
        if self.target_tests is not None and isinstance(target, str) and plain(target):
            grouped = {k: v for k, v in each.items() if k != "target"}
            grouped["target_tests"] = answers(self.target_tests, target)
            return grouped
        return each

    @property
    def memo_size(self) -> int:
        """How many decisions the memo holds at the most."""
        return self._memo.size

    @memo_size.setter
    def memo_size(self, size: int) -> None:
        self._memo.size = size

    def _keep(self, key: bytes, decision: Decision) -> Decision:
        """Remember ``decision``; the one to answer with (plain allows share one object: most
        of a plan's serve decisions are one, and the memo holds thousands)."""
        if decision.result == "allow" and not decision.rules and decision.error is None:
            decision = self._plain.setdefault(decision.point, decision)
        self._memo.put(key, decision)
        self.added += 1
        return decision

    def remember(self, entries: Sequence[tuple[bytes, Decision]]) -> None:
        """Put decisions in the memo (read back from disk by :mod:`.memo`), recent ones kept."""
        self._memo.add(entries)

    def remembered(self) -> list[tuple[bytes, Decision]]:
        """The memo's entries, least recent first."""
        return self._memo.items()

    def inherit(self, entries: Sequence[tuple[bytes, Decision]]) -> int:
        """Put another set's ``serve`` decisions in the memo, stamped with this set's digest:
        only for a set of the same :attr:`serves` (its serve decisions are the same). They
        count as decided here (the memo is written for this set). How many."""
        from maestro.policy.memo import SERVE_PREFIX

        stamped: dict[int, Decision] = {}
        out = []
        for key, decision in entries:
            if not key.startswith(SERVE_PREFIX) or decision.error is not None:
                continue
            held = stamped.get(id(decision))
            if held is None:
                held = decision.model_copy(update={"policy": self.digest})
                if held.result == "allow" and not held.rules:
                    held = self._plain.setdefault(held.point, held)
                stamped[id(decision)] = held
            out.append((key, held))
        self.remember(out)
        self.added += len(out)
        return len(out)

    def evaluate(self, inp: PolicyInput) -> Decision:
        """The decision for ``inp``; a pure set answers a repeated input from its memo. The
        returned decision may be shared with other callers: treat it as read-only."""
        payload = inp.model_dump(mode="json", exclude=self._left_out() or None)
        if not self.pure:
            return _resolve(self._evaluate(inp.point, payload), _now(inp))
        key = self._key(inp.point, payload)
        held = self._memo.get(key)
        if held is None:
            held = self._evaluate(inp.point, payload)  # an evaluation error is not remembered
            held = self._keep(key, held)
        return _resolve(held, _now(inp))

    def evaluate_many(
        self, base: PolicyInput, updates: Sequence[Mapping[str, Any]]
    ) -> list[Decision | PolicyEvalError]:
        """The decisions for ``base`` with each of ``updates`` applied to its fields (what
        ``base.model_copy(update=u)`` would be asked), without a model and its serialization
        per input: a plan asks one per test file, and most are answered by the memo. An
        evaluation error is returned in its place (the caller applies the fail mode)."""
        unknown = {k for u in updates for k in u} - set(type(base).model_fields)
        if unknown:
            raise PolicyError(f"not fields of {type(base).__name__}: {sorted(unknown)}")
        left_out = self._left_out()
        payload = base.model_dump(mode="json", exclude=left_out or None)
        point = base.point
        now = _now(base)
        pure = self.pure
        eaches = []
        keys: list[bytes] = []
        for update in updates:
            each = {**payload, **update}
            for name in left_out:
                if name in update:
                    del each[name]
            eaches.append(each)
            if pure:
                keys.append(self._key(point, self._group(point, each)))
        # one lock for the batch: most are answered here
        held = self._memo.get_many(keys) if pure else [None] * len(eaches)
        out: list[Decision | PolicyEvalError] = []
        for i, update in enumerate(updates):
            decision = held[i]
            if decision is None and pure:
                # decided since the batch looked: an earlier file of its group, a warm-up
                decision = self._memo.get(keys[i])
            if decision is None:
                try:
                    decision = self._evaluate(point, eaches[i])
                except PolicyEvalError as exc:
                    out.append(exc)
                    continue
                if pure:
                    decision = self._keep(keys[i], decision)
            if decision.rules:
                decision = _resolve(decision, update.get("now_ms", now))
            out.append(decision)
        return out

    def _evaluate(self, point: Point, payload: dict[str, Any]) -> Decision:
        entry: str = point
        if (
            self.unmarked
            and point == "cache"
            and payload.get("action") == "serve"
            and not payload.get("markers")
        ):
            entry = UNMARKED
        with self.compiled.lock:
            text = self.compiled.query_raw(entry, payload)
        # most answers repeat (a plan's files mostly fire nothing): read each text once
        held = self._answers.get((point, text))
        if held is not None:
            return held
        decision = self._read(point, answer(text))
        if len(self._answers) < ANSWERS_KEPT:
            self._answers[(point, text)] = decision
        return decision

    def _read(self, point: Point, value: Any) -> Decision:
        fired: list[FiredRule] = []
        for name, found in value.items() if isinstance(value, dict) else ():
            layer, _, kind = name.partition("_")
            if layer not in LAYERS or kind not in KINDS:
                continue
            # a partial set arrives as a list; an object's values count, a scalar is nothing
            if isinstance(found, dict):
                found = list(found.values())
            if isinstance(found, list):
                fired.extend(self._fired(kind, item, layer) for item in found)
        fired.sort(key=lambda r: (KINDS.index(r.kind), r.rule, r.target or ""))
        return _decide(point, fired, self.digest)

    def _fired(self, kind: str, item: Any, layer: str) -> FiredRule:
        if not isinstance(item, dict):
            item = {"msg": str(item)}
        rule = str(item.get("rule") or f"maestro.{layer}.{kind}")
        note = self.annotation(rule)
        retry = item.get("retry_after_ms")
        at = item.get("retry_at_ms")
        return FiredRule(
            rule=rule,
            kind=kind,
            layer=layer,
            message=str(item.get("msg") or ""),
            remediation=str(item.get("remediation") or (note.remediation if note else "")),
            title=note.title if note else "",
            retry_after_ms=int(retry) if isinstance(retry, int | float) else None,
            retry_at_ms=int(at) if isinstance(at, int | float) else None,
            target=item.get("target"),
            shadow=layer in self.sources.shadow,
        )


def _now(inp: PolicyInput) -> int | None:
    # a field lookup first: pydantic's path for a missing attribute is slow
    return getattr(inp, "now_ms", None) if "now_ms" in type(inp).model_fields else None


def _resolve(decision: Decision, now: int | None) -> Decision:
    """Rules that said when to retry as an instant get their delay from the input's clock."""
    if not any(r.retry_at_ms is not None for r in decision.rules):
        return decision
    if now is None:
        return decision
    rules = [
        r if r.retry_at_ms is None
        else r.model_copy(update={"retry_after_ms": max(0, r.retry_at_ms - now)})
        for r in decision.rules
    ]  # fmt: skip
    resolved = _decide(decision.point, rules, decision.policy)
    return resolved.model_copy(update={"error": decision.error}) if decision.error else resolved


def _decide(point: Point, fired: list[FiredRule], digest: str) -> Decision:
    enforced = [r for r in fired if not r.shadow]
    result: Result = "allow"
    for kind in ("deny", "queue"):
        hits = [r for r in enforced if r.kind == kind]
        if hits:
            result = "deny" if kind == "deny" else "queue"
            retries = [r.retry_after_ms for r in hits if r.retry_after_ms is not None]
            retry = max(retries) if retries else None
            return Decision(point=point, result=result, rules=fired, retry_after_ms=retry,
                            policy=digest)  # fmt: skip
    return Decision(point=point, result=result, rules=fired, policy=digest)


@dataclass(frozen=True, slots=True)
class Warmed:
    """A warm-up that ended: the set, the decisions it went through (of ``asked``), its time."""

    digest: str
    decided: int
    asked: int
    wall_s: float
    cpu_s: float


@dataclass
class PolicyEngine:
    """The policy in force for one workspace (or none: built-in only), swappable while serving.

    ``current`` is replaced by one assignment, so a decision in flight finishes on the set it
    started with and none is dropped during a swap."""

    root: Path | None = None
    current: PolicySet | None = None
    last_error: PolicyError | None = None
    listeners: list[Callable[[PolicySet], None]] = field(default_factory=list)
    # long-lived processes (the daemon) compile a new set in a child first: rego-cpp aborts
    # the process on some constructs
    checker: ChildCompiler | None = None
    # where a set's plan-time decisions (cache ``serve``) are kept by its digest, so the next
    # process (a CLI run, a restarted daemon) answers them from its memo (:mod:`.memo`)
    memo_dir: Path | None = None
    # long-lived processes (the daemon): a newly installed set decides the recent plans'
    # ``serve`` inputs in a background thread (:meth:`remember_serves`), so the first plan
    # after a policy change finds them in the memo instead of evaluating every file
    warm_on_install: bool = False
    warmed: Warmed | None = None  # the last warm-up that ended
    _reload_lock: threading.Lock = field(default_factory=threading.Lock)
    _saved: tuple[int, int] = (0, 0)  # (id of the set, its added count) last written
    _serves: OrderedDict[str, dict[str, Any]] = field(default_factory=OrderedDict)
    _serves_lock: threading.Lock = field(default_factory=threading.Lock)
    _warming: threading.Thread | None = None

    @classmethod
    def open(
        cls, root: Path | None, *, isolate: bool = False, memo_dir: Path | None = None,
        resident: bool = False,
    ) -> PolicyEngine:  # fmt: skip
        """Built-in and workspace policy; a workspace policy that does not compile leaves the
        built-in one in force and is kept in :attr:`last_error`. With ``isolate``, every set
        with workspace or team modules is compiled in a child process first; with
        ``resident`` too (long-lived processes), that child is kept ready for the next set
        (close the engine)."""
        checker = None
        if isolate:  # the sets checked before are kept beside the plan-time memo
            kept = memo_dir / CHECKED_FILE if memo_dir is not None else None
            checker = ChildCompiler(kept=kept, resident=resident)
        engine = cls(root, checker=checker, memo_dir=memo_dir)
        try:
            engine.reload()
        except PolicyError:
            if engine.current is None:
                engine.install(PolicySet.compile(load(None)))
        held = engine.current
        own = held is not None and any(m.layer != "builtin" for m in held.sources.modules)
        if checker is not None and (own or engine.last_error is not None):
            # a workspace or team policy (or one being fixed): the child loads while nothing
            # changes, so the next edit is checked at once; with the built-in rules alone,
            # the first check starts it
            checker.start()
        return engine

    def close(self) -> None:
        """End the resident child checker, if any (the engine still decides)."""
        if self.checker is not None:
            self.checker.close()

    def install(self, policy: PolicySet) -> None:
        held = self.current
        if self.memo_dir is not None and policy.pure:
            from maestro.policy.memo import load_memo

            load_memo(self.memo_dir, policy)
        if (
            held is not None and held is not policy and held.pure and policy.pure
            and held.serves == policy.serves
        ):  # fmt: skip
            # an edit that cannot change a serve decision (run rules, a window): kept
            policy.inherit(held.remembered())
        self.current = policy
        for listener in self.listeners:
            listener(policy)
        if self.warm_on_install:
            self._start_warm(policy)

    def remember_serves(self, updates: Sequence[Mapping[str, Any]]) -> None:
        """The ``serve`` inputs of a plan's served files (``target``, ``markers``, ``outcome``,
        ``ci``, as :meth:`decide_many` takes them), every one, asked or not: what the next set
        installed decides in the background. The most recent :data:`SERVES_KEPT` are kept."""
        changed = False
        with self._serves_lock:
            serves = self._serves
            for update in updates:
                target = str(update["target"])
                held = serves.get(target)
                if held is None or held != update:
                    serves[target] = dict(update)
                    changed = True
                serves.move_to_end(target)
            while len(serves) > SERVES_KEPT:
                serves.popitem(last=False)
            kept = list(serves.values()) if changed and self.memo_dir is not None else None
        if kept is not None and self.memo_dir is not None:
            # a restarted daemon warms a set that changed while it was down (:meth:`start_warm`)
            from maestro.policy.memo import save_serves

            save_serves(self.memo_dir, kept)

    def start_warm(self) -> None:
        """Warm the set in force with the served files kept by an earlier process (a daemon
        restarted after the policy changed finds them decided at its first plan). Files the
        set's kept decisions already answer cost a memo lookup each."""
        if self.memo_dir is not None:
            from maestro.policy.memo import load_serves

            found = load_serves(self.memo_dir)
            with self._serves_lock:
                for update in found:
                    self._serves.setdefault(str(update["target"]), update)
        policy = self.current
        if policy is not None:
            self._start_warm(policy)

    def _start_warm(self, policy: PolicySet) -> None:
        # a set that reads the execution id never answers a plan from its memo
        if not policy.pure or not policy.blind:
            return
        with self._serves_lock:
            updates = list(self._serves.values())
        if policy.only_builtin("cache"):  # as serve_asks: only marked files are asked
            updates = [u for u in updates if u.get("markers")]
        if not updates:
            return
        thread = threading.Thread(
            target=self._warm, args=(policy, updates), name="policy-warm", daemon=True
        )
        self._warming = thread
        thread.start()

    def _warm(self, policy: PolicySet, updates: list[dict[str, Any]]) -> None:
        """Decide ``updates`` on ``policy`` into its memo, then keep them on disk. Stops when
        another set is installed. A plan meanwhile decides on the same set: each input it finds
        in the memo is not evaluated again, the others it evaluates itself (same answers)."""
        from maestro.policy.model import CacheInput

        started, cpu = time.perf_counter(), time.thread_time()
        base = CacheInput(action="serve", target="")
        done = 0
        try:
            for i in range(0, len(updates), WARM_CHUNK):
                if self.current is not policy or not self.warm_on_install:
                    break
                chunk = updates[i : i + WARM_CHUNK]
                policy.evaluate_many(base, chunk)  # an evaluation error is not remembered
                done += len(chunk)
            if self.current is policy:
                self.save_memo()
        except Exception:  # an optimization: the next plan evaluates what is missing
            log.exception("policy warm-up of %s failed", policy.digest)
        warmed = Warmed(
            policy.digest, done, len(updates), time.perf_counter() - started,
            time.thread_time() - cpu,
        )  # fmt: skip
        if self.current is policy:  # a warm-up stopped by a newer set's does not report
            self.warmed = warmed
        log.info(
            "policy %s: %d of %d serve decisions of recent plans decided in %.0f ms",
            policy.digest, done, len(updates), warmed.wall_s * 1000,
        )  # fmt: skip

    def wait_warm(self, timeout: float | None = None) -> bool:
        """Wait for the warm-up in progress, if any; whether none is still running."""
        thread = self._warming
        if thread is not None:
            thread.join(timeout)
            return not thread.is_alive()
        return True

    def reload(self, *, team: tuple[list[Module], dict[str, Any], str] | None = None) -> PolicySet:
        """Recompile from the workspace (and ``team``, else the team layer in force). Raises
        PolicyError (file:line:column) and keeps the last good set when it does not compile."""
        with self._reload_lock:
            sources = load(self.root)
            held = self.current
            if team is not None:
                sources = sources.with_team(*team)
            elif held is not None and held.sources.revision:
                team_modules = [m for m in held.sources.modules if m.layer == "team"]
                sources = sources.with_team(
                    team_modules, held.sources.data.get("team", {}), held.sources.revision
                )
            try:
                if self.checker is not None:
                    self.checker.check(sources)
                policy = PolicySet.compile(sources)
            except PolicyError as exc:
                self.last_error = exc
                log.warning("policy not loaded, the last good one stays in force: %s", exc)
                raise
            self.last_error = None
            self.install(policy)
            return policy

    def decide(self, inp: PolicyInput) -> Decision:
        policy = self.current
        if policy is None:
            raise PolicyError("no policy loaded")
        try:
            return policy.evaluate(inp)
        except PolicyEvalError as exc:
            return _failed(inp, str(exc), policy.digest)

    def decide_many(
        self, base: PolicyInput, updates: Sequence[Mapping[str, Any]]
    ) -> list[Decision]:
        """``decide(base.model_copy(update=u))`` for each of ``updates``, on one policy set
        (:meth:`PolicySet.evaluate_many`); each evaluation error gets its point's fail mode."""
        policy = self.current
        if policy is None:
            raise PolicyError("no policy loaded")
        out = []
        for update, got in zip(updates, policy.evaluate_many(base, updates), strict=True):
            if isinstance(got, PolicyEvalError):
                got = _failed(base.model_copy(update=dict(update)), str(got), policy.digest)
            out.append(got)
        return out

    def save_memo(self) -> None:
        """Write the set's plan-time decisions to :attr:`memo_dir` when it decided new ones
        since the last write (a failure to write is logged: the memo is an optimization)."""
        policy = self.current
        if self.memo_dir is None or policy is None or not policy.pure:
            return
        mark = (id(policy), policy.added)
        if mark == self._saved or policy.added == 0:
            return
        from maestro.policy.memo import save_memo

        save_memo(self.memo_dir, policy)
        self._saved = mark


def _failed(inp: PolicyInput, error: str, digest: str) -> Decision:
    closed = fail_closed(inp)
    result, how = ("deny", "denied") if closed else ("allow", "allowed")
    fail = "fail closed" if closed else "fail open"
    log.log(
        logging.ERROR if closed else logging.WARNING,
        "policy evaluation failed, %s %s (%s): %s", inp.point, how, fail, error,
    )  # fmt: skip
    rule = FiredRule(
        rule=ERROR_RULE, kind="deny" if closed else "warn", layer="builtin",
        message=f"the policy could not decide ({error}); {how} because {inp.point}"
        f" decisions {fail}",
        remediation="fix the policy (`maestro policy check`, `maestro policy eval`)",
    )  # fmt: skip
    return Decision(point=inp.point, result=result, rules=[rule], policy=digest, error=error)
