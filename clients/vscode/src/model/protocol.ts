// Generated from server/methods.py by `python -m maestro.server.codegen`: do not edit.
// The Maestro language server's custom protocol (docs/lsp.md). Pure types and constants:
// no `vscode` import, so the unit tests run under `node --test`.

/** The protocol version this file was generated for: the server advertises its own
 * as `capabilities.experimental.maestroProtocol`. */
export const PROTOCOL_VERSION = 2;

export const METHODS = {
  impactedTargets: "maestro/impactedTargets",
  cacheStats: "maestro/cacheStats",
  explain: "maestro/explain",
  status: "maestro/status",
  discover: "maestro/testExplorer/discover",
  run: "maestro/testExplorer/run",
  cancel: "maestro/testExplorer/cancel",
  testResults: "maestro/testResults",
  runStarted: "maestro/runStarted",
  runProgress: "maestro/runProgress",
  runFinished: "maestro/runFinished",
  statusChanged: "maestro/statusChanged",
  policyIncident: "maestro/policyIncident",
  remoteBackoff: "maestro/remoteBackoff",
  didChange: "maestro/testExplorer/didChange",
  begin: "maestro/testExplorer/begin",
  progress: "maestro/testExplorer/progress",
  end: "maestro/testExplorer/end",
} as const;

/** Server command ids (vscode-languageclient registers them from the server). */
export const SERVER_COMMANDS = {
  runNode: "maestro.runNode",
  runFile: "maestro.runFile",
  runImpacted: "maestro.runImpacted",
  runAll: "maestro.runAll",
  cancel: "maestro.cancel",
  cacheStats: "maestro.cacheStats",
  explain: "maestro.explain",
  status: "maestro.status",
  restartDaemon: "maestro.restartDaemon",
} as const;

/** Params and result type of each request, params of each notification. */
export interface Requests {
  "maestro/impactedTargets": { params: ImpactedTargetsParams; result: ImpactedResult };
  "maestro/cacheStats": { params: WorkspaceParams; result: CacheStatsInfo };
  "maestro/explain": { params: ExplainParams; result: ExplainResult };
  "maestro/status": { params: Empty; result: StatusInfo };
  "maestro/testExplorer/discover": { params: DiscoverParams; result: DiscoverResult };
  "maestro/testExplorer/run": { params: ExplorerRunParams; result: RunStarted };
  "maestro/testExplorer/cancel": { params: CancelParams; result: CancelResult };
}
export interface Notifications {
  "maestro/testResults": TestResultsParams;
  "maestro/runStarted": RunAccepted;
  "maestro/runProgress": RunProgressParams;
  "maestro/runFinished": RunResult;
  "maestro/statusChanged": StatusChangedParams;
  "maestro/policyIncident": PolicyIncidentParams;
  "maestro/remoteBackoff": RemoteBackoffParams;
  "maestro/testExplorer/didChange": DidChangeParams;
  "maestro/testExplorer/begin": BeginParams;
  "maestro/testExplorer/progress": ProgressParams;
  "maestro/testExplorer/end": EndParams;
}

export interface DocumentRef {
  uri: string;
}

export interface ImpactedTargetsParams extends WorkspaceParams {
  /** a git ref: what changed since it */
  since?: string | null;
  /** true: the memoised cache state; 'refresh': fetch it (waits at most 2 s); false: leave the column out */
  cacheState?: boolean | "refresh";
  /** only test targets */
  testsOnly?: boolean;
  /** also the structured reason hops */
  reasons?: boolean;
}

/** A row's cache column: would the test file be served from the cache? */
export interface CacheCell {
  state: "cached" | "stale" | "unsaved" | "unknown";
  describe: string;
  /** inputs that differ */
  changed: string[];
}

export interface ChangeModel {
  path: string;
  status: "modified" | "added" | "deleted";
}

export interface HopModel {
  /** the dependent (file or target) */
  source: string;
  /** what it depends on */
  target: string;
  /** import, init, conftest, plugin, dynamic, global, src, dep, ... */
  kind: string;
  /** line in `source` (0 when not applicable) */
  line: number;
  /** module as written, glob, or section */
  detail: string;
  /** human-readable reason */
  text: string;
}

export interface ImpactedRow {
  target: string;
  /** the test file's URI (null: a declared target) */
  uri: string | null;
  kind: "test" | "declared";
  /** the changed path the reason chain ends at */
  changed: string;
  distance: number;
  /** the change is an unsaved buffer */
  unsaved: boolean;
  /** the reason chain in words, one line */
  why: string;
  cache: CacheCell;
  last: LastSummary;
  /** target down to the change (reasons: true) */
  reason?: HopModel[];
}

/** The test file's last known outcomes (zeros: never run in this session). */
export interface LastSummary {
  passed: number;
  failed: number;
  tests: number;
}

export interface ImpactedResult {
  root: string;
  /** what the change set was made of */
  source: "paths" | "buffers" | "mixed" | "workingTree" | "since";
  changes: ChangeModel[];
  impacted: ImpactedRow[];
  /** test targets among the rows */
  count: number;
  /** changes no target reaches yet, and why (an extension module's C source: tests import the built module, which must be rebuilt) */
  notes: string[];
  daemonMs: number;
  elapsedMs: number;
}

/** Which workspace a request is about: a document in it, or its root; default: the first workspace folder. */
export interface WorkspaceParams {
  /** workspace root path or file URI */
  root?: string | null;
  textDocument?: DocumentRef | null;
  /** a document URI */
  uri?: string | null;
  /** several document URIs */
  uris?: string[];
}

/** The daemon's cache counters of a workspace, camelCase like every editor answer. */
export interface CacheStatsInfo {
  /** the cache directory */
  path: string;
  hits: number;
  misses: number;
  blobs: number;
  actions: number;
  bytes: number;
  blobBytes: number;
  actionBytes: number;
  cpuSecondsSaved: number;
  wallSecondsSaved: number;
  evictions: number;
  quarantined: number;
  maxBytes: number | null;
  fileBytes: number;
  root: string;
  hitRate: number | null;
}

export interface ExplainParams extends WorkspaceParams {
  /** node id, root-relative path or URI */
  target?: string | null;
  /** same as target */
  nodeid?: string | null;
  /** an input: why does target depend on it? */
  path?: string | null;
}

/** A decision as it is kept, exported and explained: the input is redacted. */
export interface DecisionRecord {
  id: string;
  /** RFC 3339, UTC */
  time: string;
  point: "run" | "select" | "cache" | "coordinator" | "plugin";
  executionId: string;
  schema: string;
  /** the input, every string redacted */
  input: Record<string, unknown>;
  result: "allow" | "deny" | "queue";
  rules: FiredRule[];
  /** a deny's advice: retry after this */
  retryAfterMs: number | null;
  /** how long a queued run waited */
  waitedMs: number | null;
  /** test files it concerned */
  targets: string[];
  policy: string;
  error: string | null;
  /** one line to show, rules and remediation included */
  summary: string;
}

export interface ExplainCache {
  state: "cached" | "stale" | "unknown";
  reason: string | null;
  describe: string;
  /** cache-key inputs that changed */
  changedInputs: string[];
}

/** One rule that fired: its id and remediation (from its METADATA annotation). */
export interface FiredRule {
  rule: string;
  kind: "deny" | "queue" | "include" | "keep" | "warn" | "quarantine";
  layer: "builtin" | "workspace" | "team";
  message: string;
  remediation: string;
  title: string;
  retryAfterMs: number | null;
  /** epoch ms to retry at, when the rule said so (the retry delay is then counted from the decision's now_ms) */
  retryAtMs: number | null;
  target: string | null;
  /** recorded, not enforced (shadow rule set) */
  shadow: boolean;
}

export interface RaisedAt {
  path: string;
  line: number | null;
}

/** One test's last known outcome. */
export interface TestResult {
  id: string;
  file: string;
  /** passed, failed, error, skipped, xfailed, xpassed */
  outcome: string;
  durationS: number;
  /** what it failed or skipped with, in short */
  message: string | null;
  /** of a failed or errored test: pytest's whole report of it (the traceback and the assertion diff, as its terminal shows it), redacted, cut to its head and tail with a marker when long; null otherwise and for results stored before it was kept */
  details: string | null;
  /** 1-based line of the test's def */
  line: number | null;
  /** 1-based failing line in the test file */
  testLine: number | null;
  raisedAt: RaisedAt | null;
  cached: boolean;
  flaky: boolean;
  runId: string | null;
  /** when its run started (epoch seconds) */
  ranAt: number | null;
  /** "local", or the host of a team-cache result */
  ranOn: string | null;
}

export interface WhyReport {
  schema?: string;
  target: string;
  path: string;
  depends: boolean;
  reason: HopModel[];
}

export interface ExplainResult {
  root: string;
  target: string;
  file: string;
  decision: "re-run" | "cached" | "skipped (not impacted)" | "unknown";
  selected: boolean;
  impact: ImpactedRow | null;
  cache: ExplainCache;
  last: TestResult[];
  /** the daemon's `why`, when path is given */
  why: WhyReport | null;
  reasons: string[];
  /** policy decisions about the test, newest first (as maestro explain) */
  decisions: DecisionRecord[];
  text: string;
}

export type Empty = Record<string, never>;

export interface CodeLensSettings {
  enabled?: boolean;
  impactedOnSource?: boolean;
  testFunctions?: boolean;
}

/** The daemon's sync with the team coordinator (`[tool.maestro.remote]`). */
export interface RemoteStatus {
  remote_hits?: number;
  remote_misses?: number;
  remote_errors?: number;
  corrupt_refused?: number;
  uploaded?: number;
  upload_failures?: number;
  dropped?: number;
  last_upload_at?: number | null;
  /** uploads stopped because the last scan found a secret in them */
  egress_blocked?: number;
  /** uploads sent with a secret in them (secrets.redaction.enforce off) */
  egress_flagged?: number;
  last_error?: string | null;
  last_error_at?: number | null;
  url: string;
  tenant: string;
  /** the API key's role, once a token is held */
  role?: string | null;
  /** on, pending, or off and why */
  uploads?: string;
  queue_length?: number;
  queue_bytes?: number;
  telemetry_queue?: number;
  /** closed, open or half-open (remote reads) */
  circuit?: string;
  retry_at?: number | null;
  /** the coordinator asked us to back off (429 + Retry-After) until this time (epoch s); reads use the local cache and uploads wait meanwhile */
  backoff_until?: number | null;
  /** the coordinator's refusing rule */
  backoff_rule?: string | null;
  /** how to fix the last error when it is the configuration's (the API key's variable, the coordinator URL and the file that sets them) */
  hint?: string | null;
  telemetry?: TelemetryUploadStatus | null;
  team_model?: TeamModelStatus | null;
}

/** Before Python 3.12: the idle daemon's re-recording, traced, of the results an untraced first run stored (the ``retrace`` setting). */
export interface RetraceStatus {
  enabled?: boolean;
  /** off (the retrace setting), idle, waiting (for the daemon to be idle), running, held (the policy refused it for now) or not needed (3.12+, MAESTRO_TRACE set) */
  state?: string;
  /** why it is off, held or not needed */
  reason?: string;
  /** test files waiting to be re-recorded */
  pending?: number;
  runs?: number;
  /** traced results stored */
  stored?: number;
}

export interface RunStatus extends RunRef {
  done: number;
  total: number | null;
  elapsedS: number;
}

export interface Settings {
  interpreter?: string | null;
  speculation?: boolean | null;
  coordinatorUrl?: string | null;
  daemonAutostart?: boolean;
  codeLens?: CodeLensSettings;
  diagnostics?: boolean;
  debounceMs?: number;
  requestTimeoutS?: number;
  runOnSave?: boolean;
}

/** The daemon's speculation (`ml.speculation`) and the model ranking its runs. */
export interface SpeculationStatus {
  /** speculative runs completed */
  runs?: number;
  /** speculative runs cancelled by a newer edit */
  cancelled?: number;
  /** saves after which speculation did not start (budget, throttle, busy) */
  skipped?: number;
  /** explicit-run files served by speculation */
  hits?: number;
  /** explicit-run files that had to run */
  misses?: number;
  /** speculative results replaced unused */
  wasted?: number;
  /** CPU-seconds, cancelled runs included */
  cpu_s?: number;
  /** seconds from a save to its first failing result */
  first_failure_s?: number[];
  last?: string;
  enabled?: boolean;
  /** off, idle, running or throttled */
  state?: string;
  throttled_reason?: string;
  /** the ranking model in use */
  model?: string;
  /** why a stored model was refused */
  model_error?: string;
  /** speculative results not used yet */
  pending?: number;
  used_share?: number | null;
  /** unused share of spec. CPU */
  waste_share?: number | null;
  cpu_last_minute_s?: number;
}

export interface StatusResult {
  pid: number;
  root: string;
  uptime_s: number;
  protocol: number;
  maestro_version: string;
  python_version: string;
  connections: number;
  requests_in_flight: number;
  idle_timeout_s: number;
  log_path: string;
  socket_path: string;
  state_dir: string;
  methods: string[];
  /** coordinator sync; None when no remote is configured */
  remote?: RemoteStatus | null;
  /** speculation and telemetry; None without a test service */
  speculation?: SpeculationStatus | null;
  /** re-recording of untraced results; None without a test service */
  retrace?: RetraceStatus | null;
}

/** The team model: what the daemon's last fetch did and which model ranks tests. */
export interface TeamModelStatus {
  /** team, own or heuristic */
  ranking?: string;
  /** the ranking model, as `model status` says */
  description?: string;
  fetches?: number;
  last_fetch_at?: number | null;
  /** installed vN, unchanged, none published, skipped (backoff), refused or failed and why */
  last_fetch?: string | null;
  /** seconds between fetches; 0: only `maestro model pull` */
  every_s: number;
}

/** What the daemon's telemetry uploader did (`telemetry_upload_every_s`). */
export interface TelemetryUploadStatus {
  batches_sent?: number;
  rows_sent?: number;
  /** sends that failed and are retried (waiting out a Retry-After is not one) */
  failures?: number;
  last_sent_at?: number | null;
  last_error?: string | null;
  rounds?: number;
  last_round_at?: number | null;
  /** why the last round queued nothing (backoff, the key's role, queue full) */
  skipped?: string | null;
  batches_queued?: number;
  rows_queued?: number;
  /** seconds between rounds; 0: uploads off */
  every_s: number;
}

export interface WorkspaceStatus {
  root: string;
  state: "idle" | "connecting" | "connected" | "disconnected" | "error";
  pid: number | null;
  connects: number;
  restarts: number;
  lastError: string | null;
  latencyMs?: number;
  /** the daemon's own status */
  daemon: StatusResult | null;
}

export interface StatusInfo {
  version: string;
  /** the initialization options in effect */
  settings: Settings;
  testExplorer: boolean;
  workspaces: WorkspaceStatus[];
  runs: RunStatus[];
}

export interface DiscoverParams extends WorkspaceParams {
}

/** An LSP position (0-based line and UTF-16 character). */
export interface Position {
  line: number;
  character: number;
}

export interface Range {
  start: Position;
  end: Position;
}

/** A test file, class or function as the explorer shows it. */
export interface TestItem {
  /** root-relative path or node id */
  id: string;
  label: string;
  kind: "file" | "class" | "function";
  uri: string;
  range: Range | null;
  children: TestItem[];
}

export interface DiscoverResult {
  root: string;
  files: TestItem[];
}

export interface ExplorerRunParams extends WorkspaceParams {
  /** node ids or files; absent: every test (empty: an error) */
  include?: string[] | null;
  /** node ids deselected */
  exclude?: string[];
}

export interface RunStarted {
  runId: string;
}

export interface CancelParams {
  /** absent: every active run */
  runId?: string | null;
}

export interface CancelResult {
  /** the run ids cancelled */
  cancelled: string[];
}

/** A batch of a run's test results, as they arrive: results of tests that ran, as they finish, then those the run served from the cache or carried. Each test comes once; a test sent again (a flaky rerun's final word) replaces its earlier result. */
export interface TestResultsParams {
  runId: string;
  root: string;
  tests: TestResult[];
}

/** A run command's answer, sent at once: the run goes on, its outcome arrives as ``maestro/runFinished`` with the same run id. */
export interface RunAccepted extends RunRef {
  /** active runs this one cancelled */
  superseded: string[];
}

/** A run's counts so far: ``total`` is the test nodes selected to run (null until pytest collected), ``cachedTests`` those served from the cache without running. */
export interface RunProgressParams {
  runId: string;
  root: string;
  done: number;
  total: number | null;
  cachedTests: number;
  message: string;
}

/** A failure on the wire; ``code`` is the ``code`` of a MaestroError subclass. */
export interface ErrorInfo {
  code: string;
  message: string;
  hint?: string | null;
  where?: string | null;
  data?: Record<string, unknown>;
}

/** A test file's part in a finished run (its tests' results came in ``maestro/testResults``). */
export interface FileOutcome {
  target: string;
  uri: string;
  /** served from the cache, nothing run */
  cached: boolean;
  /** its result was stored in the cache */
  stored: boolean;
  describe: string;
  /** how many test results the file has */
  tests: number;
}

/** Why the policy refused a run and when to try again. */
export interface PolicyDenial {
  /** the decision: rule and its message */
  message: string;
  /** what to do about it */
  remediation: string | null;
  /** retry after this (null: no advice) */
  retryAfterMs: number | null;
  /** for maestro explain --execution */
  executionId: string;
}

/** A run's end: its counts and its files; the tests' results are not repeated here. */
export interface RunResult extends RunSummary {
  files?: FileOutcome[];
  /** the tests this run sent results of in maestro/testResults */
  results?: number;
}

export interface StatusChangedParams {
  root: string;
  state: "idle" | "connecting" | "connected" | "disconnected" | "error";
  pid: number | null;
  restarts: number;
  lastError: string | null;
}

/** A team policy bundle was quarantined (``active``; the last good one stays in force) or a good one cleared the incident. */
export interface PolicyIncidentParams {
  root: string;
  active: boolean;
  reason: string;
  message: string;
  revision: string | null;
}

/** The team coordinator asked the workspace daemon to back off (429 + Retry-After): reads come from the local cache and uploads wait until ``until``; ``active`` false: it ended. */
export interface RemoteBackoffParams {
  root: string;
  active: boolean;
  /** epoch seconds */
  until: number | null;
  /** the coordinator's refusing rule */
  rule: string | null;
  message: string;
}

/** A test file's items changed (file null: it has none now); uri and file both null: files appeared or vanished, rediscover everything. */
export interface DidChangeParams {
  root: string;
  uri: string | null;
  file: TestItem | null;
}

export interface BeginParams {
  runId: string;
  kind: "node" | "file" | "impacted" | "all" | "explorer" | "save";
  label: string;
  root: string;
}

export interface Location {
  uri: string;
  range: Range;
}

export interface ProgressMessage {
  /** what it failed with, in short */
  text: string;
  location: Location;
  /** where it raised, outside the test */
  related: Location | null;
  /** pytest's whole report of the failure, as maestro/testResults says */
  details?: string | null;
}

export interface ProgressParams {
  runId: string;
  /** the node id without its parametrization, or a file */
  id: string;
  nodeid?: string;
  state: "enqueued" | "started" | "passed" | "failed" | "errored" | "skipped";
  durationMs?: number;
  cached?: boolean;
  describe?: string | null;
  message?: ProgressMessage | null;
}

/** A finished, refused or cancelled run; the counts only once it ran. */
export interface RunSummary extends RunRef {
  done?: number;
  total?: number | null;
  elapsedS?: number;
  message?: string;
  cancelled: boolean;
  error: ErrorInfo | null;
  /** the policy refused the run (error too) */
  denied?: PolicyDenial;
  exitCode?: number;
  passed?: number;
  failed?: number;
  errors?: number;
  skipped?: number;
  xfailed?: number;
  xpassed?: number;
  /** by the user's -k, -m (pytest's count) */
  deselected?: number;
  /** as pytest's summary line counts them */
  warnings?: number;
  /** as pytest's summary line counts them (0 where it shows none) */
  subtestsPassed?: number;
  flaky?: number;
  /** pytest's counts line of these counts, in its order and words */
  counts?: string;
  ranFiles?: number;
  cachedFiles?: number;
  notRunFiles?: number;
  timeSavedS?: number;
  wallS?: number;
}

export interface EndParams {
  runId: string;
  cancelled: boolean;
  error: ErrorInfo | null;
  summary: RunSummary;
}

export interface RestartResult {
  root: string;
  /** the pid of the daemon stopped, if any */
  stopped: number | null;
  /** the pid of the daemon now serving the workspace */
  pid: number;
}

/** What every message about a run starts with: which run, where, what it runs. */
export interface RunRef {
  runId: string;
  root: string;
  kind: "node" | "file" | "impacted" | "all" | "explorer" | "save";
  label: string;
}
