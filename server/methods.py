"""The ``maestro/*`` editor protocol: every custom request, notification and command of the
language server, its params and its result, as typed models.

This module is the contract. The server validates params into these models and answers with
them; ``clients/vscode/src/model/protocol.ts``, the IntelliJ plugin's ``Protocol.kt`` and the
reference section of ``docs/lsp.md`` are generated from it (``maestro.server.codegen``; a test
fails when they drift). Field names are camelCase on the wire, snake_case in Python. Models the
daemon already defines (reason hops, changes, the ``why`` report, the daemon's status) reach the
editor as they are, with the daemon's field names.

What the editor sends is validated: params are pydantic models that ignore unknown keys (an older
server accepts a newer client's requests). What the server sends is built by its own code and
checked by mypy: results and notifications are TypedDicts in their wire spelling, free at run time
(a hub answer has hundreds of rows; a model instance per row cost more than the daemon's walk).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any, Generic, Literal, NotRequired, TypeVar

from pydantic import (
    AliasGenerator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
)
from pydantic.alias_generators import to_camel
from pygls.exceptions import JsonRpcException, JsonRpcInvalidParams
from pygls.lsp.server import LanguageServer
from typing_extensions import TypedDict

from maestro.cache.stats import CacheStats
from maestro.errors import MaestroError
from maestro.policy.model import DecisionRecord
from maestro.reports import ChangeModel, HopModel, WhyReport
from maestro.server.settings import Settings as ServerSettings
from maestro.wire import ErrorInfo, StatusResult


class EditorModel(BaseModel):
    """camelCase on the wire; built from our own data or validated from the client's."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="ignore", defer_build=True
    )


# --- shared ------------------------------------------------------------------------------------


class Position(TypedDict):
    """An LSP position (0-based line and UTF-16 character)."""

    line: int
    character: int


class Range(TypedDict):
    start: Position
    end: Position


class Location(TypedDict):
    uri: str
    range: Range


class DocumentRef(EditorModel):
    uri: str


class WorkspaceParams(EditorModel):
    """Which workspace a request is about: a document in it, or its root; default: the first
    workspace folder."""

    root: str | None = Field(default=None, description="workspace root path or file URI")
    text_document: DocumentRef | None = None
    uri: str | None = Field(default=None, description="a document URI")
    uris: list[str] = Field(default_factory=list, description="several document URIs")

    def documents(self) -> list[str]:
        found = [self.text_document.uri] if self.text_document else []
        return found + ([self.uri] if self.uri else []) + self.uris


class Empty(EditorModel):
    pass


# --- maestro/impactedTargets -------------------------------------------------------------------


class ImpactedTargetsParams(WorkspaceParams):
    since: str | None = Field(default=None, description="a git ref: what changed since it")

    @field_validator("since")
    @classmethod
    def _a_ref_not_an_option(cls, value: str | None) -> str | None:
        # handed to git as an argument: "--output=x" would be read as an option
        if value is not None and (not value.strip() or value.startswith("-")):
            raise ValueError(f"{value!r} is not a git ref")
        return value

    cache_state: bool | Literal["refresh"] = Field(
        default=True,
        description="true: the memoised cache state; 'refresh': fetch it (waits at most 2 s); "
        "false: leave the column out",
    )
    tests_only: bool = Field(default=False, description="only test targets")
    reasons: bool = Field(default=False, description="also the structured reason hops")


CacheState = Literal["cached", "stale", "unsaved", "unknown"]


class CacheCell(TypedDict):
    """A row's cache column: would the test file be served from the cache?"""

    state: CacheState
    describe: str
    changed: Annotated[list[str], Field(description="inputs that differ")]


class LastSummary(TypedDict):
    """The test file's last known outcomes (zeros: never run in this session)."""

    passed: int
    failed: int
    tests: int


class ImpactedRow(TypedDict):
    target: str
    uri: Annotated[str | None, Field(description="the test file's URI (null: a declared target)")]
    kind: Literal["test", "declared"]
    changed: Annotated[str, Field(description="the changed path the reason chain ends at")]
    distance: int
    unsaved: Annotated[bool, Field(description="the change is an unsaved buffer")]
    why: Annotated[str, Field(description="the reason chain in words, one line")]
    cache: CacheCell
    last: LastSummary
    reason: NotRequired[
        Annotated[list[HopModel], Field(description="target down to the change (reasons: true)")]
    ]


ChangeSource = Literal["paths", "buffers", "mixed", "workingTree", "since"]


class ImpactedResult(TypedDict):
    root: str
    source: Annotated[ChangeSource, Field(description="what the change set was made of")]
    changes: list[ChangeModel]
    impacted: list[ImpactedRow]
    count: Annotated[int, Field(description="test targets among the rows")]
    notes: Annotated[
        list[str],
        Field(
            description="changes no target reaches yet, and why (an extension module's C "
            "source: tests import the built module, which must be rebuilt)"
        ),
    ]
    daemonMs: float
    elapsedMs: float


# --- maestro/cacheStats ------------------------------------------------------------------------


class CacheStatsInfo(CacheStats):
    """The daemon's cache counters of a workspace, camelCase like every editor answer."""

    model_config = ConfigDict(alias_generator=AliasGenerator(serialization_alias=to_camel))

    root: str


# --- maestro/explain ---------------------------------------------------------------------------


class ExplainParams(WorkspaceParams):
    target: str | None = Field(default=None, description="node id, root-relative path or URI")
    nodeid: str | None = Field(default=None, description="same as target")
    path: str | None = Field(default=None, description="an input: why does target depend on it?")

    def subject(self) -> str | None:
        doc = self.text_document.uri if self.text_document else None
        return self.target or self.nodeid or doc


class RaisedAt(TypedDict):
    path: str
    line: int | None


class TestResult(TypedDict):
    """One test's last known outcome."""

    id: str
    file: str
    outcome: Annotated[str, Field(description="passed, failed, error, skipped, xfailed, xpassed")]
    durationS: float
    message: Annotated[str | None, Field(description="what it failed or skipped with, in short")]
    details: Annotated[
        str | None,
        Field(
            description="of a failed or errored test: pytest's whole report of it (the traceback "
            "and the assertion diff, as its terminal shows it), redacted, cut to its head and tail "
            "with a marker when long; null otherwise and for results stored before it was kept"
        ),
    ]
    line: Annotated[int | None, Field(description="1-based line of the test's def")]
    testLine: Annotated[int | None, Field(description="1-based failing line in the test file")]
    raisedAt: RaisedAt | None
    cached: bool
    flaky: bool
    runId: str | None
    ranAt: Annotated[float | None, Field(description="when its run started (epoch seconds)")]
    ranOn: Annotated[str | None, Field(description='"local", or the host of a team-cache result')]


class ExplainCache(TypedDict):
    state: Literal["cached", "stale", "unknown"]
    reason: str | None
    describe: str
    changedInputs: Annotated[list[str], Field(description="cache-key inputs that changed")]


Decision = Literal["re-run", "cached", "skipped (not impacted)", "unknown"]


class ExplainResult(TypedDict):
    root: str
    target: str
    file: str
    decision: Decision
    selected: bool
    impact: ImpactedRow | None
    cache: ExplainCache
    last: list[TestResult]
    why: Annotated[WhyReport | None, Field(description="the daemon's `why`, when path is given")]
    reasons: list[str]
    decisions: Annotated[
        list[DecisionRecord],
        Field(description="policy decisions about the test, newest first (as maestro explain)"),
    ]
    text: str


# --- maestro/status ----------------------------------------------------------------------------


LinkState = Literal["idle", "connecting", "connected", "disconnected", "error"]


class WorkspaceStatus(TypedDict):
    root: str
    state: LinkState
    pid: int | None
    connects: int
    restarts: int
    lastError: str | None
    latencyMs: NotRequired[float]
    daemon: Annotated[StatusResult | None, Field(description="the daemon's own status")]


RunKind = Literal["node", "file", "impacted", "all", "explorer", "save"]


class RunRef(TypedDict):
    """What every message about a run starts with: which run, where, what it runs."""

    runId: str
    root: str
    kind: RunKind
    label: str


class RunStatus(RunRef):
    done: int
    total: int | None
    elapsedS: float


class StatusInfo(TypedDict):
    version: str
    settings: Annotated[ServerSettings, Field(description="the initialization options in effect")]
    testExplorer: bool
    workspaces: list[WorkspaceStatus]
    runs: list[RunStatus]


# --- runs: commands and maestro/testResults ----------------------------------------------------


class TestResultsParams(TypedDict):
    """A batch of a run's test results, as they arrive: results of tests that ran, as they
    finish, then those the run served from the cache or carried. Each test comes once; a test
    sent again (a flaky rerun's final word) replaces its earlier result."""

    runId: str
    root: str
    tests: list[TestResult]


class FileOutcome(TypedDict):
    """A test file's part in a finished run (its tests' results came in ``maestro/testResults``)."""

    target: str
    uri: str
    cached: Annotated[bool, Field(description="served from the cache, nothing run")]
    stored: Annotated[bool, Field(description="its result was stored in the cache")]
    describe: str
    tests: Annotated[int, Field(description="how many test results the file has")]


class PolicyDenial(TypedDict):
    """Why the policy refused a run and when to try again."""

    message: Annotated[str, Field(description="the decision: rule and its message")]
    remediation: Annotated[str | None, Field(description="what to do about it")]
    retryAfterMs: Annotated[int | None, Field(description="retry after this (null: no advice)")]
    executionId: Annotated[str, Field(description="for maestro explain --execution")]


class RunSummary(RunRef):
    """A finished, refused or cancelled run; the counts only once it ran."""

    done: NotRequired[int]
    total: NotRequired[int | None]
    elapsedS: NotRequired[float]
    message: NotRequired[str]
    cancelled: bool
    error: ErrorInfo | None
    denied: NotRequired[
        Annotated[PolicyDenial, Field(description="the policy refused the run (error too)")]
    ]
    exitCode: NotRequired[int]
    passed: NotRequired[int]
    failed: NotRequired[int]
    errors: NotRequired[int]
    skipped: NotRequired[int]
    xfailed: NotRequired[int]
    xpassed: NotRequired[int]
    deselected: NotRequired[
        Annotated[int, Field(description="by the user's -k, -m (pytest's count)")]
    ]
    warnings: NotRequired[Annotated[int, Field(description="as pytest's summary line counts them")]]
    subtestsPassed: NotRequired[
        Annotated[
            int, Field(description="as pytest's summary line counts them (0 where it shows none)")
        ]
    ]
    flaky: NotRequired[int]
    counts: NotRequired[
        Annotated[
            str,
            Field(description="pytest's counts line of these counts, in its order and words"),
        ]
    ]
    ranFiles: NotRequired[int]
    cachedFiles: NotRequired[int]
    notRunFiles: NotRequired[int]
    timeSavedS: NotRequired[float]
    wallS: NotRequired[float]


class RunResult(RunSummary):
    """A run's end: its counts and its files; the tests' results are not repeated here."""

    files: NotRequired[list[FileOutcome]]
    results: NotRequired[
        Annotated[
            int,
            Field(description="the tests this run sent results of in maestro/testResults"),
        ]
    ]


class RunAccepted(RunRef):
    """A run command's answer, sent at once: the run goes on, its outcome arrives as
    ``maestro/runFinished`` with the same run id."""

    superseded: Annotated[list[str], Field(description="active runs this one cancelled")]


class RunProgressParams(TypedDict):
    """A run's counts so far: ``total`` is the test nodes selected to run (null until pytest
    collected), ``cachedTests`` those served from the cache without running."""

    runId: str
    root: str
    done: int
    total: int | None
    cachedTests: int
    message: str


class CancelResult(TypedDict):
    cancelled: Annotated[list[str], Field(description="the run ids cancelled")]


class RestartResult(TypedDict):
    root: str
    stopped: Annotated[int | None, Field(description="the pid of the daemon stopped, if any")]
    pid: Annotated[int, Field(description="the pid of the daemon now serving the workspace")]


class StatusChangedParams(TypedDict):
    root: str
    state: LinkState
    pid: int | None
    restarts: int
    lastError: str | None


class PolicyIncidentParams(TypedDict):
    """A team policy bundle was quarantined (``active``; the last good one stays in force) or a
    good one cleared the incident."""

    root: str
    active: bool
    reason: str
    message: str
    revision: str | None


class RemoteBackoffParams(TypedDict):
    """The team coordinator asked the workspace daemon to back off (429 + Retry-After): reads
    come from the local cache and uploads wait until ``until``; ``active`` false: it ended."""

    root: str
    active: bool
    until: Annotated[float | None, Field(description="epoch seconds")]
    rule: Annotated[str | None, Field(description="the coordinator's refusing rule")]
    message: str


# --- maestro/testExplorer/* --------------------------------------------------------------------


class TestItem(TypedDict):
    """A test file, class or function as the explorer shows it."""

    id: Annotated[str, Field(description="root-relative path or node id")]
    label: str
    kind: Literal["file", "class", "function"]
    uri: str
    range: Range | None
    children: list[TestItem]


class DiscoverParams(WorkspaceParams):
    pass


class DiscoverResult(TypedDict):
    root: str
    files: list[TestItem]


class ExplorerRunParams(WorkspaceParams):
    include: list[str] | None = Field(
        default=None, description="node ids or files; absent: every test (empty: an error)"
    )
    exclude: list[str] = Field(default_factory=list, description="node ids deselected")


class RunStarted(TypedDict):
    runId: str


class CancelParams(EditorModel):
    run_id: str | None = Field(default=None, description="absent: every active run")


class DidChangeParams(TypedDict):
    """A test file's items changed (file null: it has none now); uri and file both null: files
    appeared or vanished, rediscover everything."""

    root: str
    uri: str | None
    file: TestItem | None


class BeginParams(TypedDict):
    runId: str
    kind: RunKind
    label: str
    root: str


ProgressState = Literal["enqueued", "started", "passed", "failed", "errored", "skipped"]


class ProgressMessage(TypedDict):
    text: Annotated[str, Field(description="what it failed with, in short")]
    location: Location
    related: Annotated[Location | None, Field(description="where it raised, outside the test")]
    details: NotRequired[
        Annotated[
            str | None,
            Field(description="pytest's whole report of the failure, as maestro/testResults says"),
        ]
    ]


class ProgressParams(TypedDict):
    runId: str
    id: Annotated[str, Field(description="the node id without its parametrization, or a file")]
    nodeid: NotRequired[str]
    state: ProgressState
    durationMs: NotRequired[float]
    cached: NotRequired[bool]
    describe: NotRequired[str | None]
    message: NotRequired[ProgressMessage | None]


class EndParams(TypedDict):
    runId: str
    cancelled: bool
    error: ErrorInfo | None
    summary: RunSummary


# --- the registry ------------------------------------------------------------------------------

P = TypeVar("P", bound=BaseModel)  # what the editor sends: validated
R = TypeVar("R")  # what the server sends: a TypedDict, or a daemon model
N = TypeVar("N")


@dataclass(frozen=True)
class Request(Generic[P, R]):
    """A client -> server request."""

    method: str
    params: type[P]
    result: type[R]
    doc: str


@dataclass(frozen=True)
class Notification(Generic[N]):
    """A server -> client notification."""

    method: str
    params: type[N]
    doc: str
    gated: str = ""  # the client capability it needs, if any


@dataclass(frozen=True)
class Command(Generic[R]):
    """A ``workspace/executeCommand`` command (positional arguments)."""

    name: str
    arguments: str
    result: type[R]
    doc: str
    max_args: int = 1  # more is an InvalidParams error, as is an argument of another type


IMPACTED_TARGETS = Request(
    "maestro/impactedTargets",
    ImpactedTargetsParams,
    ImpactedResult,
    "The targets the editor's changes impact, with reasons and cache state.",
)
CACHE_STATS = Request(
    "maestro/cacheStats", WorkspaceParams, CacheStatsInfo, "The workspace cache's counters."
)
EXPLAIN = Request(
    "maestro/explain",
    ExplainParams,
    ExplainResult,
    "Why a test is selected, skipped, cached or re-run.",
)
STATUS = Request(
    "maestro/status", Empty, StatusInfo, "The server, its options, each daemon and active runs."
)
DISCOVER = Request(
    "maestro/testExplorer/discover",
    DiscoverParams,
    DiscoverResult,
    "The test items of one document, or of every test file of the workspace.",
)
EXPLORER_RUN = Request(
    "maestro/testExplorer/run",
    ExplorerRunParams,
    RunStarted,
    "Start a run; its progress arrives as begin / progress / end notifications.",
)
EXPLORER_CANCEL = Request(
    "maestro/testExplorer/cancel", CancelParams, CancelResult, "Cancel one run or every run."
)

PROTOCOL_VERSION = 2
"""This protocol's version, in the server's ``capabilities.experimental.maestroProtocol``: bumped
when a message changes in a way a client written for the previous version would misread."""
PROTOCOL_CAPABILITY = "maestroProtocol"
TEST_RESULTS_CAPABILITY = "maestroTestResults"
"""A client that declares ``experimental.maestroTestResults: false`` gets no
``maestro/testResults`` (the VS Code extension: the test-explorer notifications feed it)."""
EXPLORER = "experimental.maestroTestExplorer"
TEST_RESULTS = Notification(
    "maestro/testResults",
    TestResultsParams,
    "A run's test results in batches, each test once, as they arrive. Not sent to a client "
    "that declares `experimental.maestroTestResults: false`.",
)
RUN_STARTED = Notification(
    "maestro/runStarted",
    RunAccepted,
    "A run started (whoever started it: command, save, explorer).",
)
RUN_PROGRESS = Notification(
    "maestro/runProgress", RunProgressParams, "A run's counts (at most ~4 per second)."
)
RUN_FINISHED = Notification(
    "maestro/runFinished",
    RunResult,
    "Every run's end: counts and files, cancelled (also when superseded), an error, or nothing "
    "to run.",
)
STATUS_CHANGED = Notification(
    "maestro/statusChanged", StatusChangedParams, "A workspace daemon link changed state."
)
POLICY_INCIDENT = Notification(
    "maestro/policyIncident",
    PolicyIncidentParams,
    "A team policy bundle was quarantined, or the incident cleared (also shown once).",
)
REMOTE_BACKOFF = Notification(
    "maestro/remoteBackoff",
    RemoteBackoffParams,
    "The coordinator asked the daemon to back off, or the backoff ended (its start is shown once).",
)
DID_CHANGE = Notification(
    "maestro/testExplorer/didChange", DidChangeParams, "Test items changed.", EXPLORER
)
BEGIN = Notification("maestro/testExplorer/begin", BeginParams, "A run started.", EXPLORER)
PROGRESS = Notification(
    "maestro/testExplorer/progress", ProgressParams, "A file or test changed state.", EXPLORER
)
END = Notification("maestro/testExplorer/end", EndParams, "A run ended.", EXPLORER)

RUN_NODE = Command(
    "maestro.runNode",
    "node id (`tests/test_a.py::T::test_y` or `<uri>::name`), [document uri]",
    RunAccepted,
    "Start a run of one test. A test only in its file's unsaved text is not run (pytest runs the"
    " saved file): the run ends saying to save the file, also shown as a warning.",
    max_args=2,
)
RUN_FILE = Command(
    "maestro.runFile", "file uri (or root-relative path)", RunAccepted, "Start a run of a file."
)
RUN_IMPACTED = Command(
    "maestro.runImpacted",
    "[document uri]; without: git working tree + unsaved buffers",
    RunAccepted,
    "Start a run of the impacted test files (none impacted: it finishes with a message).",
)
RUN_ALL = Command("maestro.runAll", "[root path or uri]", RunAccepted, "Start a run of every test.")
CANCEL = Command(
    "maestro.cancel", "[run id]; without: every active run", CancelResult, "Cancel runs."
)
CACHE_STATS_COMMAND = Command(
    "maestro.cacheStats", "[root]", CacheStatsInfo, "As maestro/cacheStats."
)
EXPLAIN_COMMAND = Command(
    "maestro.explain",
    "target, [input path]",
    ExplainResult,
    "As maestro/explain; also logged with window/logMessage.",
    max_args=2,
)
STATUS_COMMAND = Command("maestro.status", "", StatusInfo, "As maestro/status.", max_args=0)
RESTART = Command(
    "maestro.restartDaemon",
    "[root]",
    RestartResult,
    "Stop the workspace's daemon; the next query starts a fresh one.",
)

REQUESTS: tuple[Request[Any, Any], ...] = (
    IMPACTED_TARGETS,
    CACHE_STATS,
    EXPLAIN,
    STATUS,
    DISCOVER,
    EXPLORER_RUN,
    EXPLORER_CANCEL,
)
NOTIFICATIONS: tuple[Notification[Any], ...] = (
    TEST_RESULTS,
    RUN_STARTED,
    RUN_PROGRESS,
    RUN_FINISHED,
    STATUS_CHANGED,
    POLICY_INCIDENT,
    REMOTE_BACKOFF,
    DID_CHANGE,
    BEGIN,
    PROGRESS,
    END,
)
COMMANDS: tuple[Command[Any], ...] = (
    RUN_NODE,
    RUN_FILE,
    RUN_IMPACTED,
    RUN_ALL,
    CANCEL,
    CACHE_STATS_COMMAND,
    EXPLAIN_COMMAND,
    STATUS_COMMAND,
    RESTART,
)


def dump(value: Any) -> Any:
    """A value as the editor receives it: models (the daemon's, inside an answer) camelCase
    where they say so, JSON values; the protocol's encoder calls this for what orjson cannot
    take as it is."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", by_alias=True)
    raise TypeError(f"not JSON: {type(value).__name__}")


class InvalidParams(JsonRpcInvalidParams):
    """Params that do not fit the method's model: says which field and why."""

    def __init__(self, method: str, error: ValidationError) -> None:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'params'}: {e['msg']}" for e in error.errors()
        )
        super().__init__(
            f"{method}: invalid params: {problems}",
            data={"code": "invalid_params", "hint": "see docs/lsp.md for the params of " + method},
        )


class Refused(JsonRpcException):
    """A MaestroError answered as a JSON-RPC error: the message, where and how to fix it."""

    CODE = -32001

    def __init__(self, method: str, error: MaestroError) -> None:
        super().__init__(
            f"{method}: {error}",
            data={"code": error.code, "message": error.message, "hint": error.hint,
                  "where": error.where},
        )  # fmt: skip


def serve(
    server: LanguageServer, spec: Request[P, R]
) -> Callable[[Callable[[Any, P], Awaitable[R]]], Callable[[Any, P], Awaitable[R]]]:
    """Register ``handler(ls, params: spec.params) -> spec.result`` for ``spec.method``: params
    are validated into the model (a bad one is an InvalidParams error naming the field), the
    result goes out as :func:`dump` gives it, and a MaestroError is answered with its hint."""

    def decorate(
        handler: Callable[[Any, P], Awaitable[R]],
    ) -> Callable[[Any, P], Awaitable[R]]:
        async def entry(ls: Any, params: Any) -> R:
            raw = params._asdict() if hasattr(params, "_asdict") else params
            try:
                typed = spec.params.model_validate(raw or {})
            except ValidationError as exc:
                raise InvalidParams(spec.method, exc) from None
            try:
                return await handler(ls, typed)
            except MaestroError as exc:
                raise Refused(spec.method, exc) from exc

        server.feature(spec.method)(entry)
        return handler

    return decorate


ARGUMENT_KEYS = ("uri", "id", "target")
"""An object argument names its value by one of these (a client may wrap a URI)."""


def bad_arguments(spec: Command[Any], args: tuple[Any, ...]) -> str | None:
    """Why ``args`` do not fit ``spec`` (None: they do): too many, or one that is neither a
    string, null, nor an object with a string ``uri``/``id``/``target``."""
    if len(args) > spec.max_args:
        takes = f"at most {spec.max_args}" if spec.max_args else "no"
        plural = "" if spec.max_args == 1 else "s"
        return f"takes {takes} argument{plural} ({spec.arguments or 'none'}), got {len(args)}"
    for index, arg in enumerate(args):
        if arg is None or isinstance(arg, str):
            continue
        if isinstance(arg, dict) and any(isinstance(arg.get(k), str) for k in ARGUMENT_KEYS):
            continue
        return f"argument {index + 1} should be a string, got {type(arg).__name__}: {str(arg)[:60]}"
    return None


def command(
    server: LanguageServer, spec: Command[R]
) -> Callable[[Callable[..., Awaitable[R]]], Callable[..., Awaitable[R]]]:
    """Register ``handler(ls, *arguments) -> spec.result`` as ``spec.name``: arguments that do
    not fit are an InvalidParams error saying which; a MaestroError is answered with its message
    and hint, as for requests."""

    def decorate(handler: Callable[..., Awaitable[R]]) -> Callable[..., Awaitable[R]]:
        async def entry(ls: Any, *args: Any) -> R:
            problem = bad_arguments(spec, args)
            if problem is not None:
                raise JsonRpcInvalidParams(
                    f"{spec.name}: {problem}",
                    data={"code": "invalid_params", "hint": "see docs/lsp.md for " + spec.name},
                )
            try:
                return await handler(ls, *args)
            except MaestroError as exc:
                raise Refused(spec.name, exc) from exc

        server.command(spec.name)(entry)
        return handler

    return decorate


def notify(server: LanguageServer, spec: Notification[N], params: N) -> None:
    """Send ``spec`` with its params (fire and forget)."""
    server.protocol.notify(spec.method, params)
