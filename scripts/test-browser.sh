#!/usr/bin/env bash
# `make test_browser`: the web client tested end to end in headless Chromium (tests/browser).
#
#  1. Installs what is missing, when running as root on Debian: chromium (apt, /usr/bin/chromium)
#     and nodejs + npm (Node >= 20 is needed by playwright-core). Never downloads a browser
#     through Playwright: Debian's chromium is driven by playwright-core's executablePath.
#  2. Installs the npm dependencies from tests/browser/package-lock.json (npm ci).
#  3. Builds the four service binaries (debug) and finds nats-server / redis-server
#     (scripts/ensure-servers.sh), then runs `node --test`, whose summary is machine-readable.
#
# Environment (optional): CHROMIUM_BIN (default /usr/bin/chromium), NATS_SERVER_BIN,
# REDIS_SERVER_BIN, CARGO (default cargo), BROWSER_TEST_REPORTER (default spec; e.g. tap),
# KEEP_BROWSER_TEST_DIR=1 keeps the mesh's temporary directory and logs.
# Screenshots are written to tests/browser/screenshots/ (git-ignored).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
CARGO="${CARGO:-cargo}"
CHROMIUM_BIN="${CHROMIUM_BIN:-/usr/bin/chromium}"
export CHROMIUM_BIN

log() { printf '[test-browser] %s\n' "$*" >&2; }
die() {
  log "ERROR: $*"
  exit 1
}

APT_UPDATED=0
apt_install() {
  [ "$(id -u)" -eq 0 ] || die "$1 is missing and installing it needs root (apt-get install -y $*)"
  command -v apt-get >/dev/null || die "$1 is missing and apt-get is not available; install it yourself"
  if [ "$APT_UPDATED" -eq 0 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
    APT_UPDATED=1
  fi
  log "installing $* with apt-get"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >&2
}

node_major() { node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0; }

[ -x "$CHROMIUM_BIN" ] || apt_install chromium
[ -x "$CHROMIUM_BIN" ] || die "no Chromium at $CHROMIUM_BIN (set CHROMIUM_BIN)"
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then apt_install nodejs npm; fi
[ "$(node_major)" -ge 20 ] || die "Node.js >= 20 is needed (found $(node --version 2>/dev/null || echo none))"

if [ ! -d tests/browser/node_modules/playwright-core ] ||
  [ tests/browser/package-lock.json -nt tests/browser/node_modules/.package-lock.json ]; then
  log "installing npm dependencies (npm ci)"
  (cd tests/browser && npm ci --no-audit --no-fund >&2)
fi

env_lines="$(scripts/ensure-servers.sh)"
eval "$env_lines"
export NATS_SERVER_BIN REDIS_SERVER_BIN

log "building the service binaries"
"$CARGO" build --bins -p dyschat-auth -p dyschat-rooms -p dyschat-msg-writer -p dyschat-search -p dyschat-ws-agent >&2

cd tests/browser
exec node --test --test-reporter="${BROWSER_TEST_REPORTER:-spec}" test/
