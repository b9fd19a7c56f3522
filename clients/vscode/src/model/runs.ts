// What a run's end (maestro/runFinished) says to a person. Pure: unit-tested without VS Code.

import type { DecisionRecord, ExplainResult, PolicyDenial, RunResult, RunSummary } from "./protocol";

export interface FinishedLine {
  text: string;
  severity: "error" | "warning" | "info";
  /** the language server already showed it (window/showMessage): do not pop it up again */
  shownByServer?: boolean;
}

/** "retry in 90 s", "retry in 1800 s (~30 min)"; "" without advice. */
export function retryText(ms: number | null | undefined): string {
  if (ms === null || ms === undefined) return "";
  const s = Math.max(1, Math.round(ms / 1000));
  if (s >= 7200) return `retry in ${s} s (~${(s / 3600).toFixed(1)} h)`;
  if (s >= 120) return `retry in ${s} s (~${Math.round(s / 60)} min)`;
  return `retry in ${s} s`;
}

/** A policy refusal in one line: the decision, then the remediation and retry time unless it says them. */
export function deniedText(d: PolicyDenial): string {
  let text = `run refused by policy: ${d.message}`;
  if (d.remediation && !text.includes(d.remediation)) text += `. Remediation: ${d.remediation}`;
  const retry = retryText(d.retryAfterMs);
  const short = retry.split(" (")[0];
  if (retry && text.includes(short)) text = text.replace(short, retry);
  else if (retry) text += ` (${retry})`;
  return text;
}

/** The run's counts as pytest words them: the server's line, or (an older server) the counts. */
export function countsBits(r: RunSummary): string[] {
  if (r.counts) return [r.counts];
  return (["passed", "failed", "errors", "skipped"] as const)
    .filter((k) => (r[k] ?? 0) > 0)
    .map((k) => `${r[k]} ${k}`);
}

export function finishedLine(r: RunResult): FinishedLine {
  const label = r.label || "run";
  if (r.denied) return { text: `${label}: ${deniedText(r.denied)}`, severity: "warning", shownByServer: true };
  if (r.error) return { text: `${label}: ${r.error.message}`, severity: "error" };
  if (r.cancelled) return { text: `${label}: ${r.message ?? "cancelled"}`, severity: "info" };
  if (r.message && r.passed === undefined) return { text: r.message, severity: "info" };
  const bits = countsBits(r);
  if (r.cachedFiles) bits.push(`${r.cachedFiles} ${r.cachedFiles === 1 ? "file" : "files"} cached`);
  // pytest stopped (crashed, killed) before these files finished: the counts leave them out
  if (r.notRunFiles) bits.push(`${r.notRunFiles} files did not finish (not cached)`);
  let text = `${label}: ${bits.join(", ") || "no tests"}`;
  // the server's note on a run with counts (it ran the saved files, not the unsaved edits)
  if (r.message) text += `; ${r.message}`;
  return { text, severity: r.failed || r.errors || r.notRunFiles ? "warning" : "info" };
}

/** One decision as explain shows it: summary, then each enforced rule's remediation and the retry time. */
export function decisionLines(d: DecisionRecord): string[] {
  const lines = [`${d.time} ${d.summary}`];
  for (const rule of d.rules) {
    if (rule.shadow) continue;
    if (rule.remediation && !d.summary.includes(rule.remediation))
      lines.push(`  ${rule.rule}: remediation: ${rule.remediation}`);
  }
  const retry = retryText(d.retryAfterMs);
  if (d.result === "deny" && retry) lines.push(`  ${retry} (execution ${d.executionId})`);
  else if (d.executionId) lines.push(`  maestro explain --execution ${d.executionId}`);
  return lines;
}

/** The explain answer for the output channel: the reasons, then the policy decisions about the test. */
export function explainText(res: ExplainResult): string {
  const lines = [...res.reasons.filter((r) => !r.startsWith("policy: "))];
  if (res.decisions.length) {
    lines.push(`policy decisions (${res.decisions.length}, newest first):`);
    for (const d of res.decisions) lines.push(...decisionLines(d).map((l) => `  ${l}`));
  } else lines.push("policy: no decisions about it");
  return lines.join("\n");
}
