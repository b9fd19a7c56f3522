"""A policy set's plan-time decisions kept on disk by the set's digest.

A plan asks the cache decision ``serve`` for every file it serves from the cache; with a
workspace or team cache rule that is one Rego evaluation per test file (rego-cpp costs ~0.1 ms
a query whatever the rules, so hundreds of milliseconds over a large suite). The answers are a
function of the set and the input alone (only pure sets are kept: engine.IMPURE), so a new
process with the same set (the next CLI run, a restarted daemon) reads them back instead.

Only ``serve`` decisions are kept: they decide whether this machine's own cached results are
used, the point a plan asks per file. Uploads, plugin loads and admissions are always decided by
the live set. The file names the digest, and carries Maestro's and rego-cpp's versions: a
different version reads nothing.
"""

from __future__ import annotations

import contextlib
import logging
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
from pydantic import ValidationError

from maestro.paths import replace_file
from maestro.policy.model import Decision

if TYPE_CHECKING:
    from maestro.policy.engine import PolicySet

log = logging.getLogger(__name__)

FORMAT = 1
KEPT_FILES = 8
"""Memo files kept in the folder (newest first): a few policy sets switched between."""
_DIGEST = re.compile(r"[0-9a-f]{16}")  # a memo file's name (other files share the folder)
SERVE_PREFIX = b'cache{"action":"serve"'
"""How a memo key of a ``serve`` decision starts (the point, then the input's JSON with sorted
keys, ``action`` first of the cache input's fields)."""


def _versions() -> list[str]:
    from maestro.policy.isolate import versions

    return versions()


SERVES_FILE = "serves.json"
"""In the memo folder: the served files' ``serve`` inputs of the recent plans (target, markers,
outcome, ci), which a daemon's new set decides ahead (engine.PolicyEngine.start_warm)."""


def save_serves(folder: Path, serves: list[dict[str, Any]]) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        replace_file(folder / SERVES_FILE, orjson.dumps({"format": FORMAT, "serves": serves}))
    except OSError as exc:
        log.warning("served files not kept in %s: %s", folder, exc)


def load_serves(folder: Path) -> list[dict[str, Any]]:
    """What :func:`save_serves` kept (nothing when it is missing, damaged or foreign)."""
    try:
        held = orjson.loads((folder / SERVES_FILE).read_bytes())
    except FileNotFoundError:
        return []
    except (OSError, orjson.JSONDecodeError) as exc:
        log.warning("kept served files %s not read (%s)", folder / SERVES_FILE, exc)
        return []
    fields = {"target", "markers", "outcome", "ci"}
    if not isinstance(held, dict) or held.get("format") != FORMAT:
        return []
    serves = held.get("serves")
    if not isinstance(serves, list):
        return []
    return [
        s for s in serves
        if isinstance(s, dict) and set(s) == fields and isinstance(s["target"], str)
        and isinstance(s["markers"], list) and all(isinstance(m, str) for m in s["markers"])
        and s["outcome"] in (None, "passed", "failed") and isinstance(s["ci"], bool)
    ]  # fmt: skip


def memo_path(folder: Path, digest: str) -> Path:
    return folder / f"{digest}.json"


def load_memo(folder: Path, policy: PolicySet) -> int:
    """Put the kept decisions of ``policy`` (by its digest) in its memo; how many. Without
    them, those of a kept set with the same serve digest (an edit of run rules since: its
    serve decisions are the same), stamped with this set's digest."""
    path = memo_path(folder, policy.digest)
    entries = _read(path, digest=policy.digest)
    if entries is not None:
        policy.remember(entries)
        return len(entries)
    if not policy.serves:
        return 0
    for other in _memo_files(folder):
        if other == path or _serves_of(other) != policy.serves:
            continue
        entries = _read(other, serves=policy.serves)
        if entries:
            return policy.inherit(entries)
    return 0


_SERVES = re.compile(rb'"serves":"([0-9a-f]{16})"')


def _serves_of(path: Path) -> str | None:
    """A memo file's serve digest, read from its head (written before its entries)."""
    try:
        with path.open("rb") as f:
            head = f.read(512)
    except OSError:
        return None
    found = _SERVES.search(head)
    return found.group(1).decode() if found else None


def _memo_files(folder: Path) -> list[Path]:
    """The memo files, newest first."""
    try:
        files = [
            (p.stat().st_mtime_ns, p) for p in folder.glob("*.json") if _DIGEST.fullmatch(p.stem)
        ]
    except OSError:
        return []
    return [p for _, p in sorted(files, reverse=True)]


def _read(
    path: Path, *, digest: str | None = None, serves: str | None = None
) -> list[tuple[bytes, Decision]] | None:
    """A memo file's serve entries when it is this version's and names ``digest`` (or
    ``serves``); None when it is missing, damaged or another's."""
    try:
        raw = path.read_bytes()
    except OSError:
        return None
    try:
        held = orjson.loads(raw)
        if held.get("format") != FORMAT or held.get("versions") != _versions():
            return None
        if digest is not None and held.get("digest") != digest:
            return None
        if serves is not None and held.get("serves") != serves:
            return None
        # most are the same plain allow: one shared object for those (decisions in the memo
        # are read-only), validated once
        plain: tuple[object, Decision] | None = None
        entries = []
        for key, value in held["entries"]:
            if not key.encode().startswith(SERVE_PREFIX):
                continue
            if plain is not None and value == plain[0]:
                decision = plain[1]
            else:
                decision = Decision.model_validate(value)
                if decision.result == "allow" and not decision.rules:
                    plain = (value, decision)
            entries.append((key.encode(), decision))
    except (orjson.JSONDecodeError, ValidationError, KeyError, TypeError, ValueError) as exc:
        log.warning("policy memo %s not read (%s): decisions are evaluated", path, exc)
        return None
    return entries


def save_memo(folder: Path, policy: PolicySet) -> None:
    """Write ``policy``'s ``serve`` decisions (replacing the file atomically); keep the
    :data:`KEPT_FILES` newest memo files."""
    entries = [
        [key.decode(), decision.model_dump(mode="json")]
        for key, decision in policy.remembered()
        if key.startswith(SERVE_PREFIX) and decision.error is None
    ]
    if not entries:
        return
    body = orjson.dumps({
        "format": FORMAT, "versions": _versions(), "digest": policy.digest,
        "serves": policy.serves, "entries": entries,
    })  # fmt: skip
    try:
        folder.mkdir(parents=True, exist_ok=True)
        replace_file(memo_path(folder, policy.digest), body)
        for old in _memo_files(folder)[KEPT_FILES:]:
            with contextlib.suppress(OSError):
                old.unlink()
    except OSError as exc:
        log.warning("policy memo not written to %s: %s", folder, exc)
