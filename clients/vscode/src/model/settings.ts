// Settings -> server launch command and initializationOptions (docs/lsp.md "Initialization
// options"). Pure.

import * as os from "os";
import * as path from "path";
import type { CodeLensSettings, Settings } from "./protocol";

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

/** Reads one `maestro.*` setting (the key without the prefix), `fallback` when unset. */
export type SettingGetter = <T>(key: string, fallback: T) => T;

/** The `maestro.*` settings the extension sends or launches with; each fallback is the
 * package.json default. */
export function readRaw(get: SettingGetter): RawSettings {
  return {
    path: get<string>("path", ""),
    interpreter: get<string>("interpreter", ""),
    speculation: get<string | boolean>("speculation", "workspace"),
    coordinatorUrl: get<string>("coordinatorUrl", ""),
    daemonAutostart: get<boolean>("daemonAutostart", true),
    codeLens: {
      enabled: get<boolean>("codeLens.enabled", true),
      impactedOnSource: get<boolean>("codeLens.impactedOnSource", true),
      testFunctions: get<boolean>("codeLens.testFunctions", false),
    },
    diagnostics: get<boolean>("diagnostics", true),
    testExplorer: get<boolean>("testExplorer", true),
    runOnSave: get<boolean>("runOnSave", false),
  };
}

/** What the extension sends: the server's settings type (generated from server/settings.py), with
 * every key VS Code has a setting for present. `speculation` null: the workspace's
 * `ml.speculation.enabled` decides. `codeLens.testFunctions` is off by default in VS Code, whose
 * Testing gutter runs and shows each test. */
export type InitOptions = Required<
  Pick<
    Settings,
    "interpreter" | "speculation" | "coordinatorUrl" | "daemonAutostart" | "diagnostics" | "runOnSave"
  >
> & { codeLens: Required<CodeLensSettings> };

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
