import * as vscode from "vscode";
import type { LanguageClient } from "vscode-languageclient/node";
import { folderChain, paramChild, progressAction, resolveId, runParams, RunRouter, type MessageSpec } from "./model/explorer";
import { countsBits, deniedText } from "./model/runs";
import {
  METHODS,
  type BeginParams,
  type DidChangeParams,
  type DiscoverResult,
  type EndParams,
  type ImpactedResult,
  type ProgressParams,
  type TestItem as ProtoItem,
} from "./model/protocol";

interface RunHandle {
  run: vscode.TestRun;
  root: string;
}

/** The VS Code Testing API fed by maestro/testExplorer/* (docs/lsp.md "Test-explorer protocol"). */
export class TestExplorer implements vscode.Disposable {
  readonly controller: vscode.TestController;
  private client: LanguageClient | undefined;
  private readonly byId = new Map<string, vscode.TestItem>();
  private readonly files = new Map<string, vscode.TestItem>(); // file id -> item (in its folder)
  private readonly folders = new Map<string, vscode.TestItem>(); // folder path -> item
  private readonly rootOf = new Map<string, string>(); // file or folder item id -> workspace root
  private readonly router: RunRouter<RunHandle>;
  private readonly subs: vscode.Disposable[] = [];
  private readonly clientSubs: vscode.Disposable[] = [];

  /** Called on every run begin/end (the status bar shows running runs). */
  onRunsChanged: () => void = () => undefined;

  constructor() {
    this.controller = vscode.tests.createTestController("maestro", "Maestro");
    this.controller.resolveHandler = async (item) => {
      if (!item) await this.discover();
    };
    this.controller.refreshHandler = async () => this.discover();
    this.controller.createRunProfile("Run", vscode.TestRunProfileKind.Run, (req, token) => this.run(req, token), true);
    this.router = new RunRouter<RunHandle>({
      create: (b: BeginParams) => ({
        run: this.controller.createTestRun(new vscode.TestRunRequest(), `Maestro: ${b.label}`, false),
        root: b.root,
      }),
      progress: (h, p) => this.apply(h, p),
      end: (h, p) => this.finish(h, p),
    });
    this.subs.push(this.controller);
  }

  attach(client: LanguageClient | undefined): void {
    this.clientSubs.splice(0).forEach((d) => d.dispose());
    this.client = client;
    if (!client) return;
    this.clientSubs.push(
      client.onNotification(METHODS.didChange, (p: DidChangeParams) => this.didChange(p)),
      client.onNotification(METHODS.begin, (p: BeginParams) => {
        this.router.begin(p);
        this.onRunsChanged();
      }),
      client.onNotification(METHODS.progress, (p: ProgressParams) => this.router.progress(p)),
      client.onNotification(METHODS.end, (p: EndParams) => {
        this.router.end(p);
        this.onRunsChanged();
      }),
    );
    void this.discover();
  }

  async discover(): Promise<void> {
    const client = this.client;
    if (!client || !client.isRunning()) return;
    const folders = vscode.workspace.workspaceFolders ?? [];
    const roots = folders.length ? folders.map((f) => f.uri.fsPath) : [undefined];
    const keep = new Set<string>();
    for (const root of roots) {
      try {
        const res = await client.sendRequest<DiscoverResult>(METHODS.discover, root ? { root } : {});
        for (const file of res.files) {
          this.upsertFile(res.root, file);
          keep.add(file.id);
        }
      } catch (e) {
        client.warn(`maestro/testExplorer/discover failed: ${e instanceof Error ? e.message : String(e)}`);
      }
    }
    for (const id of [...this.files.keys()]) if (!keep.has(id)) this.removeFile(id);
  }

  private didChange(p: DidChangeParams): void {
    if (!p.uri || (!p.file && p.uri === null)) {
      void this.discover();
      return;
    }
    if (p.file) this.upsertFile(p.root, p.file);
    else {
      const rel = this.fileIdOfUri(p.uri);
      if (rel) this.removeFile(rel);
    }
  }

  /** A saved file changed the inputs of its own tests and of the tests it impacts: their shown
   * results are of other inputs, so VS Code shows them as outdated until the next run. */
  async outdate(doc: vscode.TextDocument): Promise<void> {
    const client = this.client;
    if (!client || !client.isRunning() || doc.languageId !== "python" || doc.uri.scheme !== "file") return;
    const uri = client.code2ProtocolConverter.asUri(doc.uri);
    const ids = new Set<string>();
    const own = this.fileIdOfUri(uri);
    if (own) ids.add(own);
    try {
      const res = await client.sendRequest<ImpactedResult>(METHODS.impactedTargets, { textDocument: { uri } });
      for (const row of res.impacted) if (row.kind === "test") ids.add(row.target);
    } catch (e) {
      client.warn(`maestro/impactedTargets after a save failed: ${e instanceof Error ? e.message : String(e)}`);
    }
    const items = [...ids].map((id) => this.files.get(id)).filter((it): it is vscode.TestItem => !!it);
    if (items.length) this.controller.invalidateTestResults(items);
  }

  private fileIdOfUri(uri: string): string | undefined {
    const want = vscode.Uri.parse(uri).toString();
    for (const [id, item] of this.files) if (item.uri?.toString() === want) return id;
    return undefined;
  }

  private removeFile(id: string): void {
    const item = this.files.get(id);
    if (!item) return;
    const drop = (it: vscode.TestItem) => {
      this.byId.delete(it.id);
      it.children.forEach(drop);
    };
    drop(item);
    this.files.delete(id);
    this.rootOf.delete(id);
    // remove it, then every folder it leaves empty
    let parent = item.parent;
    (parent ? parent.children : this.controller.items).delete(id);
    while (parent && parent.children.size === 0 && this.folders.get(parent.id) === parent) {
      const up = parent.parent;
      (up ? up.children : this.controller.items).delete(parent.id);
      this.folders.delete(parent.id);
      this.rootOf.delete(parent.id);
      parent = up;
    }
  }

  /** The collection a test file goes in: its folder's children (folders made as needed). */
  private folderOf(root: string, fileId: string): vscode.TestItemCollection {
    let into = this.controller.items;
    for (const f of folderChain(fileId)) {
      let folder = this.folders.get(f.id);
      if (!folder) {
        folder = this.controller.createTestItem(f.id, f.label, vscode.Uri.file(`${root}/${f.id}`));
        this.folders.set(f.id, folder);
        this.rootOf.set(f.id, root);
        into.add(folder);
      }
      into = folder.children;
    }
    return into;
  }

  private upsertFile(root: string, file: ProtoItem): void {
    // rebuild the file's subtree (cheap; ids are stable so VS Code keeps results and expansion);
    // parameter sets (children made from results) are kept under their function
    const old = this.files.get(file.id);
    const params = new Map<string, vscode.TestItem[]>();
    if (old) {
      const drop = (it: vscode.TestItem) => {
        this.byId.delete(it.id);
        const kept: vscode.TestItem[] = [];
        it.children.forEach((c) => {
          if (c.id.startsWith(it.id + "[")) kept.push(c);
          drop(c);
        });
        if (kept.length) params.set(it.id, kept);
      };
      old.children.forEach(drop);
    }
    const item = old ?? this.make(file);
    this.fill(item, file, params);
    if (!old) this.folderOf(root, file.id).add(item);
    this.files.set(file.id, item);
    this.byId.set(file.id, item);
    this.rootOf.set(file.id, root);
  }

  private make(p: ProtoItem): vscode.TestItem {
    return this.controller.createTestItem(p.id, p.label, vscode.Uri.parse(p.uri));
  }

  private fill(item: vscode.TestItem, p: ProtoItem, params = new Map<string, vscode.TestItem[]>()): void {
    item.label = p.label;
    if (p.range) {
      item.range = new vscode.Range(p.range.start.line, p.range.start.character, p.range.end.line, p.range.end.character);
    }
    item.canResolveChildren = false;
    const children: vscode.TestItem[] = [];
    for (const c of p.children) {
      const child = this.make(c);
      this.fill(child, c, params);
      this.byId.set(c.id, child);
      children.push(child);
    }
    for (const kept of params.get(p.id) ?? []) {
      this.byId.set(kept.id, kept);
      children.push(kept);
    }
    item.children.replace(children);
  }

  private lookup(id: string): vscode.TestItem | undefined {
    const found = resolveId(id, (x) => this.byId.has(x));
    return found ? this.byId.get(found) : undefined;
  }

  private async run(request: vscode.TestRunRequest, token: vscode.CancellationToken): Promise<void> {
    const client = this.client;
    if (!client) {
      void vscode.window.showErrorMessage("Maestro: the language server is not running.");
      return;
    }
    // group the included items by workspace root: one server run per root
    const include = request.include ?? [];
    const groups = new Map<string | undefined, string[]>();
    for (const it of include) {
      const top = it.id.split("::")[0];
      const root = this.rootOf.get(top);
      groups.set(root, [...(groups.get(root) ?? []), it.id]);
    }
    if (!include.length) groups.set(undefined, []);
    const exclude = (request.exclude ?? []).map((it) => it.id);
    const runs: Promise<void>[] = [];
    for (const [root, ids] of groups) {
      // A run of its own, not persisted: VS Code keeps the results of a run started from its UI
      // (whatever the `persist` flag) and shows them after a window reload, whatever changed
      // since. After a reload only the server's restored results show: those the cache still
      // holds for the current content of each file and its inputs (server/restore.py).
      const own = new vscode.TestRunRequest(request.include, request.exclude, request.profile);
      const run = this.controller.createTestRun(own, include.length ? undefined : "Maestro: all tests", false);
      this.router.expect();
      let runId: string | null = null;
      const done = new Promise<void>((resolve) => {
        (run as RunWithDone).maestroDone = resolve;
      });
      const cancel = () => {
        if (runId) void client.sendRequest(METHODS.cancel, { runId });
      };
      // the UI's stop button cancels the request's run; the run of our own has a token too
      const cancelSubs = [token.onCancellationRequested(cancel), run.token.onCancellationRequested(cancel)];
      const cancelSub = { dispose: () => cancelSubs.forEach((d) => d.dispose()) };
      try {
        const res = await client.sendRequest<{ runId: string }>(METHODS.run, runParams(ids.length ? ids : undefined, exclude, root));
        runId = res.runId;
        this.router.bind(res.runId, { run, root: root ?? "" });
        if (token.isCancellationRequested || run.token.isCancellationRequested) cancel();
      } catch (e) {
        this.router.abandon();
        run.appendOutput(`Maestro: ${e instanceof Error ? e.message : String(e)}\r\n`);
        run.end();
        cancelSub.dispose();
        continue;
      }
      runs.push(done.finally(() => cancelSub.dispose()));
    }
    await Promise.all(runs);
  }

  /** The item of a parametrized result: made under its function on first sight. */
  private paramItem(p: ProgressParams): vscode.TestItem | undefined {
    const c = paramChild(p);
    if (!c) return undefined;
    const known = this.byId.get(c.id);
    if (known) return known;
    const parent = this.byId.get(c.parent);
    if (!parent) return undefined;
    const item = this.controller.createTestItem(c.id, c.label, parent.uri);
    item.range = parent.range;
    parent.children.add(item);
    this.byId.set(c.id, item);
    return item;
  }

  private apply(h: RunHandle, p: ProgressParams): void {
    const a = progressAction(p);
    const item = (p.state !== "enqueued" ? this.paramItem(p) : undefined) ?? this.lookup(a.id);
    if (!item) {
      if (a.op === "failed" || a.op === "errored") {
        h.run.appendOutput(`${p.nodeid ?? p.id}: ${a.op}: ${a.messages.map((m) => m.text).join("\n")}\r\n`);
      }
      return;
    }
    switch (a.op) {
      case "enqueued": {
        // enqueue the leaves: a parent left "queued" would keep that state after the run ends
        const leaves: vscode.TestItem[] = [];
        const walk = (it: vscode.TestItem) => {
          if (it.children.size === 0) leaves.push(it);
          else it.children.forEach(walk);
        };
        walk(item);
        leaves.forEach((leaf) => h.run.enqueued(leaf));
        break;
      }
      case "started":
        h.run.started(item);
        break;
      case "passed":
        h.run.passed(item, a.durationMs);
        break;
      case "skipped":
        h.run.skipped(item);
        break;
      case "failed":
      case "errored": {
        const msgs = a.messages.map((m) => this.message(m));
        if (a.op === "failed") h.run.failed(item, msgs, a.durationMs);
        else h.run.errored(item, msgs, a.durationMs);
        const text = a.messages[0]?.text ?? a.op;
        h.run.appendOutput(`✗ ${p.nodeid ?? p.id}: ${text.replace(/\n/g, "\r\n")}\r\n`, undefined, item);
        break;
      }
    }
  }

  private message(m: MessageSpec): vscode.TestMessage {
    const msg = new vscode.TestMessage(m.text);
    if (m.location) {
      const r = m.location.range;
      msg.location = new vscode.Location(
        vscode.Uri.parse(m.location.uri),
        new vscode.Range(r.start.line, r.start.character, r.end.line, r.end.character),
      );
    }
    return msg;
  }

  private finish(h: RunHandle, p: EndParams): void {
    const s = p.summary;
    const bits = countsBits(s);
    if (typeof s.cachedFiles === "number" && s.cachedFiles)
      bits.push(`${s.cachedFiles} ${s.cachedFiles === 1 ? "file" : "files"} cached`);
    if (typeof s.wallS === "number" && s.wallS > 0) bits.push(`in ${s.wallS.toFixed(1)} s`);
    const done = bits.join(", ") || s.message || "done";
    const line = s.denied
      ? deniedText(s.denied)
      : p.cancelled
        ? s.message ?? "cancelled"
        : p.error
          ? `error: ${p.error.message}`
          : done;
    h.run.appendOutput(`Maestro: ${line}\r\n`);
    h.run.end();
    (h.run as RunWithDone).maestroDone?.();
  }

  dispose(): void {
    this.clientSubs.forEach((d) => d.dispose());
    this.subs.forEach((d) => d.dispose());
  }
}

type RunWithDone = vscode.TestRun & { maestroDone?: () => void };
