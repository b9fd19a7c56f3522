import * as vscode from "vscode";
import { readRaw, type RawSettings } from "./model/settings";

export function readSettings(scope?: vscode.ConfigurationScope): RawSettings {
  const c = vscode.workspace.getConfiguration("maestro", scope);
  return readRaw((key, fallback) => c.get(key, fallback));
}

export function firstFolder(): string | undefined {
  return vscode.workspace.workspaceFolders?.[0]?.uri.fsPath;
}
