import * as vscode from "vscode";
import type { RawSettings } from "./model/settings";

export function readSettings(scope?: vscode.ConfigurationScope): RawSettings {
  const c = vscode.workspace.getConfiguration("maestro", scope);
  return {
    path: c.get<string>("path", ""),
    interpreter: c.get<string>("interpreter", ""),
    speculation: c.get<string | boolean>("speculation", "workspace"),
    coordinatorUrl: c.get<string>("coordinatorUrl", ""),
    daemonAutostart: c.get<boolean>("daemonAutostart", true),
    codeLens: {
      enabled: c.get<boolean>("codeLens.enabled", true),
      impactedOnSource: c.get<boolean>("codeLens.impactedOnSource", true),
      testFunctions: c.get<boolean>("codeLens.testFunctions", false),
    },
    diagnostics: c.get<boolean>("diagnostics", true),
    testExplorer: c.get<boolean>("testExplorer", true),
    runOnSave: c.get<boolean>("runOnSave", false),
  };
}

export function firstFolder(): string | undefined {
  return vscode.workspace.workspaceFolders?.[0]?.uri.fsPath;
}
