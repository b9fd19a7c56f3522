import { test } from "node:test";
import * as assert from "node:assert/strict";
import { allIds, dedupeNested, folderChain, paramChild, progressAction, resolveId, runParams, RunRouter } from "../src/model/explorer";
import type { BeginParams, EndParams, ProgressParams, TestItem } from "../src/model/protocol";

const range = (l: number) => ({ start: { line: l, character: 0 }, end: { line: l, character: 0 } });

test("passed/skipped/started/enqueued map one to one", () => {
  assert.deepEqual(progressAction({ runId: "r", id: "t.py::a", state: "passed", durationMs: 3, cached: true }), {
    op: "passed",
    id: "t.py::a",
    durationMs: 3,
    cached: true,
  });
  assert.equal(progressAction({ runId: "r", id: "t.py", state: "enqueued", cached: false }).op, "enqueued");
  assert.equal(progressAction({ runId: "r", id: "t.py::a", state: "started" }).op, "started");
  assert.equal(progressAction({ runId: "r", id: "t.py::a", state: "skipped" }).op, "skipped");
});

test("a failure carries the failing line and the raising line", () => {
  const p: ProgressParams = {
    runId: "r",
    id: "tests/test_calc.py::test_div_zero",
    nodeid: "tests/test_calc.py::test_div_zero",
    state: "failed",
    durationMs: 12,
    message: {
      text: "ZeroDivisionError: no zero please",
      location: { uri: "file:///ws/tests/test_calc.py", range: range(8) },
      related: { uri: "file:///ws/pkg/calc.py", range: range(6) },
    },
  };
  const a = progressAction(p);
  assert.equal(a.op, "failed");
  if (a.op !== "failed") return;
  assert.equal(a.messages.length, 2);
  assert.equal(a.messages[0].text, "ZeroDivisionError: no zero please");
  assert.equal(a.messages[0].location?.range.start.line, 8);
  assert.match(a.messages[1].text, /^raised here \(calc\.py:7\)/);
  assert.equal(a.messages[1].location?.uri, "file:///ws/pkg/calc.py");
});

test("a failure's message holds pytest's whole report after its first line", () => {
  const report = [
    "    def test_words():",
    "        words = [\"alpha\", \"beta\", \"gamma\"]",
    ">       assert words == [\"alpha\", \"delta\", \"gamma\"]",
    "E       AssertionError: assert ['alpha', 'beta', 'gamma'] == ['alpha', 'delta', 'gamma']",
    "E         At index 1 diff: 'beta' != 'delta'",
    "",
    "tests/test_report.py:4: AssertionError",
  ].join("\n");
  const a = progressAction({
    runId: "r",
    id: "tests/test_report.py::test_words",
    nodeid: "tests/test_report.py::test_words",
    state: "failed",
    cached: true,
    message: {
      text: "AssertionError: assert ['alpha', 'beta', 'gamma'] == ['alpha', 'delta', 'gamma']",
      location: { uri: "file:///ws/tests/test_report.py", range: range(3) },
      related: { uri: "file:///ws/pkg/words.py", range: range(1) },
      details: report,
    },
  });
  assert.equal(a.op, "failed");
  if (a.op !== "failed") return;
  const [first, ...rest] = a.messages[0].text.split("\n");
  assert.equal(first, "(cached) AssertionError: assert ['alpha', 'beta', 'gamma'] == ['alpha', 'delta', 'gamma']");
  assert.equal(rest.join("\n"), "\n" + report);
  // the raising line's message stays one line: the report is the failure's, shown once
  assert.ok(!a.messages[1].text.includes("\n"));
});

test("parametrized and cached failures say so", () => {
  const a = progressAction({
    runId: "r",
    id: "t.py::test_x",
    nodeid: "t.py::test_x[2-0]",
    state: "errored",
    cached: true,
    message: { text: "boom", location: { uri: "file:///t.py", range: range(1) }, related: null },
  });
  assert.equal(a.op, "errored");
  if (a.op !== "errored") return;
  assert.equal(a.messages.length, 1);
  assert.equal(a.messages[0].text, "(cached) boom [[2-0]]");
  const b = progressAction({ runId: "r", id: "t.py::test_y", state: "failed" });
  assert.equal(b.op === "failed" && b.messages[0].text, "failed");
});

test("ids resolve to the closest known item", () => {
  const known = new Set(["a.py", "a.py::C", "a.py::C::t", "a.py::f"]);
  const has = (x: string) => known.has(x);
  assert.equal(resolveId("a.py::C::t", has), "a.py::C::t");
  assert.equal(resolveId("a.py::C::t[1]", has), "a.py::C::t");
  assert.equal(resolveId("a.py::C::u", has), "a.py::C");
  assert.equal(resolveId("a.py::g[x::y]", has), "a.py");
  assert.equal(resolveId("b.py::f", has), null);
});

test("discovered trees index every id; run params drop covered children", () => {
  const file: TestItem = {
    id: "t.py",
    label: "t.py",
    kind: "file",
    uri: "file:///t.py",
    range: null,
    children: [
      { id: "t.py::f", label: "f", kind: "function", uri: "file:///t.py", range: range(3), children: [] },
      {
        id: "t.py::C",
        label: "C",
        kind: "class",
        uri: "file:///t.py",
        range: range(6),
        children: [{ id: "t.py::C::m", label: "m", kind: "function", uri: "file:///t.py", range: range(7), children: [] }],
      },
    ],
  };
  assert.deepEqual(allIds([file]), ["t.py", "t.py::f", "t.py::C", "t.py::C::m"]);
  assert.deepEqual(dedupeNested(["t.py::C::m", "t.py::C", "u.py::x", "u.py::x"]), ["t.py::C", "u.py::x"]);
  assert.deepEqual(runParams(undefined, undefined), {});
  assert.deepEqual(runParams(["t.py::f"], ["t.py::f"], "/ws"), { include: ["t.py::f"], exclude: ["t.py::f"], root: "/ws" });
});

interface Log {
  created: string[];
  events: string[];
}

function router(): { r: RunRouter<string>; log: Log } {
  const log: Log = { created: [], events: [] };
  const r = new RunRouter<string>({
    create: (b: BeginParams) => {
      log.created.push(b.runId);
      return `lens:${b.runId}`;
    },
    progress: (h, p) => log.events.push(`${h} ${p.id} ${p.state}`),
    end: (h, p: EndParams) => log.events.push(`${h} end${p.cancelled ? " cancelled" : ""}`),
  });
  return { r, log };
}

const begin = (runId: string, kind: BeginParams["kind"] = "explorer"): BeginParams => ({ runId, kind, label: "x", root: "/ws" });
const prog = (runId: string, id: string, state: ProgressParams["state"]): ProgressParams => ({ runId, id, state });
const end = (runId: string, cancelled = false): EndParams => ({
  runId,
  cancelled,
  error: null,
  summary: { runId, root: "/ws", kind: "explorer", label: "x", cancelled, error: null },
});

test("runs started elsewhere (code lens) get their own test run", () => {
  const { r, log } = router();
  r.begin(begin("1", "node"));
  r.progress(prog("1", "t.py::f", "started"));
  r.progress(prog("1", "t.py::f", "failed"));
  r.end(end("1"));
  r.progress(prog("1", "t.py::f", "passed")); // late: dropped
  assert.deepEqual(log.created, ["1"]);
  assert.deepEqual(log.events, ["lens:1 t.py::f started", "lens:1 t.py::f failed", "lens:1 end"]);
  assert.equal(r.active, 0);
});

test("an explorer run's notifications before its runId response are buffered, then replayed", () => {
  const { r, log } = router();
  r.expect();
  r.begin(begin("7"));
  r.progress(prog("7", "t.py", "enqueued"));
  r.progress(prog("7", "t.py::f", "passed"));
  assert.deepEqual(log.events, []);
  r.bind("7", "explorer:7");
  assert.deepEqual(log.created, []);
  assert.deepEqual(log.events, ["explorer:7 t.py enqueued", "explorer:7 t.py::f passed"]);
  r.end(end("7"));
  assert.equal(log.events.at(-1), "explorer:7 end");
});

test("a run that ended before its response arrived still ends its test run", () => {
  const { r, log } = router();
  r.expect();
  r.begin(begin("8"));
  r.progress(prog("8", "t.py::f", "passed"));
  r.end(end("8", true));
  r.bind("8", "explorer:8");
  assert.deepEqual(log.events, ["explorer:8 t.py::f passed", "explorer:8 end cancelled"]);
  assert.equal(r.active, 0);
});

test("a failed explorer request hands held-back runs to their own test run", () => {
  const { r, log } = router();
  r.expect();
  r.begin(begin("9"));
  r.progress(prog("9", "t.py::f", "passed"));
  r.abandon();
  assert.deepEqual(log.created, ["9"]);
  assert.deepEqual(log.events, ["lens:9 t.py::f passed"]);
});

test("folders above a test file, outermost first", () => {
  assert.deepEqual(folderChain("tests/unit/test_a.py"), [
    { id: "tests", label: "tests" },
    { id: "tests/unit", label: "unit" },
  ]);
  assert.deepEqual(folderChain("test_top.py"), []);
});

test("a parametrized result becomes a child of its function; a plain one does not", () => {
  const base = { runId: "run-1", state: "failed" as const };
  assert.deepEqual(paramChild({ ...base, id: "a.py::test_x", nodeid: "a.py::test_x[1-2]" }), {
    parent: "a.py::test_x",
    id: "a.py::test_x[1-2]",
    label: "[1-2]",
  });
  assert.equal(paramChild({ ...base, id: "a.py::test_x", nodeid: "a.py::test_x" }), null);
  assert.equal(paramChild({ ...base, id: "a.py" }), null);
});

test("a folder covers the files under it when a run is requested", () => {
  assert.deepEqual(dedupeNested(["tests", "tests/unit/test_a.py", "other/test_b.py"]), ["other/test_b.py", "tests"]);
});
