// What a run's end (maestro/runFinished) says to a person. Pure: unit-tested without VS Code.

import type { RunResult } from "./protocol";

export interface FinishedLine {
  text: string;
  severity: "error" | "warning" | "info";
}

export function finishedLine(r: RunResult): FinishedLine {
  const label = r.label || "run";
  if (r.error) return { text: `${label}: ${r.error.message}`, severity: "error" };
  if (r.cancelled) return { text: `${label}: ${r.message ?? "cancelled"}`, severity: "info" };
  if (r.message && r.passed === undefined) return { text: r.message, severity: "info" };
  const bits = (["passed", "failed", "errors", "skipped"] as const)
    .filter((k) => (r[k] ?? 0) > 0)
    .map((k) => `${r[k]} ${k}`);
  if (r.cachedFiles) bits.push(`${r.cachedFiles} files cached`);
  const text = `${label}: ${bits.join(", ") || "no tests"}`;
  return { text, severity: r.failed || r.errors ? "warning" : "info" };
}
