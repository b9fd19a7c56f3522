import { test } from "node:test";
import * as assert from "node:assert/strict";
import { clockOf, formatStatus, hitRate, overallState } from "../src/model/status";
import { rowsOf, summary } from "../src/model/impacted";
import type { ImpactedResult, StatusInfo, WorkspaceStatus } from "../src/model/protocol";

const ws = (root: string, state: WorkspaceStatus["state"], pid: number | null = null): WorkspaceStatus => ({
  root,
  state,
  pid,
  connects: 1,
  restarts: 0,
  lastError: null,
  daemon: null,
});

const connected: StatusInfo = {
  version: "0.1.0",
  settings: {},
  testExplorer: true,
  workspaces: [ws("/ws", "connected", 42)],
  runs: [],
};

test("hit rate from hitRate, else hits/misses", () => {
  assert.equal(hitRate({ hitRate: 0.734 }), "73%");
  assert.equal(hitRate({ hits: 1, misses: 3 }), "25%");
  assert.equal(hitRate({ hits: 0, misses: 0 }), null);
  assert.equal(hitRate(null), null);
});

test("status bar: connected with the cache hit rate", () => {
  const v = formatStatus(connected, { hits: 3, misses: 1, hitRate: 0.75, wallSecondsSaved: 2.5 });
  assert.equal(v.text, "$(check) Maestro · cache 75%");
  assert.equal(v.severity, "ok");
  assert.match(v.tooltip, /\/ws: daemon connected \(pid 42\)/);
  assert.match(v.tooltip, /Cache: 3 hits, 1 misses \(75%\)/);
  assert.match(v.tooltip, /Time saved: 2\.5 s/);
});

test("status bar: running, down, error, stopped, starting", () => {
  const running = formatStatus({ ...connected, runs: [{ runId: "1", root: "/ws", kind: "file", label: "t.py", done: 2, total: 5, elapsedS: 1 }] }, null);
  assert.equal(running.text, "$(sync~spin) Maestro: running 2/5");
  const down = formatStatus({ ...connected, workspaces: [ws("/ws", "disconnected")] }, null);
  assert.equal(down.severity, "warning");
  assert.equal(overallState({ ...connected, workspaces: [ws("a", "connected"), ws("b", "error")] }), "error");
  assert.equal(formatStatus(null, null, "stopped").severity, "error");
  assert.equal(formatStatus(null, null, "starting").text, "$(sync~spin) Maestro");
});

test("impacted rows: cache state, last result, reason chain; summary notes unsaved edits", () => {
  const res: ImpactedResult = {
    root: "/ws",
    source: "buffers",
    changes: [{ path: "pkg/calc.py", status: "modified" }],
    daemonMs: 1,
    elapsedMs: 2,
    count: 2,
    notes: [],
    impacted: [
      {
        target: "tests/test_calc.py",
        uri: "file:///ws/tests/test_calc.py",
        kind: "test",
        changed: "pkg/calc.py",
        distance: 1,
        unsaved: true,
        why: "imports pkg.calc (line 1)",
        reason: [
          { source: "tests/test_calc.py", target: "pkg/calc.py", kind: "import", line: 1, detail: "pkg.calc", text: "from pkg.calc import add" },
        ],
        cache: { state: "stale", describe: "inputs changed: pkg/calc.py", changed: ["pkg/calc.py"] },
        last: { passed: 2, failed: 1, tests: 3 },
      },
      {
        target: "tests/test_other.py",
        uri: "file:///ws/tests/test_other.py",
        kind: "test",
        changed: "pkg/calc.py",
        distance: 2,
        unsaved: false,
        why: "imports pkg.util -> pkg.calc",
        cache: { state: "cached", describe: "cached", changed: [] },
        last: { passed: 1, failed: 0, tests: 1 },
      },
    ],
  };
  const rows = rowsOf(res);
  assert.equal(rows.length, 2);
  assert.equal(rows[0].description, "stale · 1 failed · unsaved edit");
  assert.equal(rows[0].icon, "error");
  assert.equal(rows[0].children[0].label, "from pkg.calc import add");
  assert.equal(rows[0].children[0].description, "import line 1");
  assert.equal(rows[1].icon, "pass");
  // the rows are test files: "2 impacted tests" above a change that runs 40 read as 2 tests
  assert.equal(summary(res, "pkg/calc.py"), "2 impacted test files by pkg/calc.py (unsaved edit)");
  assert.equal(summary({ ...res, source: "paths", count: 1 }), "1 impacted test file");
  assert.equal(summary({ ...res, source: "paths", count: 0, impacted: [] }), "no impacted tests");
});

test("status bar: the coordinator's backoff is shown until it ends, the rule in the tooltip", () => {
  const now = Date.UTC(2026, 11, 3, 15, 0, 0);
  const until = now / 1000 + 30;
  const backing: StatusInfo = {
    ...connected,
    workspaces: [
      {
        ...ws("/ws", "connected", 42),
        daemon: {
          pid: 42, root: "/ws", uptime_s: 1, protocol: 1, maestro_version: "0.1.0", python_version: "3.11",
          connections: 1, requests_in_flight: 0, idle_timeout_s: 0, log_path: "", socket_path: "", state_dir: "",
          methods: [],
          remote: { url: "http://c", tenant: "t", backoff_until: until, backoff_rule: "rate.tenant_burst" },
        },
      },
    ],
  };
  const v = formatStatus(backing, null, "running", now);
  assert.equal(v.text, `$(clock) Maestro: team cache wait until ${clockOf(until)}`);
  assert.equal(v.severity, "warning");
  assert.match(v.tooltip, /Team cache asked us to wait until \d\d:\d\d:\d\d \(rule rate\.tenant_burst\); working from the local cache/);
  // past the advised time: back to normal, nothing about the wait
  const after = formatStatus(backing, null, "running", until * 1000 + 1);
  assert.equal(after.text, "$(check) Maestro");
  assert.doesNotMatch(after.tooltip, /wait until/);
  assert.match(clockOf(until), /^\d\d:\d\d:\d\d$/);
});
