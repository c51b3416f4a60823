#!/usr/bin/env bash
# `make deploy_check`: checks every deployment file without a Docker engine.
#
#   1. NATS configs (deploy/nats/*.conf) pass `nats-server -t` with the variables they need, fail
#      naming the variable without them, and keep `sync_interval: always`.
#   2. docker-compose.dev.yml and docker-compose.prod.yml pass `docker-compose config`; the prod
#      file refuses to resolve without its required secrets.
#   3. Structural checks across the files (scripts/check-deploy.py): topology, health checks,
#      restart policies, mounts, nginx upstreams and WebSocket upgrade, Prometheus targets,
#      dashboard data sources.
#   4. deploy/prometheus/*.yml pass `promtool check config`.
#   5. The dashboards are what scripts/gen-dashboards.py writes.
#   6. deploy/nginx/nginx.conf passes `nginx -t` (upstream names pointed at loopback), and its
#      access log format logs no query string (tokens may come in `/ws?token=`).
#   7. Shell syntax of the scripts the images and make targets run.
#
# Tools come from scripts/ensure-servers.sh (nats-server) and scripts/ensure-deploy-tools.sh
# (docker-compose, promtool, nginx; installed with apt-get as root). A tool that cannot be
# installed (not root) skips its checks with a printed reason, except under CI=true, where it is
# a failure. The live checks (dashboard metrics against a running mesh's /metrics, the prod NATS
# config as a real three-node cluster, nginx in front of a real agent) are in
# tests/tests/deploy/.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

failures=0
skips=0
checks=0
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT

ok() { checks=$((checks + 1)); printf '  ok    %s\n' "$*"; }
fail() { checks=$((checks + 1)); failures=$((failures + 1)); printf '  FAIL  %s\n' "$*"; }
skip() {
  if [ "${CI:-}" = "true" ]; then
    fail "$* (a tool is missing, and CI must run every check)"
  else
    skips=$((skips + 1))
    printf '  SKIP  %s\n' "$*"
  fi
}
section() { printf '\n[deploy-check] %s\n' "$*"; }

# ---- tools ------------------------------------------------------------------------------------
section "tools"
if [ -z "${NATS_SERVER_BIN:-}" ]; then
  if env_lines="$(scripts/ensure-servers.sh 2>"$TMP/ensure.log")"; then
    eval "$env_lines"
  else
    cat "$TMP/ensure.log" >&2
  fi
fi
scripts/ensure-deploy-tools.sh || true
have() { command -v "$1" >/dev/null 2>&1; }
NGINX="$(command -v nginx || { [ -x /usr/sbin/nginx ] && echo /usr/sbin/nginx; } || true)"
PY=/usr/bin/python3
"$PY" -c 'import yaml' 2>/dev/null || PY=python3

# ---- 1. NATS ----------------------------------------------------------------------------------
section "NATS configs (nats-server -t)"
if [ -n "${NATS_SERVER_BIN:-}" ] && [ -x "$NATS_SERVER_BIN" ]; then
  users_env=(DYSCHAT_AUTH_NATS_PASSWORD=check DYSCHAT_ROOMS_NATS_PASSWORD=check
    DYSCHAT_MSG_WRITER_NATS_PASSWORD=check DYSCHAT_WS_AGENT_NATS_PASSWORD=check
    DYSCHAT_SEARCH_NATS_PASSWORD=check NATS_ADMIN_PASSWORD=check)
  prod_env=(NATS_SERVER_NAME=nats-1 NATS_STORE_DIR="$TMP/nats" "${users_env[@]}"
    NATS_CLUSTER_USER=cluster NATS_CLUSTER_PASSWORD=check NATS_ROUTE_1=nats://nats-1:6222
    NATS_ROUTE_2=nats://nats-2:6222 NATS_ROUTE_3=nats://nats-3:6222)
  if out="$(env -i "${prod_env[@]}" "$NATS_SERVER_BIN" -t -c deploy/nats/nats-prod.conf 2>&1)"; then
    ok "nats-prod.conf is valid ($("$NATS_SERVER_BIN" --version 2>&1))"
  else
    fail "nats-prod.conf: $out"
  fi
  if out="$(env -i "$NATS_SERVER_BIN" -t -c deploy/nats/nats-prod.conf 2>&1)"; then
    fail "nats-prod.conf is accepted without its variables"
  elif grep -q "NATS_" <<<"$out"; then
    ok "nats-prod.conf without its variables is refused, naming one: ${out##*: }"
  else
    fail "nats-prod.conf without variables fails for another reason: $out"
  fi
  if out="$(env -i "${users_env[@]}" NATS_STORE_DIR="$TMP/nats-dev" "$NATS_SERVER_BIN" -t -c deploy/nats/nats-dev.conf 2>&1)"; then
    ok "nats-dev.conf is valid"
  else
    fail "nats-dev.conf: $out"
  fi
else
  skip "nats-server not available (scripts/ensure-servers.sh failed)"
fi
for conf in deploy/nats/nats-prod.conf deploy/nats/nats-dev.conf; do
  if grep -Eq '^[[:space:]]*sync_interval:[[:space:]]*always' "$conf"; then
    ok "$conf fsyncs every write (sync_interval: always)"
  else
    fail "$conf lost sync_interval: always"
  fi
done

# ---- 2. compose ---------------------------------------------------------------------------------
section "compose files (docker-compose config)"
if docker compose version >/dev/null 2>&1; then
  COMPOSE=(docker compose)
elif have docker-compose; then
  COMPOSE=(docker-compose)
else
  COMPOSE=()
fi
# Placeholder secrets, only for resolving the file.
secrets=(DYSCHAT_AUTH_SECRET=deploy-check-secret-0123456789abcdef0123456789
  DYSCHAT_AUTH_NATS_PASSWORD=check DYSCHAT_ROOMS_NATS_PASSWORD=check DYSCHAT_MSG_WRITER_NATS_PASSWORD=check
  DYSCHAT_WS_AGENT_NATS_PASSWORD=check DYSCHAT_SEARCH_NATS_PASSWORD=check NATS_ADMIN_PASSWORD=check NATS_CLUSTER_PASSWORD=check
  DYSCHAT_REDIS_PASS=check GRAFANA_ADMIN_PASSWORD=check)
# Resolve with a clean environment: no .env of the developer, no DYSCHAT_* of the shell.
compose_env=(env -i PATH="$PATH" HOME="${HOME:-/root}")
resolved=1
: >"$TMP/empty.env"
if [ "${#COMPOSE[@]}" -gt 0 ]; then
  if out="$("${compose_env[@]}" "${COMPOSE[@]}" --project-directory "$ROOT" --env-file "$TMP/empty.env" -f docker-compose.dev.yml config 2>&1 >"$TMP/dev.yml")"; then
    ok "docker-compose.dev.yml resolves (${COMPOSE[*]} config)"
  else
    fail "docker-compose.dev.yml: $out"
    resolved=0
  fi
  if out="$("${compose_env[@]}" "${secrets[@]}" "${COMPOSE[@]}" --project-directory "$ROOT" --env-file "$TMP/empty.env" -f docker-compose.prod.yml config 2>&1 >"$TMP/prod.yml")"; then
    ok "docker-compose.prod.yml resolves with its required variables set"
  else
    fail "docker-compose.prod.yml: $out"
    resolved=0
  fi
  if out="$("${compose_env[@]}" "${COMPOSE[@]}" --project-directory "$ROOT" --env-file "$TMP/empty.env" -f docker-compose.prod.yml config 2>&1 >/dev/null)"; then
    fail "docker-compose.prod.yml resolves without DYSCHAT_AUTH_SECRET and the other secrets"
  else
    ok "docker-compose.prod.yml refuses to resolve without its secrets (\"${out##*: }\")"
  fi
  if [ "$resolved" -eq 1 ]; then
    section "structure (scripts/check-deploy.py)"
    if out="$("$PY" scripts/check-deploy.py "$TMP/prod.yml" "$TMP/dev.yml" 2>&1)"; then
      ok "$out"
    else
      fail "structural checks:"$'\n'"$out"
    fi
  fi
else
  skip "docker-compose config (neither 'docker compose' nor docker-compose is installed)"
fi

# ---- 3. Prometheus ----------------------------------------------------------------------------
section "Prometheus configs (promtool check config)"
if have promtool; then
  for f in deploy/prometheus/prometheus.yml deploy/prometheus/prometheus-dev.yml; do
    if out="$(promtool check config "$f" 2>&1)"; then
      ok "$f is valid"
    else
      fail "$f: $out"
    fi
  done
else
  skip "promtool not installed (Debian package prometheus)"
fi

# ---- 4. dashboards ----------------------------------------------------------------------------
section "Grafana dashboards"
if out="$(python3 scripts/gen-dashboards.py --check 2>&1)"; then
  ok "deploy/grafana/dashboards/*.json are what scripts/gen-dashboards.py writes"
else
  fail "$out"
fi
for f in deploy/grafana/dashboards/*.json; do
  if python3 -m json.tool "$f" >/dev/null 2>&1; then ok "$f is valid JSON"; else fail "$f is not valid JSON"; fi
done

# ---- 5. nginx ---------------------------------------------------------------------------------
section "nginx access log (no query strings, so no token)"
nginx_conf="$(sed -e 's/#.*//' deploy/nginx/nginx.conf)"
log_format="$(tr '\n' ' ' <<<"$nginx_conf" | grep -o 'log_format[[:space:]]\+dyschat[^;]*;' || true)"
if [ -z "$log_format" ]; then
  fail "deploy/nginx/nginx.conf has no \`log_format dyschat\`"
elif grep -Eq '\$\{?(request|request_uri|args|query_string|is_args|arg_[A-Za-z0-9_]+|http_referer)([^A-Za-z0-9_]|$)' <<<"$log_format"; then
  fail "log_format dyschat logs a query string (\$request, \$request_uri, \$args, \$arg_*, \$http_referer): $log_format"
else
  ok "log_format dyschat logs paths without their query string"
fi
access_logs="$(grep -E '^[[:space:]]*access_log[[:space:]]' <<<"$nginx_conf" || true)"
bad_logs="$(grep -Ev 'access_log[[:space:]]+(off|[^[:space:];]+[[:space:]]+dyschat)([[:space:]][^;]*)?;' <<<"$access_logs" || true)"
if [ -z "$access_logs" ]; then
  fail "deploy/nginx/nginx.conf sets no access_log (nginx's default format logs the query string)"
elif [ -n "$bad_logs" ]; then
  fail "access_log without the dyschat format: $(tr -s ' ' <<<"$bad_logs")"
else
  ok "every access_log uses the dyschat format (or is off)"
fi

section "nginx config (nginx -t)"
if [ -n "$NGINX" ]; then
  mkdir -p "$TMP/nginx"
  # The compose service names do not resolve here; point them at loopback, keep the rest.
  sed -E -e 's/server ws-agent-[0-9]+:8080/server 127.0.0.1:9/' \
    -e "s|^pid .*;|pid $TMP/nginx/nginx.pid;|" -e 's/listen 80;/listen 127.0.0.1:9;/' \
    deploy/nginx/nginx.conf >"$TMP/nginx/nginx.conf"
  if out="$("$NGINX" -t -q -p "$TMP/nginx/" -e "$TMP/nginx/error.log" -c "$TMP/nginx/nginx.conf" 2>&1)"; then
    ok "deploy/nginx/nginx.conf is valid ($("$NGINX" -v 2>&1))"
  else
    fail "deploy/nginx/nginx.conf: $out"
  fi
else
  skip "nginx not installed (Debian package nginx)"
fi

# ---- 6. scripts -------------------------------------------------------------------------------
section "scripts"
for f in deploy/healthcheck.sh scripts/run-prod.sh scripts/deploy-check.sh scripts/ensure-deploy-tools.sh; do
  if bash -n "$f"; then ok "$f: shell syntax"; else fail "$f: shell syntax"; fi
done
if grep -q 'HEALTHCHECK' deploy/Dockerfile && grep -q '^USER ' deploy/Dockerfile; then
  ok "deploy/Dockerfile runs as a non-root user with a HEALTHCHECK"
else
  fail "deploy/Dockerfile must set USER and HEALTHCHECK"
fi

printf '\n'
if [ "$failures" -gt 0 ]; then
  echo "deploy-check: $((checks - failures)) passed, $failures failed, $skips skipped"
  exit 1
fi
echo "deploy-check: $checks passed, 0 failed, $skips skipped"
