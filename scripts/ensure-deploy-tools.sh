#!/usr/bin/env bash
# Makes sure the tools of `make deploy_check` are installed: docker-compose (config check of the
# compose files), promtool (Prometheus config check), nginx (the edge config, also run live by
# tests/tests/deploy.rs) and PyYAML for the structural checks. nats-server comes from
# scripts/ensure-servers.sh.
#
# All from Debian's packages (docker-compose, prometheus, nginx), installed with apt-get when
# running as root; services the packages would start are not (no init here, policy-rc.d). As a
# non-root user it installs nothing and says what is missing.
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
apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
command -v docker-compose >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1 &&
  { command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ]; } || {
  log "apt-get ran but a tool is still missing"
  exit 1
}
log "installed: ${missing[*]}"
