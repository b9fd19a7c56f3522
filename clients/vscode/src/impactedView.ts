import * as vscode from "vscode";
import type { LanguageClient } from "vscode-languageclient/node";
import { rowsOf, summary, type TreeRow } from "./model/impacted";
import { METHODS, type ImpactedResult } from "./model/protocol";

const ICONS: Record<TreeRow["icon"], vscode.ThemeIcon> = {
  pass: new vscode.ThemeIcon("pass", new vscode.ThemeColor("testing.iconPassed")),
  error: new vscode.ThemeIcon("error", new vscode.ThemeColor("testing.iconFailed")),
  cached: new vscode.ThemeIcon("database"),
  stale: new vscode.ThemeIcon("circle-outline", new vscode.ThemeColor("testing.iconQueued")),
  unsaved: new vscode.ThemeIcon("edit"),
  unknown: new vscode.ThemeIcon("beaker"),
  info: new vscode.ThemeIcon("arrow-small-right"),
};

/** "Impacted Tests": maestro/impactedTargets for the active editor, following unsaved edits. */
export class ImpactedTests implements vscode.TreeDataProvider<TreeRow>, vscode.Disposable {
  private readonly emitter = new vscode.EventEmitter<TreeRow | undefined>();
  readonly onDidChangeTreeData = this.emitter.event;
  private readonly views: vscode.TreeView<TreeRow>[] = [];
  private readonly subs: vscode.Disposable[] = [];
  private rows: TreeRow[] = [];
  private client: LanguageClient | undefined;
  private timer: NodeJS.Timeout | undefined;
  private seq = 0;
  result: ImpactedResult | null = null;
  document: vscode.Uri | undefined;

  constructor(viewIds: string[]) {
    for (const id of viewIds) {
      const view = vscode.window.createTreeView(id, { treeDataProvider: this, showCollapseAll: true });
      this.views.push(view);
      this.subs.push(view);
    }
    this.subs.push(
      vscode.window.onDidChangeActiveTextEditor(() => this.schedule(50)),
      vscode.workspace.onDidChangeTextDocument((e) => {
        const follow = vscode.workspace.getConfiguration("maestro").get<boolean>("impactedView.followUnsaved", true);
        if (follow && e.document === vscode.window.activeTextEditor?.document) this.schedule(500);
      }),
      vscode.workspace.onDidSaveTextDocument(() => this.schedule(200)),
    );
  }

  attach(client: LanguageClient | undefined): void {
    this.client = client;
    this.schedule(0);
  }

  schedule(delayMs: number): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.refresh(), delayMs);
  }

  async refresh(): Promise<void> {
    const editor = vscode.window.activeTextEditor;
    const doc = editor?.document;
    if (doc && (doc.languageId !== "python" || doc.uri.scheme !== "file")) return; // keep the last file's view
    const client = this.client;
    const seq = ++this.seq;
    if (!client || !client.isRunning()) {
      this.set(null, undefined, "Maestro is not running");
      return;
    }
    const params = doc ? { textDocument: { uri: client.code2ProtocolConverter.asUri(doc.uri) } } : {};
    try {
      const result = await client.sendRequest<ImpactedResult>(METHODS.impactedTargets, params);
      if (seq === this.seq) this.set(result, doc?.uri);
    } catch (e) {
      if (seq === this.seq) this.set(null, doc?.uri, e instanceof Error ? e.message : String(e));
    }
  }

  private set(result: ImpactedResult | null, uri: vscode.Uri | undefined, error?: string): void {
    this.result = result;
    this.document = uri;
    this.rows = rowsOf(result);
    const file = uri ? vscode.workspace.asRelativePath(uri) : undefined;
    const message = error ? `Maestro: ${error}` : result ? summary(result, file) : undefined;
    for (const v of this.views) {
      v.message = message;
      v.badge = result && result.count ? { value: result.count, tooltip: summary(result, file) } : undefined;
    }
    this.emitter.fire(undefined);
  }

  getTreeItem(row: TreeRow): vscode.TreeItem {
    const item = new vscode.TreeItem(
      row.label,
      row.children.length ? vscode.TreeItemCollapsibleState.Collapsed : vscode.TreeItemCollapsibleState.None,
    );
    item.id = row.id;
    item.description = row.description;
    item.tooltip = row.tooltip;
    item.iconPath = ICONS[row.icon];
    if (row.target) {
      item.contextValue = "maestroTarget";
      if (row.uri) {
        item.resourceUri = vscode.Uri.parse(row.uri);
        item.command = { command: "vscode.open", title: "Open", arguments: [vscode.Uri.parse(row.uri)] };
      }
    }
    return item;
  }

  getChildren(row?: TreeRow): TreeRow[] {
    return row ? row.children : this.rows;
  }

  dispose(): void {
    if (this.timer) clearTimeout(this.timer);
    this.subs.forEach((s) => s.dispose());
    this.emitter.dispose();
  }
}
