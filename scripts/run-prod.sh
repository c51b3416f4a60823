#!/usr/bin/env bash
# `make run_prod`: builds the four service images and starts the production topology of
# docker-compose.prod.yml (three NATS nodes, two of each service behind nginx, Redis, Jaeger,
# Prometheus, Loki, Alloy, Grafana) in the background, then says where everything is.
#
# Needs Docker with the compose plugin (`docker compose`) or docker-compose, a running engine, and
# the required variables in the environment or in .env next to the compose file (see
# deploy/prod.env.example). Each missing piece stops it with one clear message and exit 1.
#
# Environment: COMPOSE_FILE_PROD (default docker-compose.prod.yml), RUN_PROD_NO_BUILD=1 to use the
# images as they are.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
FILE="${COMPOSE_FILE_PROD:-docker-compose.prod.yml}"

say() { printf '[run-prod] %s\n' "$*"; }
die() {
  printf '[run-prod] %s\n' "$@" >&2
  exit 1
}

[ -f "$FILE" ] || die "$FILE not found: the production compose file is missing."

if docker compose version >/dev/null 2>&1; then
  COMPOSE=(docker compose -f "$FILE")
elif command -v docker-compose >/dev/null 2>&1; then
  COMPOSE=(docker-compose -f "$FILE")
else
  die "run_prod needs Docker with the compose plugin ('docker compose') or docker-compose;" \
    "install Docker (https://docs.docker.com/engine/install/), or use 'make run_dev' (no Docker)."
fi

# The variables first: every missing required one (`${VAR:?...}` in the file) is named at once,
# whether it is missing from the environment or from .env.
missing=()
for var in $(grep -o '\${[A-Za-z_][A-Za-z0-9_]*:?' "$FILE" | sed 's/^\${//; s/:?$//' | sort -u); do
  [ -n "${!var:-}" ] && continue
  [ -f .env ] && grep -Eq "^[[:space:]]*${var}=.+" .env && continue
  missing+=("$var")
done
if [ "${#missing[@]}" -gt 0 ]; then
  die "required variables are not set: ${missing[*]}" \
    "Put them in .env next to $FILE (cp deploy/prod.env.example .env, then fill it in) or export them."
fi

if ! config_err="$("${COMPOSE[@]}" config -q 2>&1)"; then
  die "$FILE cannot be used as it is:" "  $config_err" \
    "Set the required variables in the environment or in .env (cp deploy/prod.env.example .env)."
fi

if command -v docker >/dev/null 2>&1; then
  docker info >/dev/null 2>&1 ||
    die "no Docker engine answers ('docker info' failed): start Docker, or use 'make run_dev' (no Docker)."
else
  die "the docker command is missing; install Docker (https://docs.docker.com/engine/install/), or use 'make run_dev'."
fi

if [ "${RUN_PROD_NO_BUILD:-0}" = "1" ]; then
  "${COMPOSE[@]}" up -d
else
  "${COMPOSE[@]}" up -d --build
fi

port="${DYSCHAT_HTTP_PORT:-8080}"
cat <<EOM
[run-prod] DYSCHAT production topology is starting (${COMPOSE[*]} ps shows health).
  chat (HTTP API, WebSocket, web client)  http://127.0.0.1:$port/   (nginx -> ws-agent-1, ws-agent-2)
  Grafana                                  http://127.0.0.1:3000/   (admin / GRAFANA_ADMIN_PASSWORD)
  Jaeger UI                                http://127.0.0.1:16686/
  Prometheus                               http://127.0.0.1:9090/
  NATS monitoring (nats-1)                 http://127.0.0.1:8222/
  logs: ${COMPOSE[*]} logs -f    stop: ${COMPOSE[*]} down  (add -v to delete the data volumes)
EOM
