#!/usr/bin/env bash
# Build the VS Code extension from a clean checkout: install (npm ci), typecheck, unit tests
# (node --test), esbuild bundle, vsce package -> maestro-vscode-<version>.vsix in this folder.
set -euo pipefail
cd "$(dirname "$0")"
t0=$(date +%s)
step() { echo "[vscode $(( $(date +%s) - t0 ))s] $*"; }

export npm_config_audit=false npm_config_fund=false npm_config_update_notifier=false
if [ -d node_modules ] && [ node_modules/.package-lock.json -nt package-lock.json ]; then
  step "node_modules up to date"
else
  step "npm ci"
  npm ci --no-audit --no-fund --loglevel=error
fi
step "typecheck (tsc --noEmit)"
npx --no-install tsc --noEmit -p .
step "unit tests (node --test)"
rm -rf out
npx --no-install tsc -p tsconfig.test.json
node --test out/test/
step "bundle (esbuild)"
rm -rf dist
node esbuild.mjs --production
version=$(node -p 'require("./package.json").version')
step "package (vsce)"
rm -f maestro-vscode-*.vsix
npx --no-install vsce package --no-dependencies --skip-license -o "maestro-vscode-$version.vsix" </dev/null
step "built $(pwd)/maestro-vscode-$version.vsix"
