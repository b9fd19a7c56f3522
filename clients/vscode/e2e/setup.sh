#!/usr/bin/env bash
# Prepare code-server (VS Code for the browser, from the npm registry) + playwright-core for the
# real-VS-Code end-to-end test (tests/e2e/test_vscode.py). Recipe: ../shared/notes/vscode-e2e.md.
#
#   clients/vscode/e2e/setup.sh [CACHE_DIR]
#
# CACHE_DIR defaults to $MAESTRO_VSCODE_E2E_DIR or <repo>/.bench/vscode-e2e (gitignored). The work is
# done once: a stamp file (keyed on the code-server version) makes later runs return at once.
# Debian packages are installed when missing and we are root with apt-get; otherwise the script
# says what is missing and exits 2 (the pytest test then skips with that reason).
set -euo pipefail

CODE_SERVER_VERSION="${CODE_SERVER_VERSION:-4.100.3}"
PLAYWRIGHT_VERSION="${PLAYWRIGHT_VERSION:-1.52.0}"
HERE="$(cd "$(dirname "$0")" && pwd)"
REPO="$(cd "$HERE/../../.." && pwd)"
DIR="${1:-${MAESTRO_VSCODE_E2E_DIR:-$REPO/.bench/vscode-e2e}}"
STAMP="$DIR/.ready-$CODE_SERVER_VERSION-$PLAYWRIGHT_VERSION"

if [ -f "$STAMP" ]; then
  echo "code-server $CODE_SERVER_VERSION ready in $DIR (cached)"
  exit 0
fi

t0=$(date +%s)
log() { echo "[setup $(( $(date +%s) - t0 ))s] $*"; }

# 1. Debian packages (compilers and headers for the native modules, ripgrep, chromium).
PKGS="build-essential pkg-config libkrb5-dev libx11-dev libxkbfile-dev libsecret-1-dev ripgrep chromium"
missing=""
for p in $PKGS; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    log "apt-get install$missing"
    apt-get update -qq
    RUNLEVEL=1 DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
  else
    echo "missing Debian packages:$missing (need root + apt-get to install them)" >&2
    exit 2
  fi
fi
command -v node >/dev/null || { echo "node not found" >&2; exit 2; }
major=$(node -p 'process.versions.node.split(".")[0]')
[ "$major" -ge 20 ] || { echo "node >= 20 needed (found $(node --version))" >&2; exit 2; }

mkdir -p "$DIR"
cd "$DIR"
[ -f package.json ] || echo '{"name":"maestro-vscode-e2e","private":true}' > package.json

# 2. code-server without its postinstall (it downloads ripgrep and breaks as root).
log "npm install code-server@$CODE_SERVER_VERSION playwright-core@$PLAYWRIGHT_VERSION"
npm install --no-audit --no-fund --loglevel=error --ignore-scripts \
  "code-server@$CODE_SERVER_VERSION" "playwright-core@$PLAYWRIGHT_VERSION"

# 3. The postinstall, by hand.
VS="$DIR/node_modules/code-server/lib/vscode"
cd "$VS"
log "vscode runtime dependencies"
npm install --no-audit --no-fund --loglevel=error --omit=dev --ignore-scripts
for m in @parcel/watcher @vscode/spdlog @vscode/deviceid native-watchdog node-pty kerberos; do
  if [ -d "node_modules/$m" ]; then
    log "node-gyp rebuild $m"
    (cd "node_modules/$m" && npx --yes node-gyp rebuild -j max >/dev/null 2>&1) \
      || { echo "node-gyp rebuild failed in $m" >&2; exit 1; }
  fi
done
mkdir -p node_modules/@vscode/ripgrep/bin
cp "$(command -v rg)" node_modules/@vscode/ripgrep/bin/rg
ln -sfn node_modules node_modules.asar
log "built-in extensions' dependencies"
(cd extensions && npm install --no-audit --no-fund --loglevel=error --omit=dev --ignore-scripts)
cd "$DIR"
log "npm rebuild argon2"
npm rebuild argon2 >/dev/null

node node_modules/code-server/out/node/entry.js --version >/dev/null
touch "$STAMP"
log "code-server $CODE_SERVER_VERSION ready in $DIR"
