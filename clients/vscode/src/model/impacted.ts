// maestro/impactedTargets result -> rows of the "Impacted Tests" tree. Pure.

import type { ImpactedResult, ImpactedRow } from "./protocol";

export interface TreeRow {
  id: string;
  label: string;
  description: string;
  tooltip: string;
  icon: "pass" | "error" | "cached" | "stale" | "unsaved" | "unknown" | "info";
  uri: string | null;
  target: string | null;
  children: TreeRow[];
}

function lastText(row: ImpactedRow): string {
  const l = row.last;
  if (!l || !l.tests) return "";
  if (l.failed) return `${l.failed} failed`;
  return `${l.passed ?? l.tests} passed`;
}

function icon(row: ImpactedRow): TreeRow["icon"] {
  if (row.last?.failed) return "error";
  const s = row.cache?.state;
  if (s === "cached") return row.last?.tests ? "pass" : "cached";
  if (s === "stale") return "stale";
  if (s === "unsaved") return "unsaved";
  return "unknown";
}

export function rowOf(row: ImpactedRow, index: number): TreeRow {
  const bits: string[] = [];
  if (row.cache?.state && row.cache.state !== "unknown") bits.push(row.cache.state);
  const last = lastText(row);
  if (last) bits.push(last);
  if (row.unsaved) bits.push("unsaved edit");
  const tooltip = [row.target, row.why ? `why: ${row.why}` : "", row.cache?.describe ?? ""]
    .filter(Boolean)
    .join("\n");
  const children: TreeRow[] = (row.reason ?? []).map((step, i) => ({
    id: `${row.target}#${i}`,
    label: step.text || `${step.source ?? "?"} → ${step.target ?? "?"}`,
    description: [step.kind, step.line ? `line ${step.line}` : ""].filter(Boolean).join(" "),
    tooltip: step.detail ?? "",
    icon: "info",
    uri: null,
    target: null,
    children: [],
  }));
  return {
    id: `${index}:${row.target}`,
    label: row.target,
    description: bits.join(" · "),
    tooltip,
    icon: icon(row),
    uri: row.uri ?? null,
    target: row.target,
    children,
  };
}

export function rowsOf(result: ImpactedResult | null | undefined): TreeRow[] {
  if (!result) return [];
  return (result.impacted ?? []).filter((r) => r.kind !== "declared" || r.uri).map(rowOf);
}

/** Title suffix of the view: "3 impacted test files (unsaved edit)" / "no impacted tests". The rows
 * (and the count) are test files, as on the source file's lens. */
export function summary(result: ImpactedResult | null | undefined, file?: string): string {
  if (!result) return "";
  const n = result.count ?? result.impacted.length;
  const unsaved = result.source === "buffers" || result.source === "mixed";
  const what = n === 0 ? "no impacted tests" : `${n} impacted test file${n === 1 ? "" : "s"}`;
  return `${what}${file ? ` by ${file}` : ""}${unsaved ? " (unsaved edit)" : ""}`;
}
