// Generated from server/methods.py by `python -m maestro.server.codegen`: do not edit.
package dev.maestro.intellij

import org.eclipse.lsp4j.jsonrpc.services.JsonRequest
import java.util.concurrent.CompletableFuture

/** The Maestro language server's custom protocol (docs/lsp.md). Every property is
 * nullable: Gson leaves absent keys null, whatever Kotlin declares. */
object MaestroMethods {
    /** The protocol version this file was generated for: the server advertises its own
     * as `capabilities.experimental.maestroProtocol`. */
    const val PROTOCOL_VERSION = 2
    const val IMPACTED_TARGETS = "maestro/impactedTargets"
    const val CACHE_STATS = "maestro/cacheStats"
    const val EXPLAIN = "maestro/explain"
    const val STATUS = "maestro/status"
    const val DISCOVER = "maestro/testExplorer/discover"
    const val RUN = "maestro/testExplorer/run"
    const val CANCEL = "maestro/testExplorer/cancel"
    const val TEST_RESULTS = "maestro/testResults"
    const val RUN_STARTED = "maestro/runStarted"
    const val RUN_PROGRESS = "maestro/runProgress"
    const val RUN_FINISHED = "maestro/runFinished"
    const val STATUS_CHANGED = "maestro/statusChanged"
    const val POLICY_INCIDENT = "maestro/policyIncident"
    const val REMOTE_BACKOFF = "maestro/remoteBackoff"
    const val DID_CHANGE = "maestro/testExplorer/didChange"
    const val BEGIN = "maestro/testExplorer/begin"
    const val PROGRESS = "maestro/testExplorer/progress"
    const val END = "maestro/testExplorer/end"
}

object MaestroCommands {
    const val RUN_NODE = "maestro.runNode"
    const val RUN_FILE = "maestro.runFile"
    const val RUN_IMPACTED = "maestro.runImpacted"
    const val RUN_ALL = "maestro.runAll"
    const val CANCEL = "maestro.cancel"
    const val CACHE_STATS = "maestro.cacheStats"
    const val EXPLAIN = "maestro.explain"
    const val STATUS = "maestro.status"
    const val RESTART_DAEMON = "maestro.restartDaemon"
}

/** The custom requests, typed (implemented by the server proxy of lsp4j). */
interface MaestroRequests {
    @JsonRequest("maestro/impactedTargets")
    fun impactedTargets(params: ImpactedTargetsParams): CompletableFuture<ImpactedResult>

    @JsonRequest("maestro/cacheStats")
    fun cacheStats(params: WorkspaceParams): CompletableFuture<CacheStatsInfo>

    @JsonRequest("maestro/explain")
    fun explain(params: ExplainParams): CompletableFuture<ExplainResult>

    @JsonRequest("maestro/status")
    fun status(params: Empty): CompletableFuture<StatusInfo>

    @JsonRequest("maestro/testExplorer/discover")
    fun discover(params: DiscoverParams): CompletableFuture<DiscoverResult>

    @JsonRequest("maestro/testExplorer/run")
    fun run(params: ExplorerRunParams): CompletableFuture<RunStarted>

    @JsonRequest("maestro/testExplorer/cancel")
    fun cancel(params: CancelParams): CompletableFuture<CancelResult>
}

data class DocumentRef(
    val uri: String? = null,
)

data class ImpactedTargetsParams(
    /** a git ref: what changed since it */
    val since: String? = null,
    /** true: the memoised cache state; 'refresh': fetch it (waits at most 2 s); false: leave the column out */
    val cacheState: Any? = null,
    /** only test targets */
    val testsOnly: Boolean? = null,
    /** also the structured reason hops */
    val reasons: Boolean? = null,
) : WorkspaceParams()

/** A row's cache column: would the test file be served from the cache? */
data class CacheCell(
    val state: String? = null,
    val describe: String? = null,
    /** inputs that differ */
    val changed: List<String>? = null,
)

data class ChangeModel(
    val path: String? = null,
    val status: String? = null,
)

data class HopModel(
    /** the dependent (file or target) */
    val source: String? = null,
    /** what it depends on */
    val target: String? = null,
    /** import, init, conftest, plugin, dynamic, global, src, dep, ... */
    val kind: String? = null,
    /** line in `source` (0 when not applicable) */
    val line: Long? = null,
    /** module as written, glob, or section */
    val detail: String? = null,
    /** human-readable reason */
    val text: String? = null,
)

data class ImpactedRow(
    val target: String? = null,
    /** the test file's URI (null: a declared target) */
    val uri: String? = null,
    val kind: String? = null,
    /** the changed path the reason chain ends at */
    val changed: String? = null,
    val distance: Long? = null,
    /** the change is an unsaved buffer */
    val unsaved: Boolean? = null,
    /** the reason chain in words, one line */
    val why: String? = null,
    val cache: CacheCell? = null,
    val last: LastSummary? = null,
    /** target down to the change (reasons: true) */
    val reason: List<HopModel>? = null,
)

/** The test file's last known outcomes (zeros: never run in this session). */
data class LastSummary(
    val passed: Long? = null,
    val failed: Long? = null,
    val tests: Long? = null,
)

data class ImpactedResult(
    val root: String? = null,
    /** what the change set was made of */
    val source: String? = null,
    val changes: List<ChangeModel>? = null,
    val impacted: List<ImpactedRow>? = null,
    /** test targets among the rows */
    val count: Long? = null,
    /** changes no target reaches yet, and why (an extension module's C source: tests import the built module, which must be rebuilt) */
    val notes: List<String>? = null,
    val daemonMs: Double? = null,
    val elapsedMs: Double? = null,
)

/** Which workspace a request is about: a document in it, or its root; default: the first workspace folder. */
open class WorkspaceParams(
    /** workspace root path or file URI */
    val root: String? = null,
    val textDocument: DocumentRef? = null,
    /** a document URI */
    val uri: String? = null,
    /** several document URIs */
    val uris: List<String>? = null,
)

/** The daemon's cache counters of a workspace, camelCase like every editor answer. */
data class CacheStatsInfo(
    /** the cache directory */
    val path: String? = null,
    val hits: Long? = null,
    val misses: Long? = null,
    val blobs: Long? = null,
    val actions: Long? = null,
    val bytes: Long? = null,
    val blobBytes: Long? = null,
    val actionBytes: Long? = null,
    val cpuSecondsSaved: Double? = null,
    val wallSecondsSaved: Double? = null,
    val evictions: Long? = null,
    val quarantined: Long? = null,
    val maxBytes: Long? = null,
    val fileBytes: Long? = null,
    val root: String? = null,
    val hitRate: Double? = null,
)

data class ExplainParams(
    /** node id, root-relative path or URI */
    val target: String? = null,
    /** same as target */
    val nodeid: String? = null,
    /** an input: why does target depend on it? */
    val path: String? = null,
) : WorkspaceParams()

/** A decision as it is kept, exported and explained: the input is redacted. */
data class DecisionRecord(
    val id: String? = null,
    /** RFC 3339, UTC */
    val time: String? = null,
    val point: String? = null,
    val executionId: String? = null,
    val schema: String? = null,
    /** the input, every string redacted */
    val input: Map<String, Any?>? = null,
    val result: String? = null,
    val rules: List<FiredRule>? = null,
    /** a deny's advice: retry after this */
    val retryAfterMs: Long? = null,
    /** how long a queued run waited */
    val waitedMs: Long? = null,
    /** test files it concerned */
    val targets: List<String>? = null,
    val policy: String? = null,
    val error: String? = null,
    /** one line to show, rules and remediation included */
    val summary: String? = null,
)

data class ExplainCache(
    val state: String? = null,
    val reason: String? = null,
    val describe: String? = null,
    /** cache-key inputs that changed */
    val changedInputs: List<String>? = null,
)

/** One rule that fired: its id and remediation (from its METADATA annotation). */
data class FiredRule(
    val rule: String? = null,
    val kind: String? = null,
    val layer: String? = null,
    val message: String? = null,
    val remediation: String? = null,
    val title: String? = null,
    val retryAfterMs: Long? = null,
    /** epoch ms to retry at, when the rule said so (the retry delay is then counted from the decision's now_ms) */
    val retryAtMs: Long? = null,
    val target: String? = null,
    /** recorded, not enforced (shadow rule set) */
    val shadow: Boolean? = null,
)

data class RaisedAt(
    val path: String? = null,
    val line: Long? = null,
)

/** One test's last known outcome. */
data class TestResult(
    val id: String? = null,
    val file: String? = null,
    /** passed, failed, error, skipped, xfailed, xpassed */
    val outcome: String? = null,
    val durationS: Double? = null,
    /** what it failed or skipped with, in short */
    val message: String? = null,
    /** of a failed or errored test: pytest's whole report of it (the traceback and the assertion diff, as its terminal shows it), redacted, cut to its head and tail with a marker when long; null otherwise and for results stored before it was kept */
    val details: String? = null,
    /** 1-based line of the test's def */
    val line: Long? = null,
    /** 1-based failing line in the test file */
    val testLine: Long? = null,
    val raisedAt: RaisedAt? = null,
    val cached: Boolean? = null,
    val flaky: Boolean? = null,
    val runId: String? = null,
    /** when its run started (epoch seconds) */
    val ranAt: Double? = null,
    /** "local", or the host of a team-cache result */
    val ranOn: String? = null,
)

data class WhyReport(
    val schema: String? = null,
    val target: String? = null,
    val path: String? = null,
    val depends: Boolean? = null,
    val reason: List<HopModel>? = null,
)

data class ExplainResult(
    val root: String? = null,
    val target: String? = null,
    val file: String? = null,
    val decision: String? = null,
    val selected: Boolean? = null,
    val impact: ImpactedRow? = null,
    val cache: ExplainCache? = null,
    val last: List<TestResult>? = null,
    /** the daemon's `why`, when path is given */
    val why: WhyReport? = null,
    val reasons: List<String>? = null,
    /** policy decisions about the test, newest first (as maestro explain) */
    val decisions: List<DecisionRecord>? = null,
    val text: String? = null,
)

class Empty

data class CodeLensSettings(
    val enabled: Boolean? = null,
    val impactedOnSource: Boolean? = null,
    val testFunctions: Boolean? = null,
)

/** The daemon's sync with the team coordinator (`[tool.maestro.remote]`). */
data class RemoteStatus(
    val remote_hits: Long? = null,
    val remote_misses: Long? = null,
    val remote_errors: Long? = null,
    val corrupt_refused: Long? = null,
    val uploaded: Long? = null,
    val upload_failures: Long? = null,
    val dropped: Long? = null,
    val last_upload_at: Double? = null,
    /** uploads stopped because the last scan found a secret in them */
    val egress_blocked: Long? = null,
    /** uploads sent with a secret in them (secrets.redaction.enforce off) */
    val egress_flagged: Long? = null,
    val last_error: String? = null,
    val last_error_at: Double? = null,
    val url: String? = null,
    val tenant: String? = null,
    /** the API key's role, once a token is held */
    val role: String? = null,
    /** on, pending, or off and why */
    val uploads: String? = null,
    val queue_length: Long? = null,
    val queue_bytes: Long? = null,
    val telemetry_queue: Long? = null,
    /** closed, open or half-open (remote reads) */
    val circuit: String? = null,
    val retry_at: Double? = null,
    /** the coordinator asked us to back off (429 + Retry-After) until this time (epoch s); reads use the local cache and uploads wait meanwhile */
    val backoff_until: Double? = null,
    /** the coordinator's refusing rule */
    val backoff_rule: String? = null,
    /** how to fix the last error when it is the configuration's (the API key's variable, the coordinator URL and the file that sets them) */
    val hint: String? = null,
    val telemetry: TelemetryUploadStatus? = null,
    val team_model: TeamModelStatus? = null,
)

/** Before Python 3.12: the idle daemon's re-recording, traced, of the results an untraced first run stored (the ``retrace`` setting). */
data class RetraceStatus(
    val enabled: Boolean? = null,
    /** off (the retrace setting), idle, waiting (for the daemon to be idle), running, held (the policy refused it for now) or not needed (3.12+, MAESTRO_TRACE set) */
    val state: String? = null,
    /** why it is off, held or not needed */
    val reason: String? = null,
    /** test files waiting to be re-recorded */
    val pending: Long? = null,
    val runs: Long? = null,
    /** traced results stored */
    val stored: Long? = null,
)

data class RunStatus(
    val done: Long? = null,
    val total: Long? = null,
    val elapsedS: Double? = null,
) : RunRef()

data class Settings(
    val interpreter: String? = null,
    val speculation: Boolean? = null,
    val coordinatorUrl: String? = null,
    val daemonAutostart: Boolean? = null,
    val codeLens: CodeLensSettings? = null,
    val diagnostics: Boolean? = null,
    val debounceMs: Long? = null,
    val requestTimeoutS: Double? = null,
    val runOnSave: Boolean? = null,
)

/** The daemon's speculation (`ml.speculation`) and the model ranking its runs. */
data class SpeculationStatus(
    /** speculative runs completed */
    val runs: Long? = null,
    /** speculative runs cancelled by a newer edit */
    val cancelled: Long? = null,
    /** saves after which speculation did not start (budget, throttle, busy) */
    val skipped: Long? = null,
    /** explicit-run files served by speculation */
    val hits: Long? = null,
    /** explicit-run files that had to run */
    val misses: Long? = null,
    /** speculative results replaced unused */
    val wasted: Long? = null,
    /** CPU-seconds, cancelled runs included */
    val cpu_s: Double? = null,
    /** seconds from a save to its first failing result */
    val first_failure_s: List<Double>? = null,
    val last: String? = null,
    val enabled: Boolean? = null,
    /** off, idle, running or throttled */
    val state: String? = null,
    val throttled_reason: String? = null,
    /** the ranking model in use */
    val model: String? = null,
    /** why a stored model was refused */
    val model_error: String? = null,
    /** speculative results not used yet */
    val pending: Long? = null,
    val used_share: Double? = null,
    /** unused share of spec. CPU */
    val waste_share: Double? = null,
    val cpu_last_minute_s: Double? = null,
)

data class StatusResult(
    val pid: Long? = null,
    val root: String? = null,
    val uptime_s: Double? = null,
    val protocol: Long? = null,
    val maestro_version: String? = null,
    val python_version: String? = null,
    val connections: Long? = null,
    val requests_in_flight: Long? = null,
    val idle_timeout_s: Double? = null,
    val log_path: String? = null,
    val socket_path: String? = null,
    val state_dir: String? = null,
    val methods: List<String>? = null,
    /** coordinator sync; None when no remote is configured */
    val remote: RemoteStatus? = null,
    /** speculation and telemetry; None without a test service */
    val speculation: SpeculationStatus? = null,
    /** re-recording of untraced results; None without a test service */
    val retrace: RetraceStatus? = null,
)

/** The team model: what the daemon's last fetch did and which model ranks tests. */
data class TeamModelStatus(
    /** team, own or heuristic */
    val ranking: String? = null,
    /** the ranking model, as `model status` says */
    val description: String? = null,
    val fetches: Long? = null,
    val last_fetch_at: Double? = null,
    /** installed vN, unchanged, none published, skipped (backoff), refused or failed and why */
    val last_fetch: String? = null,
    /** seconds between fetches; 0: only `maestro model pull` */
    val every_s: Double? = null,
)

/** What the daemon's telemetry uploader did (`telemetry_upload_every_s`). */
data class TelemetryUploadStatus(
    val batches_sent: Long? = null,
    val rows_sent: Long? = null,
    /** sends that failed and are retried (waiting out a Retry-After is not one) */
    val failures: Long? = null,
    val last_sent_at: Double? = null,
    val last_error: String? = null,
    val rounds: Long? = null,
    val last_round_at: Double? = null,
    /** why the last round queued nothing (backoff, the key's role, queue full) */
    val skipped: String? = null,
    val batches_queued: Long? = null,
    val rows_queued: Long? = null,
    /** seconds between rounds; 0: uploads off */
    val every_s: Double? = null,
)

data class WorkspaceStatus(
    val root: String? = null,
    val state: String? = null,
    val pid: Long? = null,
    val connects: Long? = null,
    val restarts: Long? = null,
    val lastError: String? = null,
    val latencyMs: Double? = null,
    /** the daemon's own status */
    val daemon: StatusResult? = null,
)

data class StatusInfo(
    val version: String? = null,
    /** the initialization options in effect */
    val settings: Settings? = null,
    val testExplorer: Boolean? = null,
    val workspaces: List<WorkspaceStatus>? = null,
    val runs: List<RunStatus>? = null,
)

data class DiscoverParams(
    /** workspace root path or file URI */
    val root: String? = null,
    val textDocument: DocumentRef? = null,
    /** a document URI */
    val uri: String? = null,
    /** several document URIs */
    val uris: List<String>? = null,
)

/** An LSP position (0-based line and UTF-16 character). */
data class Position(
    val line: Long? = null,
    val character: Long? = null,
)

data class Range(
    val start: Position? = null,
    val end: Position? = null,
)

/** A test file, class or function as the explorer shows it. */
data class TestItem(
    /** root-relative path or node id */
    val id: String? = null,
    val label: String? = null,
    val kind: String? = null,
    val uri: String? = null,
    val range: Range? = null,
    val children: List<TestItem>? = null,
)

data class DiscoverResult(
    val root: String? = null,
    val files: List<TestItem>? = null,
)

data class ExplorerRunParams(
    /** node ids or files; absent: every test (empty: an error) */
    val include: List<String>? = null,
    /** node ids deselected */
    val exclude: List<String>? = null,
) : WorkspaceParams()

data class RunStarted(
    val runId: String? = null,
)

data class CancelParams(
    /** absent: every active run */
    val runId: String? = null,
)

data class CancelResult(
    /** the run ids cancelled */
    val cancelled: List<String>? = null,
)

/** A batch of a run's test results, as they arrive: results of tests that ran, as they finish, then those the run served from the cache or carried. Each test comes once; a test sent again (a flaky rerun's final word) replaces its earlier result. */
data class TestResultsParams(
    val runId: String? = null,
    val root: String? = null,
    val tests: List<TestResult>? = null,
)

/** A run command's answer, sent at once: the run goes on, its outcome arrives as ``maestro/runFinished`` with the same run id. */
data class RunAccepted(
    /** active runs this one cancelled */
    val superseded: List<String>? = null,
) : RunRef()

/** A run's counts so far: ``total`` is the test nodes selected to run (null until pytest collected), ``cachedTests`` those served from the cache without running. */
data class RunProgressParams(
    val runId: String? = null,
    val root: String? = null,
    val done: Long? = null,
    val total: Long? = null,
    val cachedTests: Long? = null,
    val message: String? = null,
)

/** A failure on the wire; ``code`` is the ``code`` of a MaestroError subclass. */
data class ErrorInfo(
    val code: String? = null,
    val message: String? = null,
    val hint: String? = null,
    val where: String? = null,
    val data: Map<String, Any?>? = null,
)

/** A test file's part in a finished run (its tests' results came in ``maestro/testResults``). */
data class FileOutcome(
    val target: String? = null,
    val uri: String? = null,
    /** served from the cache, nothing run */
    val cached: Boolean? = null,
    /** its result was stored in the cache */
    val stored: Boolean? = null,
    val describe: String? = null,
    /** how many test results the file has */
    val tests: Long? = null,
)

/** Why the policy refused a run and when to try again. */
data class PolicyDenial(
    /** the decision: rule and its message */
    val message: String? = null,
    /** what to do about it */
    val remediation: String? = null,
    /** retry after this (null: no advice) */
    val retryAfterMs: Long? = null,
    /** for maestro explain --execution */
    val executionId: String? = null,
)

/** A run's end: its counts and its files; the tests' results are not repeated here. */
data class RunResult(
    val files: List<FileOutcome>? = null,
    /** the tests this run sent results of in maestro/testResults */
    val results: Long? = null,
) : RunSummary()

data class StatusChangedParams(
    val root: String? = null,
    val state: String? = null,
    val pid: Long? = null,
    val restarts: Long? = null,
    val lastError: String? = null,
)

/** A team policy bundle was quarantined (``active``; the last good one stays in force) or a good one cleared the incident. */
data class PolicyIncidentParams(
    val root: String? = null,
    val active: Boolean? = null,
    val reason: String? = null,
    val message: String? = null,
    val revision: String? = null,
)

/** The team coordinator asked the workspace daemon to back off (429 + Retry-After): reads come from the local cache and uploads wait until ``until``; ``active`` false: it ended. */
data class RemoteBackoffParams(
    val root: String? = null,
    val active: Boolean? = null,
    /** epoch seconds */
    val until: Double? = null,
    /** the coordinator's refusing rule */
    val rule: String? = null,
    val message: String? = null,
)

/** A test file's items changed (file null: it has none now); uri and file both null: files appeared or vanished, rediscover everything. */
data class DidChangeParams(
    val root: String? = null,
    val uri: String? = null,
    val file: TestItem? = null,
)

data class BeginParams(
    val runId: String? = null,
    val kind: String? = null,
    val label: String? = null,
    val root: String? = null,
)

data class Location(
    val uri: String? = null,
    val range: Range? = null,
)

data class ProgressMessage(
    /** what it failed with, in short */
    val text: String? = null,
    val location: Location? = null,
    /** where it raised, outside the test */
    val related: Location? = null,
    /** pytest's whole report of the failure, as maestro/testResults says */
    val details: String? = null,
)

data class ProgressParams(
    val runId: String? = null,
    /** the node id without its parametrization, or a file */
    val id: String? = null,
    val nodeid: String? = null,
    val state: String? = null,
    val durationMs: Double? = null,
    val cached: Boolean? = null,
    val describe: String? = null,
    val message: ProgressMessage? = null,
)

/** A finished, refused or cancelled run; the counts only once it ran. */
open class RunSummary(
    val done: Long? = null,
    val total: Long? = null,
    val elapsedS: Double? = null,
    val message: String? = null,
    val cancelled: Boolean? = null,
    val error: ErrorInfo? = null,
    /** the policy refused the run (error too) */
    val denied: PolicyDenial? = null,
    val exitCode: Long? = null,
    val passed: Long? = null,
    val failed: Long? = null,
    val errors: Long? = null,
    val skipped: Long? = null,
    val xfailed: Long? = null,
    val xpassed: Long? = null,
    /** by the user's -k, -m (pytest's count) */
    val deselected: Long? = null,
    /** as pytest's summary line counts them */
    val warnings: Long? = null,
    /** as pytest's summary line counts them (0 where it shows none) */
    val subtestsPassed: Long? = null,
    val flaky: Long? = null,
    /** pytest's counts line of these counts, in its order and words */
    val counts: String? = null,
    val ranFiles: Long? = null,
    val cachedFiles: Long? = null,
    val notRunFiles: Long? = null,
    val timeSavedS: Double? = null,
    val wallS: Double? = null,
) : RunRef()

data class EndParams(
    val runId: String? = null,
    val cancelled: Boolean? = null,
    val error: ErrorInfo? = null,
    val summary: RunSummary? = null,
)

data class RestartResult(
    val root: String? = null,
    /** the pid of the daemon stopped, if any */
    val stopped: Long? = null,
    /** the pid of the daemon now serving the workspace */
    val pid: Long? = null,
)

/** What every message about a run starts with: which run, where, what it runs. */
open class RunRef(
    val runId: String? = null,
    val root: String? = null,
    val kind: String? = null,
    val label: String? = null,
)
