import { test } from "node:test";
import * as assert from "node:assert/strict";
import * as fs from "fs";
import * as path from "path";
import {
  expand,
  needsRestart,
  readRaw,
  serverCommand,
  speculationOption,
  toInitOptions,
  type RawSettings,
} from "../src/model/settings";

const ROOT = path.resolve(__dirname, "..", ".."); // out/test -> clients/vscode

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

interface Declared {
  type: string;
  default: unknown;
  enum?: string[];
}

/** The `maestro.*` settings package.json declares, keyed without the prefix. */
const DECLARED: Record<string, Declared> = Object.fromEntries(
  Object.entries(
    JSON.parse(fs.readFileSync(path.join(ROOT, "package.json"), "utf8")).contributes.configuration
      .properties as Record<string, Declared>,
  ).map(([key, spec]) => [key.replace(/^maestro\./, ""), spec]),
);

/** Settings read outside readRaw, each shown in real VS Code by tests/e2e/test_vscode.py: the
 * file that reads it and the text that proves it reads that key. */
const READ_ELSEWHERE: Record<string, [string, RegExp]> = {
  "impactedView.followUnsaved": ["src/impactedView.ts", /"impactedView\.followUnsaved"/],
  // vscode-languageclient reads `<client id>.trace.server`
  "trace.server": ["src/extension.ts", /new LanguageClient\("maestro"/],
};

/** What readRaw asks for (key -> its fallback) and returns, with some keys set. */
function read(set: Record<string, unknown> = {}): { asked: Map<string, unknown>; raw: RawSettings } {
  const asked = new Map<string, unknown>();
  const raw = readRaw(<T>(key: string, fallback: T): T => {
    asked.set(key, fallback);
    return (key in set ? set[key] : fallback) as T;
  });
  return { asked, raw };
}

function anotherValue(spec: Declared): unknown {
  if (spec.type === "boolean") return !spec.default;
  if (spec.enum) return spec.enum.find((v) => v !== spec.default);
  return "/elsewhere/bin/tool";
}

test("every declared setting is read under its name, with package.json's default", () => {
  const { asked } = read();
  for (const [key, fallback] of asked) {
    assert.ok(key in DECLARED, `reads maestro.${key}, which package.json does not declare`);
    assert.deepEqual(fallback, DECLARED[key].default, `maestro.${key}: another default than package.json's`);
  }
  for (const key of Object.keys(DECLARED)) {
    if (asked.has(key)) continue;
    assert.ok(key in READ_ELSEWHERE, `maestro.${key} is declared but nothing reads it`);
    const [file, proof] = READ_ELSEWHERE[key];
    assert.match(fs.readFileSync(path.join(ROOT, file), "utf8"), proof, `${file} reads maestro.${key}`);
  }
});

test("every setting read changes the launch command, the capability or what the server is sent", () => {
  const base = read().raw;
  for (const key of read().asked.keys()) {
    const changed = read({ [key]: anotherValue(DECLARED[key]) }).raw;
    const sent = JSON.stringify(toInitOptions(changed)) !== JSON.stringify(toInitOptions(base));
    assert.ok(sent || needsRestart(base, changed), `maestro.${key} set otherwise changes nothing`);
  }
});
