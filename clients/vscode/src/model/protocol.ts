// Types of the Maestro server protocol (docs/lsp.md). Pure: no `vscode` import, so the unit tests
// run under `node --test`.

export interface Position {
  line: number;
  character: number;
}
export interface Range {
  start: Position;
  end: Position;
}
export interface Location {
  uri: string;
  range: Range;
}

/** Server command ids (registered by vscode-languageclient from executeCommandProvider). */
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

export const METHODS = {
  impactedTargets: "maestro/impactedTargets",
  cacheStats: "maestro/cacheStats",
  explain: "maestro/explain",
  status: "maestro/status",
  testResults: "maestro/testResults",
  statusChanged: "maestro/statusChanged",
  discover: "maestro/testExplorer/discover",
  run: "maestro/testExplorer/run",
  cancel: "maestro/testExplorer/cancel",
  didChange: "maestro/testExplorer/didChange",
  begin: "maestro/testExplorer/begin",
  progress: "maestro/testExplorer/progress",
  end: "maestro/testExplorer/end",
} as const;

export type ItemKind = "file" | "class" | "function";

export interface TestItem {
  id: string;
  label: string;
  kind: ItemKind;
  uri: string;
  range: Range | null;
  children: TestItem[];
}

export interface DiscoverResult {
  root: string;
  files: TestItem[];
}

export interface DidChangeParams {
  root: string;
  uri: string | null;
  file: TestItem | null;
}

export interface BeginParams {
  runId: string;
  kind: string;
  label: string;
  root: string;
}

export type ProgressState = "enqueued" | "started" | "passed" | "failed" | "errored" | "skipped";

export interface ProgressMessage {
  text: string;
  location: Location;
  related: Location | null;
}

export interface ProgressParams {
  runId: string;
  id: string;
  nodeid?: string;
  state: ProgressState;
  durationMs?: number;
  cached?: boolean;
  describe?: string | null;
  message?: ProgressMessage | null;
}

export interface EndParams {
  runId: string;
  cancelled: boolean;
  error: { code?: string; message: string; hint?: string } | null;
  summary: Record<string, unknown>;
}

export interface StatusChangedParams {
  root: string;
  state: "connecting" | "connected" | "disconnected" | "error" | string;
  pid?: number | null;
  restarts?: number;
  lastError?: string | null;
}

export interface WorkspaceStatus {
  root: string;
  state: string;
  pid?: number | null;
  connects?: number;
  restarts?: number;
  lastError?: string | null;
  latencyMs?: number | null;
}

export interface RunStatus {
  runId: string;
  kind: string;
  label: string;
  done?: number;
  total?: number;
  elapsedS?: number;
}

export interface StatusResult {
  version?: string;
  testExplorer?: boolean;
  workspaces: WorkspaceStatus[];
  runs: RunStatus[];
}

export interface CacheStats {
  root?: string;
  hits?: number;
  misses?: number;
  hit_rate?: number | null;
  actions?: number;
  bytes?: number;
  wall_seconds_saved?: number;
  cpu_seconds_saved?: number;
}

export interface ReasonStep {
  source?: string;
  target?: string;
  kind?: string;
  line?: number | null;
  detail?: string | null;
  text?: string | null;
}

export interface ImpactedRow {
  target: string;
  uri?: string | null;
  kind?: string;
  changed?: boolean;
  distance?: number;
  unsaved?: boolean;
  why?: string | null;
  reason?: ReasonStep[];
  cache?: { state: string; describe?: string | null; changed?: string[] } | null;
  last?: { passed?: number; failed?: number; tests?: number } | null;
}

export interface ImpactedResult {
  root: string;
  source: string;
  changes?: { path: string; status: string }[];
  count: number;
  elapsedMs?: number;
  impacted: ImpactedRow[];
}

export interface RunResult {
  runId: string | null;
  message?: string;
  label?: string;
  cancelled?: boolean;
  error?: { code?: string; message: string; hint?: string } | null;
  passed?: number;
  failed?: number;
  errors?: number;
  skipped?: number;
  cachedFiles?: number;
  ranFiles?: number;
  timeSavedS?: number;
  wallS?: number;
}
