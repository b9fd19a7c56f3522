"""The daemon wire contract: every frame exchanged between clients and the workspace daemon.

Clients (CLI, LSP server, editors) and the daemon may come from different installs, so this module
is the single definition of what crosses the socket; docs/protocol.md describes the encoding.
Envelopes ignore unknown fields (additive changes do not need a version bump); anything else that
changes the meaning of a frame bumps ``PROTOCOL_VERSION``.

Adding a method is two lines here: a params and a result model, then ``register_method(...)``; the
daemon attaches a handler with ``DaemonApp.register`` and clients call it with the returned spec.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    model_validator,
)

from maestro import __version__
from maestro.cache.stats import CacheStats
from maestro.counts import plural
from maestro.errors import (
    DaemonError,
    InternalError,
    MaestroError,
    PolicyDeniedError,
    ProtocolError,
)
from maestro.names import printable
from maestro.reports import GraphStatsReport, ImpactedReport, WhyReport

PROTOCOL_VERSION = 1
"""Bumped on any incompatible change to frames, envelopes or method models."""

MAX_REQUEST_ID = 2**63 - 1
CONNECTION_ERROR_ID = 0
"""Responses with this id concern the connection (handshake, malformed frame), not a request."""

RESTART_HINT = "restart the daemon: maestro daemon stop && maestro daemon start"

RequestId = Annotated[int, Field(ge=1, le=MAX_REQUEST_ID)]


def _utf8_name(value: Any) -> Any:
    return printable(value) if isinstance(value, str) else value


WirePath = Annotated[str, BeforeValidator(_utf8_name)]
"""A path in a method model. The wire is UTF-8 (docs/protocol.md): a file name that is not (its
undecodable bytes kept as lone surrogates, see maestro.names) is escaped printably as the model
is built. Lossy, but such a name is never a node of the graph, so no answer depends on it being
exact; and a model that holds it can always be sent (msgpack and JSON would refuse it)."""


class WireModel(BaseModel):
    """Base of every wire model: unknown fields are ignored so peers can grow additively.

    Validators are built on first use (defer_build): a process pays only for the models it
    uses, which keeps daemon and CLI start-up short as the protocol grows.
    """

    model_config = ConfigDict(extra="ignore", frozen=True, defer_build=True)

    def wire_dump(self) -> dict[str, Any]:
        """The JSON-mode dump sent on the wire (fields by their aliases)."""
        return self.model_dump(mode="json", by_alias=True)


# --- envelopes -----------------------------------------------------------------------------------


class _Envelope(WireModel):
    """Envelopes are strict (no "1" -> 1 coercion); method models stay lax so they may use
    datetimes, paths or enums that travel as JSON-mode strings."""

    model_config = ConfigDict(extra="ignore", frozen=True, strict=True, defer_build=True)


class Hello(_Envelope):
    """First frame a client sends; the daemon answers HelloReply or a connection error Response."""

    type: Literal["hello"] = "hello"
    protocol: int
    maestro_version: str
    client: str = Field(default="", description="free-form client name, e.g. 'cli', 'lsp'")


class HelloReply(_Envelope):
    type: Literal["hello_reply"] = "hello_reply"
    protocol: int
    maestro_version: str
    root: str
    pid: int


class Request(_Envelope):
    type: Literal["request"] = "request"
    id: RequestId
    method: str = Field(min_length=1, max_length=200)
    params: dict[str, Any] = Field(default_factory=dict)


class ErrorInfo(_Envelope):
    """A failure on the wire; ``code`` is the ``code`` of a MaestroError subclass."""

    code: str
    message: str
    hint: str | None = None
    where: str | None = None
    data: dict[str, Any] = Field(default_factory=dict)


class Response(_Envelope):
    """Final answer to a request: exactly one of ``result`` and ``error`` is set."""

    type: Literal["response"] = "response"
    id: Annotated[int, Field(ge=0, le=MAX_REQUEST_ID)]
    result: dict[str, Any] | None = None
    error: ErrorInfo | None = None

    @model_validator(mode="after")
    def _one_of(self) -> Response:
        if (self.result is None) == (self.error is None):
            raise ValueError("a response carries exactly one of 'result' and 'error'")
        return self


class Event(_Envelope):
    """Server-pushed notification: tied to a request (``id``) or broadcast (``id`` is None)."""

    type: Literal["event"] = "event"
    event: str = Field(min_length=1, max_length=200)
    payload: dict[str, Any] = Field(default_factory=dict)
    id: RequestId | None = None


class Cancel(_Envelope):
    """Client asks to cancel an in-flight request; its Response then has error code 'cancelled'."""

    type: Literal["cancel"] = "cancel"
    id: RequestId


Frame = Annotated[
    Hello | HelloReply | Request | Response | Event | Cancel, Field(discriminator="type")
]


@functools.cache
def _frame() -> TypeAdapter[Frame]:
    """Built on first use: an in-process `maestro test` imports this module and sends no frame
    (building a validator at import also loads pydantic's plugins, importlib.metadata with them)."""
    return TypeAdapter(Frame)


def parse_frame(obj: Mapping[str, Any]) -> Frame:
    """Validate one decoded frame map into its envelope model; ProtocolError if it is none."""
    try:
        return _frame().validate_python(obj)
    except ValidationError as exc:
        errors = exc.errors()
        msg = errors[0]["msg"] if errors else "validation failed"
        loc = ".".join(str(part) for part in errors[0]["loc"]) if errors else ""
        raise ProtocolError(f"invalid frame: {msg}" + (f" at {loc}" if loc else "")) from None
    except (RecursionError, TypeError, ValueError) as exc:
        raise ProtocolError(f"invalid frame: {type(exc).__name__}") from None


def dump_frame(frame: WireModel) -> dict[str, Any]:
    """The msgpack-ready map of an envelope (JSON-compatible types only).

    A successful Response's result is already a JSON-mode dump of its result model: it is passed
    through as it is (re-walking a large answer cost more than computing it)."""
    if isinstance(frame, Response) and frame.result is not None:
        return {"type": "response", "id": frame.id, "result": frame.result, "error": None}
    return frame.model_dump(mode="json")


# --- errors --------------------------------------------------------------------------------------


def _error_classes() -> Iterator[type[MaestroError]]:
    stack: list[type[MaestroError]] = [MaestroError]
    while stack:
        cls = stack.pop()
        yield cls
        stack.extend(cls.__subclasses__())


def error_info(exc: BaseException, *, log_path: str | None = None) -> ErrorInfo:
    """The wire form of an exception; unexpected ones become ``internal_error``."""
    if isinstance(exc, MaestroError):
        return ErrorInfo(
            code=exc.code, message=exc.message, hint=exc.hint, where=exc.where,
            data=exc.wire_data(),
        )  # fmt: skip
    hint = f"see the daemon log: {log_path}" if log_path else "see the daemon log"
    return ErrorInfo(
        code=InternalError.code, message=f"{type(exc).__name__}: {exc}"[:2000], hint=hint
    )


def error_from_info(info: ErrorInfo) -> MaestroError:
    """Rebuild the typed MaestroError a peer reported, by its code (DaemonError if unknown)."""
    if info.code == PolicyDeniedError.code:
        retry = info.data.get("retryAfterMs")
        return PolicyDeniedError(
            info.message, hint=info.hint, where=info.where,
            retry_after_ms=int(retry) if isinstance(retry, int | float) else None,
            execution_id=str(info.data.get("executionId") or ""),
        )  # fmt: skip
    for cls in _error_classes():
        if cls.code == info.code:
            try:
                return cls(info.message, hint=info.hint, where=info.where)
            except TypeError:  # a subclass with another constructor: fall back below
                break
    exc = DaemonError(info.message, hint=info.hint, where=info.where)
    exc.code = info.code
    return exc


# --- method registry -----------------------------------------------------------------------------

P = TypeVar("P", bound=BaseModel)
R = TypeVar("R", bound=BaseModel)


@dataclass(frozen=True)
class MethodSpec(Generic[P, R]):
    """A method's name and its params/result models: what both peers validate against."""

    name: str
    params: type[P]
    result: type[R]
    streams: bool = False
    """True if the handler emits events tied to the request before its result."""
    doc: str = ""


@dataclass(frozen=True, slots=True)
class Dumped(Generic[R]):
    """A result already in its JSON-mode wire form, which a handler may return instead of the
    model: the server sends ``data`` as it is. Only for data built by our own code from typed
    values (a hub ``impacted`` answer: validating 600 rows into models only to dump them again
    was a fifth of the answer); the receiver validates it against ``model`` as always."""

    model: type[R]
    data: dict[str, Any]


METHODS: dict[str, MethodSpec[Any, Any]] = {}
EVENTS: dict[str, type[BaseModel]] = {}


def register_method(
    name: str, params: type[P], result: type[R], *, streams: bool = False, doc: str = ""
) -> MethodSpec[P, R]:
    """Declare a method of the protocol; a name can be registered once."""
    if name in METHODS:
        raise ValueError(f"method {name!r} is already registered")
    spec = MethodSpec(name=name, params=params, result=result, streams=streams, doc=doc)
    METHODS[name] = spec
    return spec


def register_event(name: str, payload: type[BaseModel]) -> str:
    """Declare an event and its payload model (documentation and optional client validation)."""
    if name in EVENTS:
        raise ValueError(f"event {name!r} is already registered")
    EVENTS[name] = payload
    return name


def method_spec(name: str) -> MethodSpec[Any, Any] | None:
    return METHODS.get(name)


# --- built-in methods ----------------------------------------------------------------------------


class Empty(WireModel):
    """Params or result of a method that takes or returns nothing."""


class PingParams(WireModel):
    echo: str = Field(default="", max_length=4096)


class PingResult(WireModel):
    echo: str
    time: float


class Tally(WireModel):
    """Base of the counts a daemon service adds to as it works: the one mutable kind of wire
    model. The service holds an instance; its status model extends the tally, so each count is
    declared once from the service to every client."""

    model_config = ConfigDict(frozen=False)


class TelemetrySent(Tally):
    """What the sync engine's sends of telemetry batches did."""

    batches_sent: int = 0
    rows_sent: int = 0
    failures: int = Field(
        default=0,
        description="sends that failed and are retried (waiting out a Retry-After is not one)",
    )
    last_sent_at: float | None = None
    last_error: str | None = None


class TelemetryQueued(Tally):
    """What the daemon's telemetry uploader's rounds queued for the sync engine to send."""

    rounds: int = 0
    last_round_at: float | None = None
    skipped: str | None = Field(
        default=None,
        description="why the last round queued nothing (backoff, the key's role, queue full)",
    )
    batches_queued: int = 0
    rows_queued: int = 0


class TelemetryUploadStatus(TelemetryQueued, TelemetrySent):
    """What the daemon's telemetry uploader did (`telemetry_upload_every_s`)."""

    model_config = ConfigDict(frozen=True)

    every_s: float = Field(description="seconds between rounds; 0: uploads off")


class TeamModelCounts(Tally):
    """What the daemon's fetches of the team model did and which model ranks tests."""

    ranking: str = Field(default="heuristic", description="team, own or heuristic")
    description: str = Field(default="", description="the ranking model, as `model status` says")
    fetches: int = 0
    last_fetch_at: float | None = None
    last_fetch: str | None = Field(
        default=None,
        description="installed vN, unchanged, none published, skipped (backoff), refused or "
        "failed and why",
    )


class TeamModelStatus(TeamModelCounts):
    """The team model: what the daemon's last fetch did and which model ranks tests."""

    model_config = ConfigDict(frozen=True)

    every_s: float = Field(description="seconds between fetches; 0: only `maestro model pull`")


class RemoteCounts(Tally):
    """What the daemon's sync with the team coordinator counted since it started."""

    remote_hits: int = 0
    remote_misses: int = 0
    remote_errors: int = 0
    corrupt_refused: int = 0
    uploaded: int = 0
    upload_failures: int = 0
    dropped: int = 0
    last_upload_at: float | None = None
    egress_blocked: int = Field(
        default=0, description="uploads stopped because the last scan found a secret in them"
    )
    egress_flagged: int = Field(
        default=0, description="uploads sent with a secret in them (secrets.redaction.enforce off)"
    )
    last_error: str | None = None
    last_error_at: float | None = None


class RemoteStatus(RemoteCounts):
    """The daemon's sync with the team coordinator (`[tool.maestro.remote]`)."""

    model_config = ConfigDict(frozen=True)

    url: str
    tenant: str
    role: str | None = Field(default=None, description="the API key's role, once a token is held")
    uploads: str = Field(default="", description="on, pending, or off and why")
    queue_length: int = 0
    queue_bytes: int = 0
    telemetry_queue: int = 0
    circuit: str = Field(default="closed", description="closed, open or half-open (remote reads)")
    retry_at: float | None = None
    backoff_until: float | None = Field(
        default=None,
        description="the coordinator asked us to back off (429 + Retry-After) until this time "
        "(epoch s); reads use the local cache and uploads wait meanwhile",
    )
    backoff_rule: str | None = Field(default=None, description="the coordinator's refusing rule")
    hint: str | None = Field(
        default=None,
        description="how to fix the last error when it is the configuration's (the API key's "
        "variable, the coordinator URL and the file that sets them)",
    )
    telemetry: TelemetryUploadStatus | None = None
    team_model: TeamModelStatus | None = None


class SpeculationCounts(Tally):
    """What the daemon's speculation counted since it started."""

    runs: int = Field(default=0, description="speculative runs completed")
    cancelled: int = Field(default=0, description="speculative runs cancelled by a newer edit")
    skipped: int = Field(
        default=0,
        description="saves after which speculation did not start (budget, throttle, busy)",
    )
    hits: int = Field(default=0, description="explicit-run files served by speculation")
    misses: int = Field(default=0, description="explicit-run files that had to run")
    wasted: int = Field(default=0, description="speculative results replaced unused")
    cpu_s: float = Field(default=0.0, description="CPU-seconds, cancelled runs included")
    first_failure_s: list[float] = Field(
        default_factory=list, description="seconds from a save to its first failing result"
    )
    last: str = ""


class SpeculationStatus(SpeculationCounts):
    """The daemon's speculation (`ml.speculation`) and the model ranking its runs."""

    model_config = ConfigDict(frozen=True)

    enabled: bool = False
    state: str = Field(default="off", description="off, idle, running or throttled")
    throttled_reason: str = ""
    model: str = Field(default="heuristic", description="the ranking model in use")
    model_error: str = Field(default="", description="why a stored model was refused")
    pending: int = Field(default=0, description="speculative results not used yet")
    used_share: float | None = None
    waste_share: float | None = Field(default=None, description="unused share of spec. CPU")
    cpu_last_minute_s: float = 0.0


class RetraceStatus(WireModel):
    """Before Python 3.12: the idle daemon's re-recording, traced, of the results an untraced
    first run stored (the ``retrace`` setting)."""

    enabled: bool = True
    state: str = Field(
        default="idle",
        description="off (the retrace setting), idle, waiting (for the daemon to be idle), "
        "running, held (the policy refused it for now) or not needed (3.12+, MAESTRO_TRACE set)",
    )
    reason: str = Field(default="", description="why it is off, held or not needed")
    pending: int = Field(default=0, description="test files waiting to be re-recorded")
    runs: int = 0
    stored: int = Field(default=0, description="traced results stored")


class StatusResult(WireModel):
    pid: int
    root: str
    uptime_s: float
    protocol: int
    maestro_version: str
    python_version: str
    connections: int
    requests_in_flight: int
    idle_timeout_s: float
    log_path: str
    socket_path: str
    state_dir: str
    methods: list[str]
    remote: RemoteStatus | None = Field(
        default=None, description="coordinator sync; None when no remote is configured"
    )
    speculation: SpeculationStatus | None = Field(
        default=None, description="speculation and telemetry; None without a test service"
    )
    retrace: RetraceStatus | None = Field(
        default=None, description="re-recording of untraced results; None without a test service"
    )


class ShutdownResult(WireModel):
    stopping: bool = True


class SubscribeParams(WireModel):
    """Broadcast event names to receive on this connection; ``"*"`` means all of them."""

    events: list[str] = Field(default_factory=lambda: ["*"], max_length=1000)


class SubscribeResult(WireModel):
    events: list[str]


class SleepParams(WireModel):
    seconds: float = Field(ge=0, le=3600, allow_inf_nan=False)
    ticks: int = Field(default=0, ge=0, le=100_000)


class SleepResult(WireModel):
    slept_s: float


class TickPayload(WireModel):
    n: int


PING = register_method("ping", PingParams, PingResult, doc="Liveness check; echoes a string.")
STATUS = register_method("status", Empty, StatusResult, doc="Process, versions and load.")
SHUTDOWN = register_method("shutdown", Empty, ShutdownResult, doc="Graceful stop after replying.")
SUBSCRIBE = register_method(
    "subscribe", SubscribeParams, SubscribeResult, doc="Choose the broadcast events to receive."
)
DEBUG_SLEEP = register_method(
    "debug.sleep",
    SleepParams,
    SleepResult,
    streams=True,
    doc="Test-only (MAESTRO_DAEMON_TEST_METHODS=1): sleeps, emitting 'debug.tick' events.",
)
DEBUG_TICK = register_event("debug.tick", TickPayload)


def _coordinator_url(url: str | None) -> str | None:
    from maestro.config import http_url

    return None if url is None else http_url(url)


CoordinatorUrl = Annotated[str | None, AfterValidator(_coordinator_url)]
"""A coordinator base URL, normalised (no trailing slash); a ValueError says the form."""


class ClientSettings(WireModel):
    """A client's overrides of the workspace configuration (an editor's settings). The daemon
    holds them while that client's connection is open; ``None`` keeps the workspace's value."""

    interpreter: str | None = Field(
        default=None, description="python that runs the tests (over `[tool.maestro] interpreter`)"
    )
    speculation: bool | None = Field(
        default=None, description="turn speculation on or off (over `ml.speculation.enabled`)"
    )
    coordinator_url: CoordinatorUrl = Field(
        default=None, description="coordinator base URL (over `[tool.maestro.remote] url`)"
    )


class ConfigureResult(WireModel):
    """What the daemon uses once the client's settings are applied."""

    interpreter: str | None = None
    speculation: bool = False
    coordinator_url: str | None = None
    remote_problem: str | None = Field(
        default=None, description="why the remote is off despite a URL (no tenant, no key)"
    )


CONFIGURE = register_method(
    "configure",
    ClientSettings,
    ConfigureResult,
    doc="Apply a client's settings over the workspace configuration while it stays connected.",
)


def hello(client: str = "", *, protocol: int = PROTOCOL_VERSION) -> Hello:
    return Hello(protocol=protocol, maestro_version=__version__, client=client)


# --- workspace methods (graph, tests, cache) -----------------------------------------------------
# Results reuse the CLI's report models (maestro.reports) so that `maestro impacted --json` prints
# the same document whether the daemon answered or the CLI computed it in process.

MAX_BUFFERS = 1000


class ImpactedParams(WireModel):
    """What changed: explicit ``paths``, git changes ``since`` a REF, or unsaved editor
    ``buffers`` ({path: text}); none of them means the git working tree. Paths are absolute or
    relative to the workspace root (never to the daemon's cwd)."""

    paths: list[WirePath] | None = Field(default=None, max_length=100_000)
    since: str | None = Field(default=None, min_length=1, max_length=1000)
    buffers: dict[WirePath, str] | None = Field(default=None, max_length=MAX_BUFFERS)
    etag: str | None = Field(
        default=None,
        max_length=128,
        description="the etag of an answer the client holds: while it holds, the reply is "
        "`unchanged` and carries no rows",
    )
    hops: int | None = Field(
        default=None,
        ge=0,
        description="structured reason chains for the first N targets only (None: all); "
        "`why` says every chain in words",
    )
    why: bool = Field(
        default=True,
        description="every target's chain in words (`why`); the CLI's text output, which "
        "prints only structured chains, asks without",
    )

    @model_validator(mode="after")
    def _one_source(self) -> ImpactedParams:
        given = [n for n in ("paths", "since", "buffers") if getattr(self, n) is not None]
        if len(given) > 1:
            raise ValueError(f"give one change source, not {' and '.join(given)}")
        return self


class WhyParams(WireModel):
    target: WirePath = Field(min_length=1, max_length=4096, description="test file or //target")
    path: WirePath = Field(min_length=1, max_length=4096, description="file or global input")


class GraphStatsParams(WireModel):
    targets: bool = Field(default=False, description="also list every target")
    check_syntax: bool = Field(
        default=False, description="compile the files whose syntax is not known yet"
    )


class GraphExportParams(WireModel):
    format: Literal["dot", "json"] = "json"


class GraphExportResult(WireModel):
    format: Literal["dot", "json"]
    text: str


class StaleFile(WireModel):
    target: str
    reason: str = Field(description="no cached result, inputs changed, failed last time, ...")
    changed: list[str] = Field(default_factory=list, description="inputs that differ")
    describe: str = Field(default="", description="the human-readable line `maestro stale` shows")


class StaleParams(WireModel):
    """What `maestro stale -- ARGS` asks about: the run's pytest arguments, ``PYTEST_ADDOPTS``
    first (the keys of a run with them)."""

    pytest_args: list[str] = Field(default_factory=list, max_length=10_000)


class StaleResult(WireModel):
    """The document `maestro stale --json` prints (plus ``tests``, the number of test files)."""

    schema_: str = Field(default="maestro.stale/1", alias="schema")
    stale: list[StaleFile]
    tests: int = 0

    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True, defer_build=True)


class RunTestsParams(WireModel):
    """Same selection as `maestro test`: paths are test files, directories or node ids relative
    to the root (with ``impacted``: changed files); ``buffers`` are unsaved editor contents
    (they imply ``impacted``)."""

    paths: list[WirePath] = Field(default_factory=list, max_length=100_000)
    impacted: bool = False
    since: str | None = Field(default=None, min_length=1, max_length=1000)
    buffers: dict[WirePath, str] | None = Field(default=None, max_length=MAX_BUFFERS)
    no_cache: bool = False
    pytest_args: list[str] = Field(default_factory=list, max_length=10_000)
    env: dict[str, str] | None = Field(
        default=None,
        max_length=10_000,
        description="the client's allowlisted environment (keys and pytest use it instead of "
        "the daemon's, so results match an in-process run); None: the daemon's environment",
    )
    answers_env: bool = Field(
        default=False,
        description="the client answers ``run.env_wanted`` with ``provide_env``: a test file "
        "that read a variable ``env`` left out then runs again at once with its value",
    )
    predictive: bool = Field(
        default=False,
        description="predictive mode: of the files that would run, run only those whose "
        "predicted P(fail) >= threshold (never one that failed last time or has no history)",
    )
    threshold: float | None = Field(
        default=None, ge=0.0, le=1.0, description="None: the workspace's ml.predictive.threshold"
    )


class PlannedFileInfo(WireModel):
    target: str
    runs: bool
    reason: str | None = None
    describe: str = Field(description="'cached', 'no cached result', 'inputs changed: a.py', ...")
    changed: list[str] = Field(default_factory=list)
    cached_tests: int = Field(default=0, description="tests in the cached result, if any")


class RunQueued(WireModel):
    """Event ``run.queued``: another run of this workspace is active; ``ahead`` runs go first."""

    ahead: int
    speculative: int = Field(
        default=0,
        description="test files a speculative run (after a save) is finishing first; their "
        "results then serve this run",
    )

    def describe(self) -> str:
        """What the run waits for, as the CLI and the editor say it."""
        waits = [f"{plural(self.ahead, 'other run')} of this workspace"] if self.ahead else []
        if self.speculative:
            waits.append(
                f"the speculative run of {plural(self.speculative, 'test file')} started by a save "
                "(its results serve this run)"
            )
        return "waiting for " + (" and ".join(waits) or "another run") + " to finish"


class EnvWanted(WireModel):
    """Event ``run.env_wanted`` (to a client that ``answers_env``): test files read these
    variables, which its environment sets and ``env`` left out; the client answers with
    ``provide_env`` (the values it has), and the files run again with them."""

    names: list[str] = Field(max_length=1000)


class ProvideEnvParams(WireModel):
    """The values of the variables a ``run.env_wanted`` named (those the client has)."""

    run: int = Field(description="the id of the ``run_tests`` request on this connection")
    env: dict[str, str] = Field(max_length=1000)


class RunPlanned(WireModel):
    """Event ``run.plan``: every selected file, whether it runs and why (before pytest starts)."""

    files: list[PlannedFileInfo]


class RunProgress(WireModel):
    """Event ``run.progress``: one event of the pytest plugin, in its JSON form (engine/events.py,
    version 1: collected, test_start, test_result without captured output; not the daemon's
    own records of what tests executed and read), with
    the running count of finished tests. What a failure says is redacted: a test result's
    ``message`` and, of a failed or errored test, ``longrepr`` (pytest's report of it: the
    traceback and the assertion diff); a collection error's."""

    done: int
    total: int | None = None
    event: dict[str, Any]


class RunFileResult(WireModel):
    target: str
    cached: bool
    stored: bool = False
    served: list[str] = Field(
        default_factory=list,
        description="a file run in part: the node ids of its result served from the cache",
    )
    result: dict[str, Any] | None = Field(
        default=None, description="the ActionResult (maestro.cache.action) in JSON mode"
    )


class PredictiveFile(WireModel):
    """One test file in predictive mode: its predicted P(fail) and why it runs or is skipped."""

    target: str
    probability: float
    reason: str


class PredictiveTest(WireModel):
    """One test predictive mode skipped inside a file that ran."""

    node_id: str
    probability: float
    reason: str


class PredictiveInfo(WireModel):
    """What predictive mode decided (`RunTestsResult.predictive`)."""

    threshold: float
    model: str = Field(description="what ranked: 'heuristic' or '<kind> v<N>'")
    skipped: list[PredictiveFile] = Field(default_factory=list)
    kept: list[PredictiveFile] = Field(
        default_factory=list, description="files that run, with the reason (incl. never-skipped)"
    )
    skipped_tests: list[PredictiveTest] = Field(
        default_factory=list,
        description="tests deselected inside the kept files (those files' results are not cached)",
    )
    note: str = Field(default="", description="why nothing was skipped, when it could not rank")

    def summary(self) -> str:
        inside = (
            f"; skipped {plural(len(self.skipped_tests), 'test')} in them"
            if self.skipped_tests
            else ""
        )
        return (
            f"predictive mode (P(fail) >= {self.threshold:g}, {self.model}): ran "
            f"{plural(len(self.kept), 'test file')}, skipped {len(self.skipped)}{inside}"
        )


class RunCounts(WireModel):
    """What a run did, counted: the exit code (pytest's codes), files by how they were served,
    tests by outcome."""

    exit_code: int
    ran_files: int = 0
    cached_files: int = 0
    not_run_files: int = 0
    passed: int = 0
    failed: int = 0
    skipped: int = 0
    errors: int = 0
    xfailed: int = 0
    xpassed: int = 0
    flaky: int = 0
    warnings: int = Field(default=0, description="as pytest's summary line counts them")
    subtests_passed: int = Field(
        default=0, description="as pytest's summary line counts them (0 where it would not say)"
    )
    deselected: int = Field(default=0, description="by the user's -k, -m (pytest's count)")
    cached_warnings: int = Field(
        default=0, description="those of `warnings` recorded when a cached file last ran"
    )
    time_saved_s: float = 0.0
    wall_s: float = 0.0
    pytest_exit_code: int | None = Field(default=None, description="None: nothing was run")

    @property
    def tests(self) -> int:
        return self.passed + self.failed + self.skipped + self.errors + self.xfailed + self.xpassed


class QuarantinedTest(WireModel):
    """A test the policy quarantined: it ran and is reported, its failure does not fail the run."""

    node_id: str
    outcome: str
    rule: str = Field(description="the policy rule that quarantined it (quarantine.listed, ...)")
    target: str = Field(description="what the rule named: a folder, a file or file::test")


def _files_dump(model: WireModel, files: list[RunFileResult]) -> dict[str, Any]:
    """`model`'s wire dump whose files' results, JSON dumps of ActionResults already, are not
    walked again: a large suite's results hold tens of thousands of test outcomes."""
    out = model.model_dump(mode="json", by_alias=True, exclude={"files"})
    out["files"] = [
        f.model_dump(mode="json", by_alias=True, exclude={"result"}) | {"result": f.result}
        for f in files
    ]
    return out


class RunTestsResult(RunCounts):
    files: list[RunFileResult]
    predictive: PredictiveInfo | None = Field(default=None, description="None: mode off")
    execution_id: str = Field(
        default="", description="the run's id: `maestro explain --execution ID`"
    )
    quarantined: list[QuarantinedTest] = Field(default_factory=list)
    policy: list[str] = Field(
        default_factory=list,
        description="the run's policy decisions that were not a plain allow, one sentence each",
    )
    pytest_said: str = Field(
        default="",
        description="when files did not finish: the last lines pytest printed (an "
        "INTERNALERROR, a crash), redacted",
    )
    warnings_shown: str = Field(
        default="",
        description="pytest's warnings summary for the warnings of the tests run now (not the "
        "served files'), as pytest words it, without its title; redacted",
    )
    configure_warnings: str = Field(
        default="",
        description="the warnings pytest's configuration raised (a conftest's or a plugin's "
        "pytest_configure), as pytest printed them on its error output when it started; redacted",
    )
    session_failed: str = Field(
        default="",
        description="when pytest failed its session with no test failing (a plugin after the "
        "tests: pytest-cov's --cov-fail-under): what it printed about it, redacted; the exit "
        "code stays the tests' outcome",
    )
    confirmed: list[str] = Field(
        default_factory=list,
        description="tests whose outcome in a run without the rest of their file was put to "
        "their whole file in the same run, and what it said, one sentence each",
    )
    environment: list[str] = Field(
        default_factory=list,
        description="test files that read a variable the environment sets but pytest did not "
        "get (not in the allowlist), and what the run did about it, one sentence each",
    )
    notes: list[str] = Field(
        default_factory=list,
        description="with impacted/since: changes no test reaches yet, and why (as "
        "ImpactedReport's notes: an extension module's C source, whose module must be rebuilt)",
    )

    def wire_dump(self) -> dict[str, Any]:
        return _files_dump(self, self.files)


class CachedResultsParams(WireModel):
    """Test files (root-relative) whose stored results for their current inputs are wanted."""

    paths: list[WirePath] = Field(default_factory=list, max_length=10_000)


class CachedResultsResult(WireModel):
    """The stored result of each file whose current inputs have one (``cached`` true, ``result``
    the ActionResult JSON, with its provenance); files without one are left out."""

    files: list[RunFileResult]

    def wire_dump(self) -> dict[str, Any]:
        return _files_dump(self, self.files)


class GraphChanged(WireModel):
    """Broadcast ``graph_changed``: the watcher applied changes. ``touched`` are the nodes whose
    edges changed (``"*"``: files appeared or vanished, everything was relinked)."""

    paths: list[WirePath]
    touched: list[WirePath]
    elapsed_ms: float


IMPACTED = register_method(
    "impacted",
    ImpactedParams,
    ImpactedReport,
    doc="Targets a change can break, with reasons (the report of `maestro impacted --json`).",
)
WHY = register_method("why", WhyParams, WhyReport, doc="Why a target depends on a file.")
GRAPH_STATS = register_method(
    "graph_stats", GraphStatsParams, GraphStatsReport, doc="`maestro graph stats --json`."
)
GRAPH_EXPORT = register_method(
    "graph_export", GraphExportParams, GraphExportResult, doc="The graph as dot or JSON text."
)
STALE = register_method(
    "stale", StaleParams, StaleResult, doc="Test files without a usable result."
)
CACHED_RESULTS = register_method(
    "cached_results",
    CachedResultsParams,
    CachedResultsResult,
    doc="Stored results of test files for their current inputs, without running anything.",
)
RUN_TESTS = register_method(
    "run_tests",
    RunTestsParams,
    RunTestsResult,
    streams=True,
    doc="Cached, impact-selected test run; one per workspace at a time, the rest queue.",
)
PROVIDE_ENV = register_method(
    "provide_env",
    ProvideEnvParams,
    Empty,
    doc="The answer to a run's ``run.env_wanted``: the values of the variables it named.",
)
CACHE_STATS = register_method("cache_stats", Empty, CacheStats, doc="Cache counters.")


class RemoteBackoff(WireModel):
    """Broadcast ``remote.backoff``: the team coordinator asked the daemon to back off (429 or
    503 + Retry-After) until ``until`` (epoch s; sent again when it moves later), or, with
    ``active`` false, the backoff is over. ``status`` (``remote.backoff_until``) says the same
    to a client that subscribed late."""

    active: bool
    until: float | None = None
    rule: str | None = Field(default=None, description="the coordinator's refusing rule")


GRAPH_CHANGED = register_event("graph_changed", GraphChanged)
REMOTE_BACKOFF = register_event("remote.backoff", RemoteBackoff)
RUN_QUEUED = register_event("run.queued", RunQueued)
RUN_PLAN = register_event("run.plan", RunPlanned)
RUN_ENV_WANTED = register_event("run.env_wanted", EnvWanted)
RUN_PROGRESS = register_event("run.progress", RunProgress)
