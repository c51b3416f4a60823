#!/usr/bin/env bash
# `make run_dev`: the whole DYSCHAT mesh on this machine, no Docker.
#
#  1. Starts nats-server (JetStream, store in .dev/nats, deploy/nats/nats-dev.conf: each service
#     logs in as its own user with production's permissions, development passwords) on
#     127.0.0.1:4222 and redis-server (AOF in .dev/redis) on 127.0.0.1:6379, unless something
#     already answers there, or DYSCHAT_NATS_URL / DYSCHAT_REDIS_ADDR point elsewhere (then that
#     server is yours to run).
#  2. Builds the release binaries (cargo build --release --bins).
#  3. Runs dyschat-auth, dyschat-rooms, dyschat-msg-writer, dyschat-search (index in .dev/search)
#     and dyschat-ws-agent with one combined
#     log stream, every line prefixed with the service's name.
#  4. Prints where to connect once the agent answers /readyz (the mesh can serve).
#  5. On Ctrl-C or SIGTERM stops the services (SIGTERM, they drain), then the servers it started
#     itself (never ones it found running), and waits for all of them. The stop path never needs
#     a working stdout (`make run_dev | tee log` loses tee to the same Ctrl-C), and everything it
#     started also gets SIGTERM from the kernel if this script dies any other way (`setpriv
#     --pdeathsig`). A run whose script was killed with SIGKILL leaves its PIDs in
#     .dev/run-dev.pids; the next run stops those leftovers instead of reusing them.
#
# The services read DYSCHAT_* variables only; whatever you export is passed through unchanged.
# Server logs go to .dev/logs/. `make clean_dev` deletes .dev/ (all dev data).
#
# Environment read by this script itself:
#   DYSCHAT_NATS_URL, DYSCHAT_REDIS_ADDR  when set, use these servers and start none
#   DYSCHAT_WS_AGENT_PORT                 only to print where to connect (default 127.0.0.1:8080)
#   DYSCHAT_JAEGER_URL                    only to print where traces go
#   DYSCHAT_DRAIN_TIMEOUT_SECS            how long to wait for services after SIGTERM (+5 s)
#   RUN_DEV_SKIP_BUILD=1                  do not run cargo build (use the binaries already built)
#   RUN_DEV_BIN_DIR                       where the service binaries are (default target/release)
#   RUN_DEV_DIR                           data and logs (default .dev)
#   RUN_DEV_READY_TIMEOUT_SECS            how long to wait for /readyz before giving up (60)
#   RUN_DEV_NATS_PORT, RUN_DEV_NATS_MONITOR_PORT, RUN_DEV_REDIS_PORT
#                                         ports of the servers it starts (4222, 8222, 6379)
#   NATS_SERVER_BIN, REDIS_SERVER_BIN     passed to scripts/ensure-servers.sh
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

DEV="${RUN_DEV_DIR:-$ROOT/.dev}"
BIN_DIR="${RUN_DEV_BIN_DIR:-$ROOT/target/release}"
PID_FILE="$DEV/run-dev.pids"
LOGS="$DEV/logs"
NATS_PORT="${RUN_DEV_NATS_PORT:-4222}"
NATS_MONITOR_PORT="${RUN_DEV_NATS_MONITOR_PORT:-8222}"
REDIS_PORT="${RUN_DEV_REDIS_PORT:-6379}"
SERVICES=(auth rooms msg-writer search ws-agent)

if [ -t 1 ]; then
  BOLD=$'\e[1m' RESET=$'\e[0m'
  COLORS=($'\e[36m' $'\e[35m' $'\e[33m' $'\e[34m' $'\e[32m')
else
  BOLD='' RESET=''
  COLORS=('' '' '' '' '')
fi

# Output may go to a pipe whose reader (tee) died with the same Ctrl-C: a write must never kill
# the script or fail the stop path, so SIGPIPE is ignored and write errors are dropped.
trap '' PIPE
say() { printf '%s[run-dev]%s %s\n' "$BOLD" "$RESET" "$*" 2>/dev/null || true; }
die() {
  printf '%s[run-dev]%s ERROR: %s\n' "$BOLD" "$RESET" "$*" >&2
  exit 1
}

# Whether 127.0.0.1:$1 accepts TCP connections.
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# The HTTP status of GET http://$1:$2$3 (empty when nothing answers within 2 s); no curl needed.
http_status() {
  timeout 2 bash -c '
    exec 3<>"/dev/tcp/$1/$2" || exit 0
    printf "GET %s HTTP/1.0\r\nHost: %s\r\n\r\n" "$3" "$1" >&3
    read -r _ status _ <&3 && printf "%s" "$status"
  ' _ "$1" "$2" "$3" 2>/dev/null || true
}

# Replaces the (background) subshell it runs in with "$@" in its own session (Ctrl-C reaches
# only this script, which stops things in order), which the kernel sends SIGTERM if this script
# dies, however it dies. Called as `detached cmd ... &`, so `$!` is the command's own PID.
if command -v setpriv >/dev/null 2>&1; then
  detached() { exec setsid setpriv --pdeathsig TERM -- "$@"; }
else
  detached() { exec setsid "$@"; }
fi

# ---- cleanup: everything this script started, by PID ------------------------------------------
SERVICE_PIDS=()
SERVICE_NAMES=()
SERVER_PIDS=()
SERVER_NAMES=()
STOPPING=0
SLEEP_PID=
NATS_STARTED=0

# stop_pids TIMEOUT_SECS NAME... -- PID...  : SIGTERM, wait up to TIMEOUT, then SIGKILL; reaps all.
stop_pids() {
  local timeout="$1"
  shift
  local names=() pids=() pid i deadline alive
  while [ "$1" != "--" ]; do
    names+=("$1")
    shift
  done
  shift
  pids=("$@")
  [ "${#pids[@]}" -gt 0 ] || return 0
  for i in "${!pids[@]}"; do
    kill -0 "${pids[$i]}" 2>/dev/null && say "stopping ${names[$i]} (pid ${pids[$i]})"
    kill -TERM "${pids[$i]}" 2>/dev/null || true
  done
  deadline=$((SECONDS + timeout))
  while :; do
    alive=0
    for pid in "${pids[@]}"; do
      kill -0 "$pid" 2>/dev/null && alive=1
    done
    [ "$alive" -eq 1 ] || break
    if [ "$SECONDS" -ge "$deadline" ]; then
      for i in "${!pids[@]}"; do
        if kill -0 "${pids[$i]}" 2>/dev/null; then
          say "${names[$i]} did not stop within ${timeout}s; killing it"
          kill -KILL "${pids[$i]}" 2>/dev/null || true
        fi
      done
      break
    fi
    sleep 0.2
  done
  for pid in "${pids[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
}

cleanup() {
  [ "$STOPPING" -eq 0 ] || return 0
  STOPPING=1
  trap '' INT TERM
  # Only kill the pacing sleep: a `wait` on it from inside a trap that interrupted the main
  # loop's `wait` can block in bash until some other child exits.
  if [ -n "$SLEEP_PID" ]; then
    kill "$SLEEP_PID" 2>/dev/null || true
  fi
  local drain=$((${DYSCHAT_DRAIN_TIMEOUT_SECS:-10} + 5))
  # Services first, while NATS and Redis are still there for them to drain into.
  if [ "${#SERVICE_PIDS[@]}" -gt 0 ]; then
    stop_pids "$drain" "${SERVICE_NAMES[@]}" -- "${SERVICE_PIDS[@]}"
  fi
  if [ "${#SERVER_PIDS[@]}" -gt 0 ]; then
    stop_pids 15 "${SERVER_NAMES[@]}" -- "${SERVER_PIDS[@]}"
  fi
  rm -f "$PID_FILE"
  # Let the log prefixers flush the last lines.
  sleep 0.2
}

# The PIDs of this run, so that a later run can stop them if this script is killed outright.
record_pids() {
  printf '%s\n' "${SERVER_PIDS[@]}" "${SERVICE_PIDS[@]}" >"$PID_FILE" 2>/dev/null || true
}

# Stops what a previous run left behind (its script was killed before it could clean up).
stop_leftovers() {
  [ -f "$PID_FILE" ] || return 0
  local pid left=()
  while read -r pid; do
    [ -n "$pid" ] || continue
    # Only our own processes: a PID may have been reused by something else since.
    if [ -r "/proc/$pid/cmdline" ] &&
      tr '\0' ' ' <"/proc/$pid/cmdline" | grep -Eq 'dyschat-|nats-server|redis-server'; then
      left+=("$pid")
    fi
  done <"$PID_FILE"
  if [ "${#left[@]}" -gt 0 ]; then
    say "stopping ${#left[@]} process(es) left by an earlier run: ${left[*]}"
    kill -TERM "${left[@]}" 2>/dev/null || true
    local deadline=$((SECONDS + 20)) pid alive
    while :; do
      alive=0
      for pid in "${left[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
      [ "$alive" -eq 1 ] && [ "$SECONDS" -lt "$deadline" ] || break
      sleep 0.2
    done
    kill -KILL "${left[@]}" 2>/dev/null || true
  fi
  rm -f "$PID_FILE"
}

on_signal() {
  echo
  say "shutting down"
  cleanup
  say "stopped"
  exit 0
}
trap on_signal INT TERM
trap cleanup EXIT

# ---- decide which servers to start -------------------------------------------------------------
START_NATS=0
START_REDIS=0
if [ -n "${DYSCHAT_NATS_URL:-}" ]; then
  say "DYSCHAT_NATS_URL=$DYSCHAT_NATS_URL is set: using that NATS, starting none"
else
  START_NATS=1
fi
if [ -n "${DYSCHAT_REDIS_ADDR:-}" ]; then
  say "DYSCHAT_REDIS_ADDR=$DYSCHAT_REDIS_ADDR is set: using that Redis, starting none"
else
  START_REDIS=1
fi
# The development passwords of the services' NATS users (deploy/nats/dyschat-users.conf), the
# same as docker-compose.dev.yml's: `dev-password-<user>`. Used only with a NATS this script runs
# or finds on the default port; with DYSCHAT_NATS_URL set, export your own DYSCHAT_NATS_USER and
# DYSCHAT_NATS_PASSWORD.
NATS_DEV_ENV=()
for user in dyschat-auth dyschat-rooms dyschat-msg-writer dyschat-search dyschat-ws-agent; do
  var="${user#dyschat-}"
  var="DYSCHAT_${var//-/_}_NATS_PASSWORD"
  NATS_DEV_ENV+=("${var^^}=dev-password-$user")
done
NATS_DEV_ENV+=(NATS_ADMIN_PASSWORD=dev-password-admin)
# How a service is started: as its own NATS user unless you chose one.
service_env() {
  if [ "$START_NATS" -eq 1 ] && [ -z "${DYSCHAT_NATS_USER:-}" ]; then
    echo "DYSCHAT_NATS_USER=dyschat-$1" "DYSCHAT_NATS_PASSWORD=dev-password-dyschat-$1"
  fi
}

if [ "$START_NATS" -eq 1 ] || [ "$START_REDIS" -eq 1 ]; then
  env_lines="$("$ROOT/scripts/ensure-servers.sh")" || die "scripts/ensure-servers.sh failed"
  eval "$env_lines"
fi

# ---- build --------------------------------------------------------------------------------------
if [ "${RUN_DEV_SKIP_BUILD:-0}" != "1" ]; then
  say "building: cargo build --release --bins"
  cargo build --release --bins
fi
for svc in "${SERVICES[@]}"; do
  [ -x "$BIN_DIR/dyschat-$svc" ] || die "$BIN_DIR/dyschat-$svc is missing; did the build fail?"
done

mkdir -p "$LOGS"
stop_leftovers

# ---- servers ------------------------------------------------------------------------------------
# Servers run in their own session (setsid): Ctrl-C reaches only this script, which stops the
# services before the servers they depend on.
wait_for_port() { # NAME PID PORT LOGFILE
  local name="$1" pid="$2" port="$3" logfile="$4" deadline=$((SECONDS + 15))
  until port_open "$port"; do
    if ! kill -0 "$pid" 2>/dev/null; then
      tail -n 20 "$logfile" >&2 || true
      die "$name exited at start; its log: $logfile"
    fi
    [ "$SECONDS" -lt "$deadline" ] || die "$name does not answer on 127.0.0.1:$port after 15 s; its log: $logfile"
    sleep 0.1
  done
}

if [ "$START_NATS" -eq 1 ]; then
  if port_open "$NATS_PORT"; then
    say "something already listens on 127.0.0.1:$NATS_PORT: using it as NATS (not started, will not be stopped)"
  else
    mkdir -p "$DEV/nats"
    say "starting nats-server on 127.0.0.1:$NATS_PORT (JetStream store .dev/nats, log .dev/logs/nats.log)"
    # deploy/nats/nats-dev.conf: every service logs in as its own user with production's
    # permissions (the flags override only addresses, name and store).
    detached env "${NATS_DEV_ENV[@]}" NATS_STORE_DIR="$DEV/nats" "$NATS_SERVER_BIN" \
      -c "$ROOT/deploy/nats/nats-dev.conf" -a 127.0.0.1 -p "$NATS_PORT" -m "$NATS_MONITOR_PORT" \
      </dev/null >>"$LOGS/nats.log" 2>&1 &
    SERVER_PIDS+=("$!")
    SERVER_NAMES+=("nats-server")
    NATS_STARTED=1
    record_pids
    wait_for_port nats-server "$!" "$NATS_PORT" "$LOGS/nats.log"
  fi
  export DYSCHAT_NATS_URL="nats://127.0.0.1:$NATS_PORT"
fi

if [ "$START_REDIS" -eq 1 ]; then
  if port_open "$REDIS_PORT"; then
    say "something already listens on 127.0.0.1:$REDIS_PORT: using it as Redis (not started, will not be stopped)"
  else
    mkdir -p "$DEV/redis"
    say "starting redis-server on 127.0.0.1:$REDIS_PORT (AOF in .dev/redis, log .dev/logs/redis.log)"
    # Durable enough for development: append-only file fsynced every second, no RDB snapshots.
    detached "$REDIS_SERVER_BIN" --bind 127.0.0.1 --port "$REDIS_PORT" --protected-mode yes \
      --dir "$DEV/redis" --appendonly yes --appendfsync everysec --save "" \
      --daemonize no --loglevel notice </dev/null >>"$LOGS/redis.log" 2>&1 &
    SERVER_PIDS+=("$!")
    SERVER_NAMES+=("redis-server")
    record_pids
    wait_for_port redis-server "$!" "$REDIS_PORT" "$LOGS/redis.log"
  fi
  export DYSCHAT_REDIS_ADDR="127.0.0.1:$REDIS_PORT"
fi

# ---- services -----------------------------------------------------------------------------------
# The services without an HTTP port serve /metrics on a port the kernel picks (each logs the
# address it bound), so that two meshes on one machine never collide; set the variables to fix
# them.
export DYSCHAT_AUTH_METRICS_ADDR="${DYSCHAT_AUTH_METRICS_ADDR-127.0.0.1:0}"
export DYSCHAT_ROOMS_METRICS_ADDR="${DYSCHAT_ROOMS_METRICS_ADDR-127.0.0.1:0}"
export DYSCHAT_MSG_WRITER_METRICS_ADDR="${DYSCHAT_MSG_WRITER_METRICS_ADDR-127.0.0.1:0}"
export DYSCHAT_SEARCH_METRICS_ADDR="${DYSCHAT_SEARCH_METRICS_ADDR-127.0.0.1:0}"
# The search index lives with the other development data (make clean_dev removes it; an empty
# directory is rebuilt from the stream).
export DYSCHAT_SEARCH_INDEX_DIR="${DYSCHAT_SEARCH_INDEX_DIR-$DEV/search}"

width=0
for svc in "${SERVICES[@]}"; do
  [ "${#svc}" -gt "$width" ] && width=${#svc}
done
for i in "${!SERVICES[@]}"; do
  svc="${SERVICES[$i]}"
  prefix="$(printf '%s[%s]%*s%s ' "${COLORS[$i]}" "$svc" $((width - ${#svc})) '' "$RESET")"
  # The service runs in its own session (setsid) so that Ctrl-C reaches only this script, which
  # then sends SIGTERM in order. The prefixer ignores INT/TERM and ends when the service's output
  # closes, so the service's last lines are never lost.
  # shellcheck disable=SC2046 # two words, NAME=value without spaces
  detached env $(service_env "$svc") "$BIN_DIR/dyschat-$svc" </dev/null \
    > >(trap '' INT TERM; exec sed -u "s/^/${prefix//\//\\/}/") 2>&1 &
  SERVICE_PIDS+=("$!")
  SERVICE_NAMES+=("dyschat-$svc")
done
record_pids

ws_addr="${DYSCHAT_WS_AGENT_PORT:-127.0.0.1:8080}"
ws_host="${ws_addr%:*}"
ws_port="${ws_addr##*:}"
case "$ws_host" in "" | 0.0.0.0 | "[::]") ws_host=127.0.0.1 ;; esac

# The banner comes when the mesh can serve: /readyz is 200 only once NATS and Redis answer and
# auth and rooms respond to $SRV.PING.
ready_deadline=$((SECONDS + ${RUN_DEV_READY_TIMEOUT_SECS:-60}))
until [ "$(http_status "$ws_host" "$ws_port" /readyz)" = 200 ]; do
  for i in "${!SERVICE_PIDS[@]}"; do
    kill -0 "${SERVICE_PIDS[$i]}" 2>/dev/null || die "${SERVICE_NAMES[$i]} exited during start; see its lines above"
  done
  [ "$SECONDS" -lt "$ready_deadline" ] || die "the mesh is not ready after ${RUN_DEV_READY_TIMEOUT_SECS:-60} s (http://$ws_host:$ws_port/readyz)"
  sleep 0.3 &
  SLEEP_PID=$!
  wait "$SLEEP_PID" || true
  SLEEP_PID=
done

cat <<EOF 2>/dev/null || true
${BOLD}[run-dev]${RESET} DYSCHAT is ready (pids ${SERVICE_PIDS[*]}); Ctrl-C stops everything.
  web client  http://$ws_host:$ws_port/
  HTTP API    http://$ws_host:$ws_port/api/v1/
  WebSocket   ws://$ws_host:$ws_port/ws
  health      http://$ws_host:$ws_port/readyz   metrics http://$ws_host:$ws_port/metrics
  NATS        $DYSCHAT_NATS_URL$( [ "$NATS_STARTED" -eq 1 ] && echo "   (monitoring http://127.0.0.1:$NATS_MONITOR_PORT/)")
  Redis       $DYSCHAT_REDIS_ADDR
EOF
if [ -n "${DYSCHAT_JAEGER_URL:-}" ]; then
  say "traces exported to $DYSCHAT_JAEGER_URL (Jaeger UI: usually port 16686 of that host)"
fi

# ---- supervise ---------------------------------------------------------------------------------
# If any service exits on its own, stop the rest: a half mesh only confuses.
while :; do
  for i in "${!SERVICE_PIDS[@]}"; do
    pid="${SERVICE_PIDS[$i]}"
    if ! kill -0 "$pid" 2>/dev/null; then
      status=0
      wait "$pid" || status=$?
      say "${SERVICE_NAMES[$i]} exited with status $status; stopping the others"
      unset 'SERVICE_PIDS[i]' 'SERVICE_NAMES[i]'
      SERVICE_PIDS=("${SERVICE_PIDS[@]}")
      SERVICE_NAMES=("${SERVICE_NAMES[@]}")
      cleanup
      exit 1
    fi
  done
  # `wait` on a background sleep returns at once when a signal arrives, so Ctrl-C is prompt.
  sleep 1 &
  SLEEP_PID=$!
  wait "$SLEEP_PID" || true
  SLEEP_PID=
done
