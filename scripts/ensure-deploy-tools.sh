#!/usr/bin/env bash
# Makes sure the tools of `make deploy_check` are installed: docker-compose (config check of the
# compose files), promtool (Prometheus config check), nginx (the edge config, also run live by
# tests/tests/deploy/) and PyYAML for the structural checks. nats-server comes from
# scripts/ensure-servers.sh.
#
# All from Debian's packages (docker-compose, prometheus, nginx), installed with apt-get when
# running as root, without starting the services the packages ship (policy-rc.d). As a non-root
# user it installs nothing and says what is missing.
#
# Idempotent. Progress on stderr; exit status 0 when every tool is there, 1 otherwise.
set -euo pipefail

log() { printf '[ensure-deploy-tools] %s\n' "$*" >&2; }

missing=()
command -v docker-compose >/dev/null 2>&1 || missing+=(docker-compose)
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing+=(nginx)
# PyYAML for the system Python (docker-compose depends on it, but check on its own too).
/usr/bin/python3 -c 'import yaml' >/dev/null 2>&1 || missing+=(python3-yaml)

if [ "${#missing[@]}" -eq 0 ]; then
  log "all there: docker-compose, promtool, nginx, python3-yaml"
  exit 0
fi

if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  log "missing: ${missing[*]}; install them (Debian: sudo apt-get install ${missing[*]})"
  exit 1
fi

export DEBIAN_FRONTEND=noninteractive
log "apt-get update"
apt-get update -qq >&2
log "apt-get install ${missing[*]}"
# --no-install-recommends keeps CI lean (the prometheus package recommends exporters we do
# not need; promtool is in the package itself).
# The packages would start prometheus and nginx as services; nothing here wants them running.
# Debian's policy-rc.d hook refuses service starts during the install (restored afterwards).
policy=/usr/sbin/policy-rc.d
made_policy=0
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' >"$policy"
  chmod 0755 "$policy"
  made_policy=1
fi
status=0
apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2 || status=$?
[ "$made_policy" -eq 0 ] || rm -f "$policy"
[ "$status" -eq 0 ] || { log "apt-get install failed ($status)"; exit 1; }
command -v docker-compose >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1 &&
  { command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ]; } || {
  log "apt-get ran but a tool is still missing"
  exit 1
}
log "installed: ${missing[*]}"
