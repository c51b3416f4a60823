#!/usr/bin/env python3
"""Structural checks of the deployment files, beyond what the tools' own validators see.

Reads the compose files as `docker-compose config` resolved them (anchors merged, variables
interpolated) and checks them against each other and the rest of deploy/:

  * the production topology is what the docs promise: three NATS nodes on nats-prod.conf, two of
    each service, R3 streams, prod mode, Redis with AOF, nginx, Jaeger, Prometheus, Loki, Alloy,
    Grafana; every container has a restart policy and a health check (or a stated reason not);
  * every bind-mounted file exists; services wait for healthy NATS and Redis;
  * nginx balances exactly the ws-agent services and forwards the WebSocket upgrade;
  * Prometheus scrapes every service instance on the port its metrics variable names, and every
    target is a compose service;
  * the dashboards are valid JSON and use only the provisioned data sources.

Usage: check-deploy.py PROD_RESOLVED.yml DEV_RESOLVED.yml   (paths of `docker-compose config`
output). Exit 1 with one line per problem.
"""

import json
import re
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
problems = []


def problem(msg):
    problems.append(msg)


# The passwords deploy/nats/dyschat-users.conf reads from the NATS nodes' environment.
NATS_USER_PASSWORDS = (
    "DYSCHAT_AUTH_NATS_PASSWORD",
    "DYSCHAT_ROOMS_NATS_PASSWORD",
    "DYSCHAT_MSG_WRITER_NATS_PASSWORD",
    "DYSCHAT_WS_AGENT_NATS_PASSWORD",
    "DYSCHAT_SEARCH_NATS_PASSWORD",
    "NATS_ADMIN_PASSWORD",
)


def env_of(svc):
    env = svc.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {k: ("" if v is None else str(v)) for k, v in env.items()}


def bind_sources(svc):
    for vol in svc.get("volumes") or []:
        if isinstance(vol, dict):
            if vol.get("type") == "bind":
                yield vol["source"]
        else:
            source = vol.split(":", 1)[0]
            if source.startswith(("/", ".")):
                yield source


def command_text(svc):
    cmd = svc.get("command") or []
    return cmd if isinstance(cmd, str) else " ".join(map(str, cmd))


# Services whose image has no shell or HTTP client to run a health check with.
NO_HEALTHCHECK = {
    "nats-exporter": "FROM scratch image; Prometheus's up{job=\"nats\"} watches it",
}
DYSCHAT = ("auth", "rooms", "msg-writer", "search", "ws-agent")
METRICS_VAR = {
    "auth": "DYSCHAT_AUTH_METRICS_ADDR",
    "rooms": "DYSCHAT_ROOMS_METRICS_ADDR",
    "msg-writer": "DYSCHAT_MSG_WRITER_METRICS_ADDR",
    "search": "DYSCHAT_SEARCH_METRICS_ADDR",
    "ws-agent": "DYSCHAT_WS_AGENT_PORT",
}


def kind_of(name):
    """ws-agent-2 -> ws-agent; nats-exporter-1 -> nats-exporter; nats-3 -> nats."""
    return re.sub(r"-\d+$", "", name)


def check_common(label, services):
    for name, svc in services.items():
        kind = kind_of(name)
        if svc.get("restart") not in ("always", "unless-stopped", "on-failure"):
            problem(f"{label}: {name} has no restart policy")
        hc = svc.get("healthcheck")
        if kind in NO_HEALTHCHECK:
            if hc:
                problem(f"{label}: {name} has a health check its image cannot run")
        elif not hc or hc.get("disable") or not hc.get("test"):
            problem(f"{label}: {name} has no health check")
        for source in bind_sources(svc):
            if source == "/var/run/docker.sock":
                continue
            if not Path(source).exists():
                problem(f"{label}: {name} mounts {source}, which does not exist")
        if kind in DYSCHAT:
            build = svc.get("build") or {}
            args = build.get("args") or {}
            if args.get("SERVICE") != kind:
                problem(f"{label}: {name} builds SERVICE={args.get('SERVICE')!r}, expected {kind!r}")
            dockerfile = Path(build.get("context", ROOT)) / build.get("dockerfile", "Dockerfile")
            if not dockerfile.exists():
                problem(f"{label}: {name} builds from {dockerfile}, which does not exist")
            env = env_of(svc)
            if not env.get("DYSCHAT_JAEGER_URL", "").startswith("http://jaeger:4317"):
                problem(f"{label}: {name} does not export traces to jaeger:4317")
            if METRICS_VAR[kind] not in env:
                problem(f"{label}: {name} does not set {METRICS_VAR[kind]}")
            deps = svc.get("depends_on") or {}
            for dep, cond in (deps.items() if isinstance(deps, dict) else ((d, {}) for d in deps)):
                if (cond or {}).get("condition") != "service_healthy":
                    problem(f"{label}: {name} starts before {dep} is healthy")


def check_prometheus(label, services, prom_path):
    prom = yaml.safe_load(prom_path.read_text())
    targets = {}
    for job in prom.get("scrape_configs", []):
        for sc in job.get("static_configs", []):
            for t in sc.get("targets", []):
                targets[t] = job["job_name"]
    hosts = {t.rsplit(":", 1)[0] for t in targets}
    for host in hosts - set(services) - {"localhost"}:
        problem(f"{label}: {prom_path.name} scrapes {host}, which is not a compose service")
    for name, svc in services.items():
        kind = kind_of(name)
        if kind in DYSCHAT:
            addr = env_of(svc).get(METRICS_VAR[kind], "")
            port = addr.rsplit(":", 1)[-1]
            if f"{name}:{port}" not in targets:
                problem(f"{label}: {prom_path.name} does not scrape {name}:{port} ({METRICS_VAR[kind]}={addr})")
            elif targets[f"{name}:{port}"] != kind:
                problem(f"{label}: {name} is scraped under job {targets[f'{name}:{port}']}, expected {kind}")
        if kind == "nats-exporter" and f"{name}:7777" not in targets:
            problem(f"{label}: {prom_path.name} does not scrape {name}:7777")


def check_prod(services):
    label = "docker-compose.prod.yml"
    expected = (
        ["nats-1", "nats-2", "nats-3", "nats-exporter-1", "nats-exporter-2", "nats-exporter-3", "redis"]
        + [f"{k}-{i}" for k in DYSCHAT for i in (1, 2)]
        + ["nginx", "jaeger", "prometheus", "loki", "alloy", "grafana"]
    )
    for name in expected:
        if name not in services:
            problem(f"{label}: service {name} is missing")
    check_common(label, services)

    names = set()
    for i in (1, 2, 3):
        svc = services.get(f"nats-{i}", {})
        env = env_of(svc)
        names.add(env.get("NATS_SERVER_NAME"))
        if "nats-prod.conf" not in " ".join(bind_sources(svc)):
            problem(f"{label}: nats-{i} does not mount deploy/nats/nats-prod.conf")
        if "dyschat-users.conf" not in " ".join(bind_sources(svc)):
            problem(f"{label}: nats-{i} does not mount deploy/nats/dyschat-users.conf (nats-prod.conf includes it)")
        for var in ("NATS_STORE_DIR", *NATS_USER_PASSWORDS, "NATS_CLUSTER_USER",
                    "NATS_CLUSTER_PASSWORD", "NATS_ROUTE_1", "NATS_ROUTE_2", "NATS_ROUTE_3"):
            if not env.get(var):
                problem(f"{label}: nats-{i} does not set {var} (nats-prod.conf needs it)")
        if not any(str(v).startswith("nats-") or "data" in str(v) for v in svc.get("volumes") or []):
            problem(f"{label}: nats-{i} has no data volume")
    if len(names) != 3:
        problem(f"{label}: the NATS nodes need three distinct NATS_SERVER_NAME values, got {names}")

    for name, svc in services.items():
        if kind_of(name) not in DYSCHAT:
            continue
        env = env_of(svc)
        if env.get("DYSCHAT_ENV_MODE") != "prod":
            problem(f"{label}: {name} does not run with DYSCHAT_ENV_MODE=prod")
        if env.get("DYSCHAT_STREAM_REPLICAS") != "3":
            problem(f"{label}: {name} does not set DYSCHAT_STREAM_REPLICAS=3")
        urls = [u for u in env.get("DYSCHAT_NATS_URL", "").split(",") if u.strip()]
        if len(urls) != 3:
            problem(f"{label}: {name} DYSCHAT_NATS_URL does not list the three nodes")
        for var in ("DYSCHAT_AUTH_SECRET", "DYSCHAT_NATS_USER", "DYSCHAT_NATS_PASSWORD", "DYSCHAT_REDIS_PASS"):
            if not env.get(var):
                problem(f"{label}: {name} does not set {var}")
        # Each service logs in as its own NATS user (deploy/nats/dyschat-users.conf).
        if env.get("DYSCHAT_NATS_USER") != f"dyschat-{kind_of(name)}":
            problem(f"{label}: {name} logs in to NATS as {env.get('DYSCHAT_NATS_USER')!r}, not dyschat-{kind_of(name)}")
        deps = set((svc.get("depends_on") or {}))
        if not {"nats-1", "nats-2", "nats-3", "redis"} <= deps:
            problem(f"{label}: {name} does not wait for nats-1..3 and redis")

    redis_cmd = command_text(services.get("redis", {}))
    if "--appendonly yes" not in redis_cmd or not re.search(r"--appendfsync (always|everysec)", redis_cmd):
        problem(f"{label}: redis does not run with an append-only file")
    if "--requirepass" not in redis_cmd:
        problem(f"{label}: redis has no password")

    # nginx: the upstream is exactly the ws-agent services, and the upgrade is forwarded.
    conf = re.sub(r"#.*", "", (DEPLOY / "nginx" / "nginx.conf").read_text())
    upstream = set(re.findall(r"^\s*server\s+([\w.-]+:\d+)", conf, re.M))
    agents = {f"{n}:8080" for n in services if kind_of(n) == "ws-agent"}
    if upstream != agents:
        problem(f"nginx.conf: upstream servers {sorted(upstream)} are not the ws-agents {sorted(agents)}")
    for needle in ("proxy_set_header Upgrade $http_upgrade", "proxy_set_header Connection $connection_upgrade",
                   "proxy_http_version 1.1", "location /ws"):
        if needle not in conf:
            problem(f"nginx.conf: missing `{needle}` (WebSocket upgrade)")
    if re.search(r"\b(ip_hash|sticky|hash\s+\$)", conf):
        problem("nginx.conf: sticky sessions are not needed and not wanted")

    check_prometheus(label, services, DEPLOY / "prometheus" / "prometheus.yml")


def check_dev(services):
    label = "docker-compose.dev.yml"
    for name in ("nats", "redis", "jaeger", "prometheus", "grafana") + DYSCHAT:
        if name not in services:
            problem(f"{label}: service {name} is missing")
    check_common(label, services)
    check_prometheus(label, services, DEPLOY / "prometheus" / "prometheus-dev.yml")


def check_grafana():
    uids = set()
    for path in (DEPLOY / "grafana" / "provisioning" / "datasources").glob("*.yml"):
        for ds in yaml.safe_load(path.read_text()).get("datasources", []):
            uids.add(ds.get("uid"))
    dev_uids = {ds.get("uid") for ds in yaml.safe_load((DEPLOY / "grafana" / "datasources-dev.yml").read_text())["datasources"]}
    dashboards = sorted((DEPLOY / "grafana" / "dashboards").glob("*.json"))
    if {p.name for p in dashboards} < {"mesh-overview.json", "nats.json"}:
        problem("deploy/grafana/dashboards: mesh-overview.json and nats.json are required")
    for path in dashboards:
        try:
            dash = json.loads(path.read_text())
        except json.JSONDecodeError as e:
            problem(f"{path.name}: not valid JSON: {e}")
            continue
        seen_ids = set()

        def walk(panels):
            for p in panels:
                yield p
                yield from walk(p.get("panels", []))

        for panel in walk(dash.get("panels", [])):
            if panel["id"] in seen_ids:
                problem(f"{path.name}: panel id {panel['id']} is used twice")
            seen_ids.add(panel["id"])
            for ds in [panel.get("datasource")] + [t.get("datasource") for t in panel.get("targets", [])]:
                if ds and ds.get("uid") not in uids:
                    problem(f"{path.name}: panel {panel.get('title')!r} uses data source {ds.get('uid')!r}, not provisioned")
                if ds and ds.get("uid") not in dev_uids:
                    problem(f"{path.name}: panel {panel.get('title')!r} uses {ds.get('uid')!r}, not provisioned in dev")
            if panel.get("type") != "row" and not panel.get("targets"):
                problem(f"{path.name}: panel {panel.get('title')!r} has no query")


def main():
    prod = yaml.safe_load(Path(sys.argv[1]).read_text())
    dev = yaml.safe_load(Path(sys.argv[2]).read_text())
    check_prod(prod.get("services", {}))
    check_dev(dev.get("services", {}))
    check_grafana()
    if problems:
        for p in problems:
            print(f"  - {p}", file=sys.stderr)
        print(f"check-deploy: {len(problems)} problem(s)", file=sys.stderr)
        sys.exit(1)
    print("check-deploy: topology, mounts, nginx, Prometheus targets and dashboards are consistent")


if __name__ == "__main__":
    main()
