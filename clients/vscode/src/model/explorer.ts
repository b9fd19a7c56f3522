// The test-explorer protocol (maestro/testExplorer/*) -> Testing API operations. Pure: the VS Code
// adapter (src/testing.ts) applies the actions this module computes.

import type { BeginParams, EndParams, Location, ProgressParams, TestItem } from "./protocol";

export interface MessageSpec {
  text: string;
  location: Location | null;
}

export type Action =
  | { op: "enqueued"; id: string; cached: boolean }
  | { op: "started"; id: string }
  | { op: "passed" | "skipped"; id: string; durationMs?: number; cached: boolean }
  | { op: "failed" | "errored"; id: string; durationMs?: number; cached: boolean; messages: MessageSpec[] };

/** One progress notification -> one Testing API action. */
export function progressAction(p: ProgressParams): Action {
  const cached = !!p.cached;
  switch (p.state) {
    case "enqueued":
      return { op: "enqueued", id: p.id, cached };
    case "started":
      return { op: "started", id: p.id };
    case "passed":
    case "skipped":
      return { op: p.state, id: p.id, durationMs: p.durationMs, cached };
    case "failed":
    case "errored": {
      const messages: MessageSpec[] = [];
      const prefix = cached ? "(cached) " : "";
      const nodeSuffix = p.nodeid && p.nodeid !== p.id ? ` [${p.nodeid.slice(p.id.length)}]` : "";
      if (p.message) {
        // the first line names the failure (the Test Results list shows it); pytest's whole
        // report follows it in the peek, as its terminal prints it
        const details = p.message.details ? `\n\n${p.message.details}` : "";
        messages.push({ text: prefix + p.message.text + nodeSuffix + details, location: p.message.location ?? null });
        const rel = p.message.related;
        if (rel) {
          const file = rel.uri.replace(/^.*\//, "");
          messages.push({ text: `raised here (${file}:${rel.range.start.line + 1}): ${p.message.text}`, location: rel });
        }
      } else {
        messages.push({ text: prefix + p.state + nodeSuffix, location: null });
      }
      return { op: p.state, id: p.id, durationMs: p.durationMs, cached, messages };
    }
    default:
      return { op: "started", id: p.id };
  }
}

/**
 * The item an id maps to: the id itself when known, else its closest known parent
 * (`a.py::C::t[1]` -> `a.py::C::t` -> `a.py::C` -> `a.py`); null if none.
 */
export function resolveId(id: string, known: (id: string) => boolean): string | null {
  let cur = id;
  if (known(cur)) return cur;
  const bracket = cur.indexOf("[");
  if (bracket > 0) {
    cur = cur.slice(0, bracket);
    if (known(cur)) return cur;
  }
  while (cur.includes("::")) {
    cur = cur.slice(0, cur.lastIndexOf("::"));
    if (known(cur)) return cur;
  }
  return null;
}

/** Every id in a discovered tree (depth first), for indexing. */
export function allIds(items: TestItem[]): string[] {
  const out: string[] = [];
  const walk = (it: TestItem) => {
    out.push(it.id);
    it.children.forEach(walk);
  };
  items.forEach(walk);
  return out;
}

/** The protocol's `include`/`exclude` for a run request built from Testing API ids. */
export function runParams(
  include: string[] | undefined,
  exclude: string[] | undefined,
  root?: string,
): { include?: string[]; exclude?: string[]; root?: string } {
  const out: { include?: string[]; exclude?: string[]; root?: string } = {};
  if (include && include.length) out.include = dedupeNested(include);
  if (exclude && exclude.length) out.exclude = [...new Set(exclude)];
  if (root) out.root = root;
  return out;
}

/** Drop ids already covered by an included parent (`a.py` covers `a.py::t`, folder `tests`
 * covers `tests/a.py`). */
export function dedupeNested(ids: string[]): string[] {
  const set = [...new Set(ids)].sort();
  return set.filter((id) => !set.some((p) => p !== id && (id.startsWith(p + "::") || id.startsWith(p + "/"))));
}

/** The folders above a test file, outermost first: `tests/unit/test_a.py` -> `tests`,
 * `tests/unit` (their ids are the folders' root-relative paths, which pytest runs as they are). */
export function folderChain(fileId: string): { id: string; label: string }[] {
  const parts = fileId.split("/").slice(0, -1);
  return parts.map((label, i) => ({ id: parts.slice(0, i + 1).join("/"), label }));
}

/** A parametrized test's result: the child item it gets under its function (`[1-2]` under
 * `a.py::test_x`); null for a test without parameters. */
export function paramChild(p: ProgressParams): { parent: string; id: string; label: string } | null {
  if (!p.nodeid || p.nodeid === p.id || !p.nodeid.startsWith(p.id + "[")) return null;
  return { parent: p.id, id: p.nodeid, label: p.nodeid.slice(p.id.length) };
}

type Event =
  | { kind: "progress"; params: ProgressParams }
  | { kind: "end"; params: EndParams };

export interface RouterHooks<R> {
  /** A run started elsewhere (code lens, command, another explorer request): make its handle. */
  create(begin: BeginParams): R;
  progress(handle: R, p: ProgressParams): void;
  end(handle: R, p: EndParams): void;
}

/**
 * Routes notifications to the run they belong to. A run the explorer started gets its runId in the
 * response to `maestro/testExplorer/run`, which may arrive after the run's first notifications:
 * those are buffered until `bind` (or until they turn out to belong to a run started elsewhere).
 */
export class RunRouter<R> {
  private readonly runs = new Map<string, R>();
  private readonly buffered = new Map<string, Event[]>();
  private readonly begun = new Map<string, BeginParams>();
  private readonly finished = new Set<string>();
  private pending = 0;

  constructor(private readonly hooks: RouterHooks<R>) {}

  /** Call before sending `maestro/testExplorer/run`; then `bind` or `abandon`. */
  expect(): void {
    this.pending++;
  }

  bind(runId: string, handle: R): void {
    this.pending = Math.max(0, this.pending - 1);
    this.runs.set(runId, handle);
    this.begun.delete(runId);
    this.flush(runId);
  }

  abandon(): void {
    this.pending = Math.max(0, this.pending - 1);
    if (this.pending === 0) {
      // Whatever explorer-kind runs were held back belong to nobody we know: adopt them.
      for (const [runId, begin] of [...this.begun]) this.adopt(runId, begin);
    }
  }

  has(runId: string): boolean {
    return this.runs.has(runId);
  }

  get active(): number {
    return this.runs.size;
  }

  begin(p: BeginParams): void {
    if (this.runs.has(p.runId) || this.finished.has(p.runId)) return;
    if (p.kind === "explorer" && this.pending > 0) {
      this.begun.set(p.runId, p);
      if (!this.buffered.has(p.runId)) this.buffered.set(p.runId, []);
      return;
    }
    this.adopt(p.runId, p);
  }

  progress(p: ProgressParams): void {
    const h = this.runs.get(p.runId);
    if (h !== undefined) this.hooks.progress(h, p);
    else if (!this.finished.has(p.runId)) this.buffer(p.runId, { kind: "progress", params: p });
  }

  end(p: EndParams): void {
    const h = this.runs.get(p.runId);
    if (h !== undefined) {
      this.runs.delete(p.runId);
      this.finished.add(p.runId);
      this.hooks.end(h, p);
    } else if (!this.finished.has(p.runId)) {
      this.buffer(p.runId, { kind: "end", params: p });
    }
  }

  private adopt(runId: string, begin: BeginParams): void {
    this.begun.delete(runId);
    this.runs.set(runId, this.hooks.create(begin));
    this.flush(runId);
  }

  private buffer(runId: string, ev: Event): void {
    const list = this.buffered.get(runId) ?? [];
    list.push(ev);
    this.buffered.set(runId, list);
  }

  private flush(runId: string): void {
    const events = this.buffered.get(runId) ?? [];
    this.buffered.delete(runId);
    for (const ev of events) {
      if (ev.kind === "progress") this.progress(ev.params);
      else this.end(ev.params);
    }
  }
}
