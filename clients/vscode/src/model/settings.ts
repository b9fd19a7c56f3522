// Settings -> server launch command and initializationOptions (docs/lsp.md "Initialization
// options"). Pure.

import * as os from "os";
import * as path from "path";

/** The `maestro.*` settings as VS Code hands them over (unset strings are ""). */
export interface RawSettings {
  path?: string;
  interpreter?: string;
  /** "workspace" | "on" | "off" (a boolean from older settings.json files means on/off). */
  speculation?: string | boolean;
  coordinatorUrl?: string;
  daemonAutostart?: boolean;
  codeLens?: { enabled?: boolean; impactedOnSource?: boolean; testFunctions?: boolean };
  diagnostics?: boolean;
  testExplorer?: boolean;
  runOnSave?: boolean;
}

export interface InitOptions {
  interpreter: string | null;
  /** null: the workspace's `ml.speculation.enabled` decides. */
  speculation: boolean | null;
  coordinatorUrl: string | null;
  daemonAutostart: boolean;
  /** testFunctions: off by default in VS Code, whose Testing gutter runs and shows each test. */
  codeLens: { enabled: boolean; impactedOnSource: boolean; testFunctions: boolean };
  diagnostics: boolean;
  runOnSave: boolean;
}

export interface ServerCommand {
  command: string;
  args: string[];
}

/** Expand `~`, `${workspaceFolder}`, `${userHome}` and `${env:NAME}`; "" and blanks become null. */
export function expand(
  value: string | undefined | null,
  workspaceFolder?: string,
  env: NodeJS.ProcessEnv = process.env,
): string | null {
  if (value === undefined || value === null) return null;
  let v = value.trim();
  if (!v) return null;
  const home = env.HOME || os.homedir();
  v = v.replace(/\$\{userHome\}/g, home);
  if (workspaceFolder) v = v.replace(/\$\{workspaceFolder\}/g, workspaceFolder);
  v = v.replace(/\$\{env:([A-Za-z_][A-Za-z0-9_]*)\}/g, (_m, name: string) => env[name] ?? "");
  if (v === "~") v = home;
  else if (v.startsWith("~/")) v = path.join(home, v.slice(2));
  return v;
}

/** The `maestro.speculation` choice as the server takes it: on, off, or null (the workspace's). */
export function speculationOption(value: string | boolean | undefined): boolean | null {
  if (value === true || value === "on") return true;
  if (value === false || value === "off") return false;
  return null;
}

export function toInitOptions(raw: RawSettings, workspaceFolder?: string): InitOptions {
  return {
    interpreter: expand(raw.interpreter, workspaceFolder),
    speculation: speculationOption(raw.speculation),
    coordinatorUrl: expand(raw.coordinatorUrl, workspaceFolder),
    daemonAutostart: raw.daemonAutostart ?? true,
    codeLens: {
      enabled: raw.codeLens?.enabled ?? true,
      impactedOnSource: raw.codeLens?.impactedOnSource ?? true,
      testFunctions: raw.codeLens?.testFunctions ?? false,
    },
    diagnostics: raw.diagnostics ?? true,
    runOnSave: raw.runOnSave ?? false,
  };
}

/**
 * How to launch the server: `maestro.path` -> `<path> lsp`; else `maestro.interpreter` ->
 * `<python> -P -m maestro.server`; else `maestro lsp` from PATH.
 */
export function serverCommand(raw: RawSettings, workspaceFolder?: string): ServerCommand {
  const exe = expand(raw.path, workspaceFolder);
  if (exe) return { command: exe, args: ["lsp"] };
  const py = expand(raw.interpreter, workspaceFolder);
  if (py) return { command: py, args: ["-P", "-m", "maestro.server"] };
  return { command: "maestro", args: ["lsp"] };
}

/** Whether a settings change needs a server restart (launch command) or just a config push. */
export function needsRestart(before: RawSettings, after: RawSettings, workspaceFolder?: string): boolean {
  const a = serverCommand(before, workspaceFolder);
  const b = serverCommand(after, workspaceFolder);
  return (
    a.command !== b.command ||
    a.args.join("\0") !== b.args.join("\0") ||
    (before.testExplorer ?? true) !== (after.testExplorer ?? true)
  );
}
