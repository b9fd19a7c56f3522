// Status bar text from maestro/status + maestro/cacheStats. Pure.

import type { CacheStatsInfo, StatusInfo, WorkspaceStatus } from "./protocol";

type LinkState = WorkspaceStatus["state"];

/** What the status bar reads of maestro/cacheStats (an older server may leave some out). */
export type CacheCounters = Partial<Pick<CacheStatsInfo, "hits" | "misses" | "hitRate" | "wallSecondsSaved" | "bytes">>;

export interface StatusView {
  text: string;
  tooltip: string;
  severity: "ok" | "busy" | "warning" | "error";
}

/** 0.734 -> "73%"; hit rate from hitRate or hits/misses; null when nothing is known. */
export function hitRate(stats: CacheCounters | null | undefined): string | null {
  if (!stats) return null;
  let rate = typeof stats.hitRate === "number" ? stats.hitRate : null;
  if (rate === null && typeof stats.hits === "number" && typeof stats.misses === "number") {
    const total = stats.hits + stats.misses;
    rate = total > 0 ? stats.hits / total : null;
  }
  if (rate === null || !Number.isFinite(rate)) return null;
  if (rate > 1) rate = rate / 100; // tolerate a percentage
  return `${Math.round(rate * 100)}%`;
}

const ORDER: LinkState[] = ["error", "disconnected", "connecting", "connected"];

/** The worst state over the workspaces (error > disconnected > connecting > connected). */
export function overallState(status: StatusInfo | null | undefined): string {
  const states: LinkState[] = (status?.workspaces ?? []).map((w) => w.state);
  if (!states.length) return status ? "idle" : "starting";
  for (const s of ORDER) if (states.includes(s)) return s;
  return states[0];
}

/** "15:01:54": an epoch time in seconds as the local wall clock (as the server's warning says it). */
export function clockOf(epochS: number): string {
  const d = new Date(epochS * 1000);
  return [d.getHours(), d.getMinutes(), d.getSeconds()].map((n) => String(n).padStart(2, "0")).join(":");
}

/** The coordinator's backoff still in force for a workspace (until > now), or null. */
export function backoffOf(w: WorkspaceStatus, nowMs: number): { until: number; rule: string | null } | null {
  const remote = w.daemon?.remote;
  const until = remote?.backoff_until;
  if (typeof until !== "number" || until * 1000 <= nowMs) return null;
  return { until, rule: remote?.backoff_rule ?? null };
}

export function formatStatus(
  status: StatusInfo | null | undefined,
  stats: CacheCounters | null | undefined,
  serverState: "starting" | "running" | "stopped" = "running",
  nowMs: number = Date.now(),
): StatusView {
  if (serverState === "stopped") {
    return { text: "$(error) Maestro: stopped", tooltip: "The Maestro language server is not running.", severity: "error" };
  }
  if (serverState === "starting") {
    return { text: "$(sync~spin) Maestro", tooltip: "Starting the Maestro language server…", severity: "busy" };
  }
  const state = overallState(status);
  const runs = status?.runs ?? [];
  const rate = hitRate(stats);
  const lines: string[] = [`Maestro ${status?.version ?? ""}`.trim()];
  for (const w of status?.workspaces ?? []) {
    let line = `${w.root}: daemon ${w.state}`;
    if (w.pid) line += ` (pid ${w.pid})`;
    if (w.restarts) line += `, ${w.restarts} restarts`;
    if (w.lastError) line += ` — ${w.lastError}`;
    lines.push(line);
    const b = backoffOf(w, nowMs);
    if (b) {
      lines.push(
        `Team cache asked us to wait until ${clockOf(b.until)} (rule ${b.rule ?? "not given"}); ` +
          "working from the local cache",
      );
    }
  }
  if (stats) {
    const h = stats.hits ?? 0;
    const m = stats.misses ?? 0;
    lines.push(`Cache: ${h} hits, ${m} misses${rate ? ` (${rate})` : ""}`);
    if (typeof stats.wallSecondsSaved === "number") {
      lines.push(`Time saved: ${stats.wallSecondsSaved.toFixed(1)} s`);
    }
  }
  for (const r of runs) {
    const prog = r.total ? ` ${r.done ?? 0}/${r.total}` : "";
    lines.push(`Running: ${r.label}${prog}`);
  }
  const tooltip = lines.join("\n");
  const cache = rate ? ` · cache ${rate}` : "";
  if (runs.length) {
    const r = runs[0];
    const prog = r.total ? ` ${r.done ?? 0}/${r.total}` : "";
    return { text: `$(sync~spin) Maestro: running${prog}${cache}`, tooltip, severity: "busy" };
  }
  const waits = (status?.workspaces ?? []).map((w) => backoffOf(w, nowMs)).filter((b) => b !== null);
  const latest = waits.length ? Math.max(...waits.map((b) => b.until)) : null;
  switch (state) {
    case "connected":
    case "idle":
      if (latest !== null) {
        return { text: `$(clock) Maestro: team cache wait until ${clockOf(latest)}${cache}`, tooltip, severity: "warning" };
      }
      return { text: `$(check) Maestro${cache}`, tooltip, severity: "ok" };
    case "connecting":
    case "starting":
      return { text: `$(sync~spin) Maestro: connecting${cache}`, tooltip, severity: "busy" };
    case "disconnected":
      return { text: `$(debug-disconnect) Maestro: daemon down${cache}`, tooltip, severity: "warning" };
    default:
      return { text: `$(error) Maestro: ${state}${cache}`, tooltip, severity: "error" };
  }
}
