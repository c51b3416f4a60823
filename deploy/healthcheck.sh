#!/usr/bin/env bash
# Container health check of a DYSCHAT service image (deploy/Dockerfile). No curl in the image:
# a plain HTTP/1.0 GET over bash's /dev/tcp, healthy when the status line says 200.
#
#   ws-agent                    GET /healthz on DYSCHAT_WS_AGENT_PORT
#   auth, rooms, msg-writer,    GET /metrics on DYSCHAT_<SERVICE>_METRICS_ADDR (their only HTTP
#   search                      port; defaults 127.0.0.1:9101, :9102, :9103, :9104); when it is set
#                               empty (no endpoint), healthy while the process runs
#
# Usage: dyschat-healthcheck [host:port path]   (defaults from the variables above)
set -euo pipefail

if [ "$#" -ge 2 ]; then
  addr="$1" path="$2"
elif [ "${DYSCHAT_SERVICE:-}" = "ws-agent" ]; then
  addr="${DYSCHAT_WS_AGENT_PORT:-127.0.0.1:8080}" path=/healthz
else
  case "${DYSCHAT_SERVICE:-}" in
    auth) addr="${DYSCHAT_AUTH_METRICS_ADDR-127.0.0.1:9101}" ;;
    rooms) addr="${DYSCHAT_ROOMS_METRICS_ADDR-127.0.0.1:9102}" ;;
    msg-writer) addr="${DYSCHAT_MSG_WRITER_METRICS_ADDR-127.0.0.1:9103}" ;;
    search) addr="${DYSCHAT_SEARCH_METRICS_ADDR-127.0.0.1:9104}" ;;
    *) echo "DYSCHAT_SERVICE=${DYSCHAT_SERVICE:-} is not a DYSCHAT service" >&2; exit 1 ;;
  esac
  path=/metrics
  [ -n "$addr" ] || exit 0
fi

host="${addr%:*}"
port="${addr##*:}"
# A wildcard listen address is reached on loopback.
case "$host" in "" | 0.0.0.0 | "[::]" | "::") host=127.0.0.1 ;; esac
host="${host#[}"
host="${host%]}"

exec 3<>"/dev/tcp/$host/$port" || { echo "cannot connect to $host:$port" >&2; exit 1; }
printf 'GET %s HTTP/1.0\r\nHost: %s\r\nConnection: close\r\n\r\n' "$path" "$host" >&3
IFS= read -r -t 3 status <&3 || { echo "no answer from $host:$port$path" >&2; exit 1; }
exec 3<&-
case "$status" in
  "HTTP/1."?" 200"*) exit 0 ;;
  *) echo "$host:$port$path answered: $status" >&2; exit 1 ;;
esac
