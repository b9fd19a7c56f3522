"""The action-cache value: what a test target's run produced, keyed by its action digest.

It is a boundary type (a remote cache may hand it to us later), hence pydantic with validation,
and it is stored as msgpack of the JSON-mode dump: no pickle, readable by any language.
"""

from __future__ import annotations

import os
import platform
import socket
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any, Literal

import msgpack
from pydantic import BaseModel, ConfigDict, Field, ValidationError

import maestro
from maestro.errors import CacheError
from maestro.redaction import Redacted

from .digest import Digest

SCHEMA_VERSION = 1
"""Bumped on incompatible changes; newer entries are a miss for older readers, never deleted."""

Outcome = Literal["passed", "failed", "skipped", "error", "xfailed", "xpassed"]


class _Model(BaseModel):
    # Unknown keys are ignored so additive changes stay readable without a schema bump.
    # Validators are built on first use: a first run imports this module before its pytest
    # process has its run and needs none of them until the results come back.
    model_config = ConfigDict(frozen=True, extra="ignore", defer_build=True)


class TestRun(_Model):
    """One of several tests collected under one node id (a collector naming its items alike):
    what pytest reports for it alone."""

    __test__ = False

    outcome: Outcome
    duration_s: float = Field(default=0.0, ge=0)
    path: str | None = None
    line: int | None = Field(default=None, ge=0)
    message: Redacted | None = None
    also: list[Outcome] = Field(default_factory=list)


class TestOutcome(_Model):
    """One pytest node's result; `path`/`line` locate the failure for editors and reports."""

    __test__ = False  # not a pytest test class despite the name

    node_id: str
    outcome: Outcome
    duration_s: float = Field(default=0.0, ge=0)
    path: str | None = None
    line: int | None = Field(default=None, ge=0)
    message: Redacted | None = None
    """What the test failed or skipped with, redacted (only a Redactor makes this type)."""
    details: Redacted | None = None
    """pytest's whole report of a failure or error (traceback, assertion diff), redacted, as its
    terminal and JUnit file show it; older entries lack it."""
    test_line: int | None = Field(default=None, ge=0)
    """The failing line in the test file when `path`/`line` is where it raised, elsewhere (an
    editor shows a stored failure at both; older entries lack it)."""
    flaky: bool = False
    also: list[Outcome] = Field(default_factory=list)
    """What pytest's summary line counts for this node besides `outcome`, from its other phases:
    "passed" for a call that passed before its teardown errored, "error" for a teardown error
    after a failed or skipped call."""
    warnings: int = 0
    """How many warnings pytest recorded while this node ran (its summary line counts them)."""
    subtests_passed: int = 0
    """How many of its subtests passed: pytest's summary line may count them ("3 subtests
    passed", by its verbosity); older entries lack it."""
    addressable: bool = True
    """Can pytest be given this node id to run it alone? Not when a collector's name holds
    "::" (html5lib's data-file items): then its whole file runs."""
    executed: list[int] | None = None
    """Indices into ``ActionResult.trace.functions`` of what this node ran; None = no record."""
    reads: list[str] = Field(default_factory=list)
    """Workspace files the node opened for reading (data files; sources read while importing)."""
    opaque: list[str] = Field(default_factory=list)
    """Why some of what the node read is unknown (it ran a program that is not Python...)."""
    each: list[TestRun] = Field(default_factory=list)
    """When several tests share this node id, each of them in run order; the node's own
    fields are then the worst outcome's, and ``also`` counts the others."""
    params: dict[str, int] | None = None
    """Parametrized fixture function (``<workspace file>::<name>``) -> the index of its
    ``params`` element this node got (-1: unknown); None = no record. A node missing a fixture
    here does not use its params."""

    def test_count(self) -> int:
        """Tests as pytest collects them under this node id (several may share it)."""
        return len(self.each) or 1


class TraceRecord(_Model):
    """Function-level execution record of a test file's result (docs/action-key.md).

    ``functions`` is a table of ``<workspace path>::<qualified name>`` shared by the nodes'
    ``executed`` indices; ``import_time`` lists the ones that ran outside any test and that
    this file's tests may depend on (its own collection, conftest and session-wide code, any
    workspace module's import): a change to one of those re-runs the whole file.
    """

    mode: str = ""  # "monitoring", "lsprof" (cProfile) or "profile" (sys.setprofile)
    functions: list[str] = Field(default_factory=list)
    import_time: list[int] = Field(default_factory=list)
    import_lines: dict[str, list[int]] = Field(default_factory=dict)
    """Index (as text) of an ``import_time`` function -> every line it ran in the runs behind
    this record, for the version of its file in this result's inputs; a function missing here
    has no line record (a change to it re-runs the whole file)."""
    collection_reads: list[str] = Field(default_factory=list)
    """Workspace files read while the file was collected (module level, parametrize lists):
    a change to one re-runs the whole file, even when some node also read it."""

    def names(self, indices: list[int] | None) -> list[str]:
        table = self.functions
        return [table[i] for i in indices or () if 0 <= i < len(table)]


class Timing(_Model):
    """When the original run started and what it cost: the time a later hit saves."""

    started_at: datetime
    wall_s: float = Field(ge=0)
    cpu_s: float = Field(ge=0)


class Provenance(_Model):
    """Where a result was produced. Deliberately no user name: caches are shared across people."""

    maestro_version: str
    hostname: str
    python_version: str
    platform: str
    created_at: datetime

    @classmethod
    def current(cls) -> Provenance:
        return cls(
            maestro_version=maestro.__version__,
            hostname=this_host(),
            python_version=".".join(str(p) for p in sys.version_info[:3]),
            # not platform.platform(): it runs `uname -p` in a subprocess for the processor name
            platform=f"{platform.system()}-{platform.release()}-{platform.machine()}",
            created_at=datetime.now(UTC),
        )


def this_host() -> str:
    """The host name results produced here carry."""
    return os.environ.get("MAESTRO_HOSTNAME") or socket.gethostname()


class ActionResult(_Model):
    """The cached outcome of one test action (REAPI's ActionResult, specialised to test runs)."""

    schema_version: int = SCHEMA_VERSION
    exit_code: int
    tests: list[TestOutcome] = Field(default_factory=list)
    stdout: Digest | None = None
    stderr: Digest | None = None
    junit: Digest | None = None
    timing: Timing
    provenance: Provenance
    inputs: dict[str, str] = Field(default_factory=dict)
    """Input path -> digest hex that the action key covered; lets `explain` say what changed."""
    dynamic_deps: list[str] = Field(default_factory=list)
    trace: TraceRecord | None = None
    """Per-node execution record (additive: older readers ignore it, older entries lack it)."""
    opaque: list[str] = Field(default_factory=list)
    """Why the file depends on the whole workspace: what some of its tests read is unknown."""
    collect_warnings: int = 0
    """How many warnings pytest recorded while collecting this file that point at it, or are
    pytest's own about its collection (a generator given to parametrize)."""
    session_warnings: int = 0
    """How many warnings the run that stored it recorded pointing at no test file (a conftest's
    import, a plugin's): a run served whole from the cache counts them once, as pytest does."""
    deselected: int = 0
    """How many of the file's tests the run's own selection (-k, -m) deselected, as pytest's
    summary line counts them; older entries lack it."""

    def referenced_digests(self) -> list[Digest]:
        """Every CAS blob this result needs; an AC hit requires all of them to be present."""
        return [d for d in (self.stdout, self.stderr, self.junit) if d is not None]

    def test_count(self) -> int:
        """Tests as pytest collects them: a node id holding several counts each."""
        return sum(t.test_count() for t in self.tests)

    def iter_failures(self) -> Iterator[TestOutcome]:
        return (t for t in self.tests if t.outcome in ("failed", "error"))

    def encode(self) -> bytes:
        """msgpack of the JSON-mode dump (datetimes as ISO strings)."""
        packed: bytes = msgpack.packb(self.model_dump(mode="json"), use_bin_type=True)
        return packed


class NewerSchemaError(CacheError):
    """An entry written by a newer Maestro: valid for them, unreadable for us; not corruption."""

    code = "newer_schema"


def unpack_map(data: bytes | memoryview, what: str) -> dict[str, Any]:
    """A msgpack map (never pickle); CacheError naming `what` for anything else."""
    try:
        raw = msgpack.unpackb(data, raw=False, strict_map_key=True)
    except (ValueError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError) as exc:
        raise CacheError(f"undecodable {what}: {exc}") from exc
    if not isinstance(raw, dict):
        raise CacheError(f"{what} is a {type(raw).__name__}, not a map")
    return raw


def decode_action(data: bytes) -> ActionResult:
    """Decode a stored action result; raises CacheError on garbage, NewerSchemaError if too new."""
    raw = unpack_map(data, "action result")
    version = raw.get("schema_version", SCHEMA_VERSION)
    if isinstance(version, int) and version > SCHEMA_VERSION:
        raise NewerSchemaError(
            f"action result has schema {version}, this Maestro reads {SCHEMA_VERSION}",
            hint="upgrade Maestro to use entries written by newer versions",
        )
    try:
        return ActionResult.model_validate(raw)
    except (ValidationError, CacheError, TypeError, ValueError) as exc:
        raise CacheError(f"invalid action result: {exc}") from exc
