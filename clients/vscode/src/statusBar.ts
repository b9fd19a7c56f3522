import * as vscode from "vscode";
import type { LanguageClient } from "vscode-languageclient/node";
import { formatStatus } from "./model/status";
import { METHODS, type CacheStatsInfo, type StatusInfo } from "./model/protocol";

/** Daemon state and cache hit rate, from maestro/status and maestro/cacheStats. */
export class StatusBar implements vscode.Disposable {
  private readonly item: vscode.StatusBarItem;
  private timer: NodeJS.Timeout | undefined;
  private inflight = false;
  private again = false;
  private client: LanguageClient | undefined;
  status: StatusInfo | null = null;
  stats: CacheStatsInfo | null = null;

  constructor() {
    this.item = vscode.window.createStatusBarItem("maestro.status", vscode.StatusBarAlignment.Left, 10);
    this.item.name = "Maestro";
    this.item.command = "maestro-vscode.showStatus";
    this.render("starting");
    this.item.show();
  }

  attach(client: LanguageClient | undefined): void {
    this.client = client;
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    if (client) {
      void this.refresh();
      this.timer = setInterval(() => void this.refresh(), 10000);
    } else {
      this.render("stopped");
    }
  }

  starting(): void {
    this.render("starting");
  }

  async refresh(): Promise<void> {
    const client = this.client;
    if (!client || !client.isRunning()) return;
    if (this.inflight) {
      this.again = true; // a change arrived while asking: ask once more afterwards
      return;
    }
    this.inflight = true;
    try {
      this.status = await client.sendRequest<StatusInfo>(METHODS.status, {});
      try {
        this.stats = await client.sendRequest<CacheStatsInfo>(METHODS.cacheStats, {});
      } catch {
        /* no daemon yet: keep the last numbers */
      }
      this.render("running");
    } catch (e) {
      this.item.text = "$(warning) Maestro";
      this.item.tooltip = `maestro/status failed: ${e instanceof Error ? e.message : String(e)}`;
    } finally {
      this.inflight = false;
    }
    if (this.again) {
      this.again = false;
      void this.refresh();
    }
  }

  private render(state: "starting" | "running" | "stopped"): void {
    const view = formatStatus(this.status, this.stats, state);
    this.item.text = view.text;
    this.item.tooltip = view.tooltip;
    this.item.backgroundColor =
      view.severity === "error"
        ? new vscode.ThemeColor("statusBarItem.errorBackground")
        : view.severity === "warning"
          ? new vscode.ThemeColor("statusBarItem.warningBackground")
          : undefined;
  }

  dispose(): void {
    if (this.timer) clearInterval(this.timer);
    this.item.dispose();
  }
}
