import { test } from "node:test";
import * as assert from "node:assert/strict";
import { expand, needsRestart, serverCommand, speculationOption, toInitOptions } from "../src/model/settings";

test("defaults -> the server's documented defaults", () => {
  assert.deepEqual(toInitOptions({}), {
    interpreter: null,
    speculation: null,
    coordinatorUrl: null,
    daemonAutostart: true,
    codeLens: { enabled: true, impactedOnSource: true, testFunctions: false },
    diagnostics: true,
    runOnSave: false,
  });
});

test("VS Code's empty strings become null; values pass through", () => {
  const o = toInitOptions({
    path: "",
    interpreter: "  ",
    speculation: "on",
    coordinatorUrl: "http://127.0.0.1:8080",
    daemonAutostart: false,
    codeLens: { enabled: true, impactedOnSource: false, testFunctions: true },
    diagnostics: false,
    runOnSave: true,
  });
  assert.equal(o.interpreter, null);
  assert.equal(o.speculation, true);
  assert.equal(o.coordinatorUrl, "http://127.0.0.1:8080");
  assert.equal(o.daemonAutostart, false);
  assert.deepEqual(o.codeLens, { enabled: true, impactedOnSource: false, testFunctions: true });
  assert.equal(o.diagnostics, false);
  assert.equal(o.runOnSave, true);
});

test("speculation: workspace (null), on, off; old booleans still mean on/off", () => {
  assert.equal(speculationOption("workspace"), null);
  assert.equal(speculationOption(undefined), null);
  assert.equal(speculationOption("on"), true);
  assert.equal(speculationOption("off"), false);
  assert.equal(speculationOption(true), true);
  assert.equal(speculationOption(false), false);
});

test("paths expand ~, ${workspaceFolder}, ${userHome}, ${env:X}", () => {
  const env = { HOME: "/home/u", VENV: "/opt/venv" };
  assert.equal(expand("~/x/python", undefined, env), "/home/u/x/python");
  assert.equal(expand("${workspaceFolder}/.venv/bin/python", "/ws", env), "/ws/.venv/bin/python");
  assert.equal(expand("${userHome}/m", undefined, env), "/home/u/m");
  assert.equal(expand("${env:VENV}/bin/maestro", undefined, env), "/opt/venv/bin/maestro");
  assert.equal(expand("", "/ws", env), null);
  assert.equal(toInitOptions({ interpreter: "${workspaceFolder}/.venv/bin/python" }, "/ws").interpreter, "/ws/.venv/bin/python");
});

test("launch: maestro.path, else interpreter -m maestro.server, else maestro on PATH", () => {
  assert.deepEqual(serverCommand({ path: "/v/bin/maestro", interpreter: "/v/bin/python" }), {
    command: "/v/bin/maestro",
    args: ["lsp"],
  });
  assert.deepEqual(serverCommand({ interpreter: "/v/bin/python" }), {
    command: "/v/bin/python",
    args: ["-P", "-m", "maestro.server"],
  });
  assert.deepEqual(serverCommand({ path: "", interpreter: "" }), { command: "maestro", args: ["lsp"] });
});

test("restart only when the launch command or the explorer capability changes", () => {
  assert.equal(needsRestart({ speculation: false }, { speculation: true }), false);
  assert.equal(needsRestart({ coordinatorUrl: "" }, { coordinatorUrl: "http://x" }), false);
  assert.equal(needsRestart({ path: "" }, { path: "/bin/maestro" }), true);
  assert.equal(needsRestart({ interpreter: "/a" }, { interpreter: "/b" }), true);
  assert.equal(needsRestart({ testExplorer: true }, { testExplorer: false }), true);
});
