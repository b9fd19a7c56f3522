import { test } from "node:test";
import * as assert from "node:assert/strict";
import { decisionLines, deniedText, explainText, finishedLine, retryText } from "../src/model/runs";
import type { DecisionRecord, ExplainResult, RunResult } from "../src/model/protocol";

const base: RunResult = { runId: "run-1", root: "/ws", kind: "file", label: "run tests/test_a.py", cancelled: false, error: null };

test("a finished run with failures is a warning with its counts", () => {
  const line = finishedLine({ ...base, passed: 2, failed: 1, cachedFiles: 1 });
  assert.deepEqual(line, { text: "run tests/test_a.py: 2 passed, 1 failed, 1 file cached", severity: "warning" });
});

test("a run with counts keeps the server's note that it ran the saved files", () => {
  const note = "ran the saved files: pkg/core.py has unsaved changes";
  const line = finishedLine({ ...base, passed: 2, cachedFiles: 1, message: note });
  assert.deepEqual(line, { text: `run tests/test_a.py: 2 passed, 1 file cached; ${note}`, severity: "info" });
});

test("a run in which pytest stopped before some files finished says how many, as a warning", () => {
  const line = finishedLine({ ...base, passed: 97, cachedFiles: 3, notRunFiles: 10 });
  assert.deepEqual(line, {
    text: "run tests/test_a.py: 97 passed, 3 files cached, 10 files did not finish (not cached)",
    severity: "warning",
  });
});

test("a finished run says its counts as pytest does: the server's line, in pytest's order and words", () => {
  const r = { ...base, passed: 480, failed: 4, deselected: 30, errors: 1, cachedFiles: 2 };
  const line = finishedLine({ ...r, counts: "4 failed, 480 passed, 30 deselected, 1 error" });
  assert.equal(line.text, "run tests/test_a.py: 4 failed, 480 passed, 30 deselected, 1 error, 2 files cached");
  assert.equal(line.severity, "warning");
});

test("a superseded run says so, quietly", () => {
  const line = finishedLine({ ...base, cancelled: true, message: "superseded by run-2" });
  assert.deepEqual(line, { text: "run tests/test_a.py: superseded by run-2", severity: "info" });
});

test("nothing impacted is a message, an error is an error", () => {
  assert.equal(finishedLine({ ...base, kind: "impacted", message: "no impacted tests", files: [] }).text, "no impacted tests");
  const err = finishedLine({ ...base, error: { code: "daemon", message: "daemon died", hint: null } });
  assert.equal(err.severity, "error");
});

const denial = {
  message: "run denied (retry in 90 s): calc tests are frozen (rule ops.release_freeze); remediation: wait for the release",
  remediation: "wait for the release",
  retryAfterMs: 90000,
  executionId: "ex-1",
};

test("a run the policy refused is a warning with the decision, remediation and retry time", () => {
  const line = finishedLine({
    ...base,
    error: { code: "policy_denied", message: denial.message, hint: "wait for the release; maestro explain --execution ex-1", where: null, data: {} },
    denied: denial,
    message: "run refused by policy",
  });
  assert.equal(line.severity, "warning");
  assert.equal(line.shownByServer, true); // the server's showMessage is the notification
  assert.match(line.text, /^run tests\/test_a\.py: run refused by policy: run denied \(retry in 90 s\)/);
  assert.match(line.text, /remediation: wait for the release/);
});

test("a refusal whose summary lacks them gets the remediation and a readable retry time", () => {
  const text = deniedText({ message: "run denied: closed (rule windows.closed)", remediation: "wait", retryAfterMs: 5_400_000, executionId: "e" });
  assert.equal(text, "run refused by policy: run denied: closed (rule windows.closed). Remediation: wait (retry in 5400 s (~90 min))");
  assert.equal(retryText(null), "");
  assert.equal(retryText(7_200_000), "retry in 7200 s (~2.0 h)");
  assert.equal(deniedText({ message: "m", remediation: null, retryAfterMs: null, executionId: "" }), "run refused by policy: m");
});

test("explain lists the policy decisions with remediation and retry", () => {
  const rule = { kind: "deny", layer: "team", title: "", retryAtMs: null, target: null } as const;
  const decision: DecisionRecord = {
    id: "d1", time: "2026-12-03T14:00:00Z", point: "run", executionId: "ex-1", result: "deny",
    schema: "maestro.policy.run/1", input: {}, targets: [], policy: "", error: null,
    summary: "run denied (retry in 90 s): calc tests are frozen (rule ops.release_freeze)",
    rules: [
      { ...rule, rule: "ops.release_freeze", message: "calc tests are frozen", remediation: "wait for the release", retryAfterMs: 90000, shadow: false },
      { ...rule, rule: "team.shadowed", message: "x", remediation: "ignored", retryAfterMs: null, shadow: true },
    ],
    retryAfterMs: 90000, waitedMs: null,
  };
  assert.deepEqual(decisionLines(decision), [
    "2026-12-03T14:00:00Z run denied (retry in 90 s): calc tests are frozen (rule ops.release_freeze)",
    "  ops.release_freeze: remediation: wait for the release",
    "  retry in 90 s (execution ex-1)",
  ]);
  const res = {
    reasons: ["selected: pkg/calc.py changed", "policy: run denied ..."], decisions: [decision],
  } as unknown as ExplainResult;
  const text = explainText(res);
  assert.match(text, /^selected: pkg\/calc\.py changed\npolicy decisions \(1, newest first\):\n  2026/);
  assert.ok(!text.includes("policy: run denied ..."));
  assert.equal(explainText({ reasons: ["r"], decisions: [] } as unknown as ExplainResult), "r\npolicy: no decisions about it");
});
