import { test } from "node:test";
import * as assert from "node:assert/strict";
import { finishedLine } from "../src/model/runs";
import type { RunResult } from "../src/model/protocol";

const base: RunResult = { runId: "run-1", root: "/ws", kind: "file", label: "run tests/test_a.py", cancelled: false, error: null };

test("a finished run with failures is a warning with its counts", () => {
  const line = finishedLine({ ...base, passed: 2, failed: 1, cachedFiles: 1 });
  assert.deepEqual(line, { text: "run tests/test_a.py: 2 passed, 1 failed, 1 files cached", severity: "warning" });
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
