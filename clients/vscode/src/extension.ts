import * as vscode from "vscode";
import {
  LanguageClient,
  State,
  type ClientCapabilities,
  type LanguageClientOptions,
  type ServerOptions,
  type StaticFeature,
} from "vscode-languageclient/node";
import { firstFolder, readSettings } from "./config";
import { ImpactedTests } from "./impactedView";
import {
  METHODS,
  SERVER_COMMANDS,
  type CancelResult,
  type PolicyIncidentParams,
  type RemoteBackoffParams,
  type Requests,
  type RunAccepted,
  type RunResult,
  type StatusInfo,
} from "./model/protocol";
import { experimentalCapabilities, protocolMismatch } from "./model/capabilities";
import { explainText, finishedLine } from "./model/runs";
import { needsRestart, serverCommand, toInitOptions, type RawSettings } from "./model/settings";
import { StatusBar } from "./statusBar";
import { TestExplorer } from "./testing";

/** Declares `experimental.maestroTestExplorer` so the server sends the test-explorer protocol,
 * and declines `maestro/testResults` (the explorer's notifications carry the same results). */
class TestExplorerCapability implements StaticFeature {
  constructor(private readonly enabled: boolean) {}
  fillClientCapabilities(capabilities: ClientCapabilities): void {
    const exp = (capabilities.experimental ?? {}) as Record<string, unknown>;
    Object.assign(exp, experimentalCapabilities(this.enabled));
    capabilities.experimental = exp;
  }
  getState(): { kind: "static" } {
    return { kind: "static" };
  }
  initialize(): void {}
  clear(): void {}
  dispose(): void {}
}

let client: LanguageClient | undefined;
let settings: RawSettings;
let output: vscode.OutputChannel;
let statusBar: StatusBar;
let impacted: ImpactedTests;
let explorer: TestExplorer;

export async function activate(context: vscode.ExtensionContext): Promise<void> {
  output = vscode.window.createOutputChannel("Maestro");
  statusBar = new StatusBar();
  impacted = new ImpactedTests(["maestroImpactedTests", "maestroImpactedTestsInTesting"]);
  explorer = new TestExplorer();
  explorer.onRunsChanged = () => void statusBar.refresh();
  context.subscriptions.push(output, statusBar, impacted, explorer);
  settings = readSettings();

  const reg = (id: string, fn: (...args: unknown[]) => unknown) =>
    context.subscriptions.push(vscode.commands.registerCommand(id, fn));

  reg("maestro-vscode.runImpacted", async (arg?: unknown) => {
    const uri = arg instanceof vscode.Uri ? arg : vscode.window.activeTextEditor?.document.uri;
    await runCommand(SERVER_COMMANDS.runImpacted, uri ? [uri.toString()] : []);
  });
  reg("maestro-vscode.runFile", async (arg?: unknown) => {
    const uri = arg instanceof vscode.Uri ? arg : vscode.window.activeTextEditor?.document.uri;
    if (!uri) return void vscode.window.showWarningMessage("Maestro: open a test file first.");
    await runCommand(SERVER_COMMANDS.runFile, [uri.toString()]);
  });
  reg("maestro-vscode.runAll", async () => runCommand(SERVER_COMMANDS.runAll, []));
  reg("maestro-vscode.runTarget", async (row?: unknown) => {
    const r = row as { uri?: string | null; target?: string | null } | undefined;
    if (r?.uri) await runCommand(SERVER_COMMANDS.runFile, [r.uri]);
    else if (r?.target) await runCommand(SERVER_COMMANDS.runNode, [r.target]);
  });
  reg("maestro-vscode.cancel", async () => {
    const res = await execute<CancelResult>(SERVER_COMMANDS.cancel, []);
    if (res) vscode.window.setStatusBarMessage(`Maestro: cancelled ${res.cancelled.length} run(s)`, 4000);
  });
  reg("maestro-vscode.cacheStats", async () => {
    const stats = await request(METHODS.cacheStats, {});
    if (!stats) return;
    output.appendLine(`cache stats: ${JSON.stringify(stats, null, 2)}`);
    const rate = typeof stats.hitRate === "number" ? ` (${Math.round(stats.hitRate * 100)}% hits)` : "";
    const choice = await vscode.window.showInformationMessage(
      `Maestro cache: ${stats.hits ?? 0} hits, ${stats.misses ?? 0} misses${rate}, ${stats.actions ?? 0} actions, ` +
        `${(stats.bytes / 1048576).toFixed(1)} MiB, ${stats.wallSecondsSaved.toFixed(1)} s saved`,
      "Show Details",
    );
    if (choice) output.show(true);
  });
  reg("maestro-vscode.explain", async (arg?: unknown) => {
    let target = typeof arg === "string" ? arg : undefined;
    if (!target) {
      const doc = vscode.window.activeTextEditor?.document;
      const guess = doc ? vscode.workspace.asRelativePath(doc.uri, false) : "";
      target = await vscode.window.showInputBox({
        title: "Maestro: explain",
        prompt: "Test node id or file (why is it selected, skipped, cached or re-run?)",
        value: guess,
      });
    }
    if (!target) return;
    const res = await request(METHODS.explain, { target });
    if (!res) return;
    output.appendLine(`── explain ${target}: ${res.decision ?? ""}`);
    output.appendLine(res.decisions ? explainText(res) : res.text ?? JSON.stringify(res, null, 2));
    output.show(true);
    const deny = res.decisions?.find((d) => d.result === "deny");
    if (deny) void vscode.window.showWarningMessage(`Maestro: ${target}: ${deny.summary}`);
  });
  reg("maestro-vscode.showStatus", async () => {
    await statusBar.refresh();
    const s: StatusInfo | null = statusBar.status;
    output.appendLine(`status: ${JSON.stringify({ status: s, cache: statusBar.stats }, null, 2)}`);
    output.show(true);
  });
  reg("maestro-vscode.refreshImpacted", async () => impacted.refresh());
  reg("maestro-vscode.restartServer", async () => restart());
  reg("maestro-vscode.restartDaemon", async () => {
    await execute(SERVER_COMMANDS.restartDaemon, []);
    await statusBar.refresh();
  });
  reg("maestro-vscode.showOutput", () => output.show(true));

  context.subscriptions.push(
    vscode.workspace.onDidSaveTextDocument((doc) => void explorer.outdate(doc)),
    vscode.workspace.onDidChangeConfiguration(async (e) => {
      if (!e.affectsConfiguration("maestro")) return;
      const next = readSettings();
      const restartNeeded = needsRestart(settings, next, firstFolder());
      settings = next;
      if (restartNeeded || !client) await restart();
      else
        await client.sendNotification("workspace/didChangeConfiguration", {
          settings: { maestro: toInitOptions(settings, firstFolder()) },
        });
    }),
  );

  await start();
}

async function start(): Promise<void> {
  statusBar.starting();
  const folder = firstFolder();
  const cmd = serverCommand(settings, folder);
  const serverOptions: ServerOptions = {
    command: cmd.command,
    args: cmd.args,
    options: { cwd: folder, env: { ...process.env } },
  };
  const clientOptions: LanguageClientOptions = {
    documentSelector: [{ scheme: "file", language: "python" }],
    initializationOptions: toInitOptions(settings, folder),
    outputChannel: output,
    // the status bar and views say what is wrong; do not pop the output on every server hiccup
    revealOutputChannelOn: 4 /* RevealOutputChannelOn.Never */,
  };
  output.appendLine(`starting: ${cmd.command} ${cmd.args.join(" ")}`);
  const c = new LanguageClient("maestro", "Maestro", serverOptions, clientOptions);
  c.registerFeature(new TestExplorerCapability(settings.testExplorer ?? true));
  c.onDidChangeState((e) => {
    if (e.newState === State.Stopped) statusBar.attach(undefined);
  });
  client = c;
  try {
    await c.start();
  } catch (e) {
    const msg = e instanceof Error ? e.message : String(e);
    output.appendLine(`failed to start ${cmd.command}: ${msg}`);
    statusBar.attach(undefined);
    // A window reload can activate the extension before the user's settings reached its host:
    // when they name another launch command a moment later, start with that instead of failing.
    await new Promise((resolve) => setTimeout(resolve, 2000));
    const later = readSettings();
    if (client === c && needsRestart(settings, later, folder)) {
      output.appendLine("settings arrived late; starting again with them");
      settings = later;
      await restart();
      return;
    }
    const pick = await vscode.window.showErrorMessage(
      `Maestro: could not start the language server (${cmd.command} ${cmd.args.join(" ")}): ${msg}. ` +
        "Set maestro.path or maestro.interpreter.",
      "Open Settings",
    );
    if (pick) void vscode.commands.executeCommand("workbench.action.openSettings", "maestro.");
    return;
  }
  const mismatch = protocolMismatch(c.initializeResult?.capabilities.experimental);
  if (mismatch) {
    output.appendLine(mismatch);
    void vscode.window.showWarningMessage(`Maestro: ${mismatch}`);
  }
  c.onNotification(METHODS.statusChanged, () => void statusBar.refresh());
  c.onNotification(METHODS.runFinished, (r: RunResult) => {
    const line = finishedLine(r);
    output.appendLine(`${r.runId} ${line.text}`);
    // runs this window started by a command get a message; the rest (save, explorer) the status bar
    const mine = startedHere.delete(r.runId);
    // a policy refusal: the server's showMessage (remediation, retry time) is the notification
    if (line.shownByServer) vscode.window.setStatusBarMessage(`Maestro: ${line.text}`, 10000);
    else if (mine && line.severity === "error") void vscode.window.showErrorMessage(`Maestro: ${line.text}`);
    else if (mine && line.severity === "warning") void vscode.window.showWarningMessage(`Maestro: ${line.text}`);
    else vscode.window.setStatusBarMessage(`Maestro: ${line.text}`, 5000);
    void statusBar.refresh();
    impacted.schedule(100);
  });
  c.onNotification(METHODS.policyIncident, (p: PolicyIncidentParams) => {
    // shown once by the server (window/showMessage); kept in the output for later
    output.appendLine(
      `policy incident ${p.active ? "raised" : "cleared"} (${p.reason}) in ${p.root}: ${p.message}` +
        (p.revision ? ` [revision ${p.revision}]` : ""),
    );
  });
  c.onNotification(METHODS.remoteBackoff, (p: RemoteBackoffParams) => {
    // the server shows the start once; the status bar says it (tooltip: the rule) until the end
    output.appendLine(`${p.root}: ${p.message}`);
    void statusBar.refresh();
  });
  statusBar.attach(c);
  impacted.attach(c);
  explorer.attach(c);
}

async function restart(): Promise<void> {
  const old = client;
  client = undefined;
  statusBar.attach(undefined);
  impacted.attach(undefined);
  explorer.attach(undefined);
  if (old) {
    try {
      await old.stop(5000);
    } catch {
      /* already dead */
    }
  }
  await start();
}

/** A custom request, typed by the generated protocol (model/protocol.ts). */
async function request<M extends keyof Requests>(
  method: M,
  params: Requests[M]["params"],
): Promise<Requests[M]["result"] | undefined> {
  if (!client || !client.isRunning()) {
    void vscode.window.showErrorMessage("Maestro: the language server is not running.");
    return undefined;
  }
  try {
    return await client.sendRequest<Requests[M]["result"]>(method, params);
  } catch (e) {
    void vscode.window.showErrorMessage(`Maestro: ${method}: ${e instanceof Error ? e.message : String(e)}`);
    return undefined;
  }
}

async function execute<T>(command: string, args: unknown[]): Promise<T | undefined> {
  if (!client || !client.isRunning()) {
    void vscode.window.showErrorMessage("Maestro: the language server is not running.");
    return undefined;
  }
  try {
    return await client.sendRequest<T>("workspace/executeCommand", { command, arguments: args });
  } catch (e) {
    void vscode.window.showErrorMessage(`Maestro: ${command}: ${e instanceof Error ? e.message : String(e)}`);
    return undefined;
  }
}

/** Run ids this window started by a command: their outcome (maestro/runFinished) is shown. */
const startedHere = new Set<string>();

async function runCommand(command: string, args: unknown[]): Promise<void> {
  // answers at once with the run id; progress is work-done progress, the end maestro/runFinished
  const res = await execute<RunAccepted>(command, args);
  if (!res) return;
  startedHere.add(res.runId);
  vscode.window.setStatusBarMessage(`Maestro: ${res.label}…`, 3000);
}

export async function deactivate(): Promise<void> {
  if (client) await client.stop(3000).catch(() => undefined);
}
