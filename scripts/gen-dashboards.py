#!/usr/bin/env python3
"""Writes the Grafana dashboards of deploy/grafana/dashboards/ (mesh-overview.json, nats.json).

The JSON files are generated so every panel has the same shape and the queries live in one
readable place; edit this script, run it, commit both. `make deploy_check` fails when the
committed JSON differs from what this script writes (--check), and
tests/tests/deploy/dashboards.rs checks that every `dyschat_*` metric named here is really
exported by a running mesh.

Usage: scripts/gen-dashboards.py [--check]
"""

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "deploy" / "grafana" / "dashboards"

PROM = {"type": "prometheus", "uid": "prometheus"}
RI = "$__rate_interval"


class Layout:
    """Places panels left to right on Grafana's 24-column grid, wrapping to new rows."""

    def __init__(self):
        self.x = 0
        self.y = 0
        self.row_h = 0
        self.next_id = 1

    def place(self, w, h):
        if self.x + w > 24:
            self.x = 0
            self.y += self.row_h
            self.row_h = 0
        pos = {"x": self.x, "y": self.y, "w": w, "h": h}
        self.x += w
        self.row_h = max(self.row_h, h)
        return pos

    def new_row(self):
        if self.x:
            self.x = 0
            self.y += self.row_h
            self.row_h = 0

    def id(self):
        i = self.next_id
        self.next_id += 1
        return i


def targets(queries):
    out = []
    for i, (expr, legend) in enumerate(queries):
        out.append(
            {
                "datasource": PROM,
                "expr": expr,
                "legendFormat": legend,
                "range": True,
                "refId": chr(ord("A") + i),
            }
        )
    return out


def row(layout, title):
    layout.new_row()
    panel = {
        "type": "row",
        "id": layout.id(),
        "title": title,
        "collapsed": False,
        "gridPos": {"x": 0, "y": layout.y, "w": 24, "h": 1},
        "panels": [],
    }
    layout.y += 1
    return panel


def timeseries(layout, title, description, queries, unit="short", w=12, h=8, stack=False):
    return {
        "type": "timeseries",
        "id": layout.id(),
        "title": title,
        "description": description,
        "datasource": PROM,
        "gridPos": layout.place(w, h),
        "targets": targets(queries),
        "fieldConfig": {
            "defaults": {
                "unit": unit,
                "min": 0,
                "custom": {
                    "drawStyle": "line",
                    "lineWidth": 1,
                    "fillOpacity": 15 if stack else 5,
                    "showPoints": "never",
                    "stacking": {"mode": "normal" if stack else "none", "group": "A"},
                },
            },
            "overrides": [],
        },
        "options": {
            "legend": {"displayMode": "table", "placement": "bottom", "calcs": ["lastNotNull", "max"]},
            "tooltip": {"mode": "multi", "sort": "desc"},
        },
    }


def stat(layout, title, description, expr, unit="short", w=4, h=4, thresholds=None):
    steps = [{"color": "green", "value": None}]
    for value, color in thresholds or []:
        steps.append({"color": color, "value": value})
    return {
        "type": "stat",
        "id": layout.id(),
        "title": title,
        "description": description,
        "datasource": PROM,
        "gridPos": layout.place(w, h),
        "targets": targets([(expr, title)]),
        "fieldConfig": {
            "defaults": {
                "unit": unit,
                "thresholds": {"mode": "absolute", "steps": steps},
                "color": {"mode": "thresholds"},
            },
            "overrides": [],
        },
        "options": {
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "colorMode": "value",
            "graphMode": "area",
            "justifyMode": "auto",
            "textMode": "auto",
        },
    }


def quantiles(metric, by="", qs=(0.5, 0.95, 0.99), where=""):
    """histogram_quantile queries of `metric` (a histogram, without _bucket) for each q."""
    group = f"le{', ' + by if by else ''}"
    sel = f"{{{where}}}" if where else ""
    out = []
    for q in qs:
        label = f"p{int(q * 100)}"
        legend = f"{label} {{{{{by}}}}}" if by else label
        out.append(
            (
                f"histogram_quantile({q}, sum by ({group}) (rate({metric}_bucket{sel}[{RI}])))",
                legend,
            )
        )
    return out


def dashboard(uid, title, description, panels, tags):
    return {
        "uid": uid,
        "title": title,
        "description": description,
        "tags": tags,
        "timezone": "utc",
        "editable": False,
        "graphTooltip": 1,
        "refresh": "10s",
        "schemaVersion": 39,
        "version": 1,
        "time": {"from": "now-1h", "to": "now"},
        "timepicker": {},
        "templating": {"list": []},
        "annotations": {"list": []},
        "links": [
            {"title": "Mesh overview", "type": "link", "url": "/d/dyschat-mesh"},
            {"title": "NATS", "type": "link", "url": "/d/dyschat-nats"},
        ],
        "panels": panels,
    }


# The msg-writer's durable consumer, as prometheus-nats-exporter labels it. Every node reports
# every stream and consumer; the leader's copy is the authoritative one.
WRITER = 'consumer_name="msg-writer", is_consumer_leader="true"'


def mesh_overview():
    L = Layout()
    p = []
    p.append(row(L, "Now"))
    p.append(stat(L, "Messages / s", "Chat messages accepted by JetStream per second (all agents, "
                  "retried duplicates excluded).",
                  'sum(rate(dyschat_messages_published_total{duplicate="false"}[1m]))', "short"))
    p.append(stat(L, "Open WebSockets", "Sockets open on all agents.",
                  "sum(dyschat_ws_sockets_open)"))
    p.append(stat(L, "Delivery p99", "99th percentile of the time from the sender's frame reaching "
                  "its agent to the message being queued on a receiving socket.",
                  f"histogram_quantile(0.99, sum by (le) (rate(dyschat_delivery_latency_seconds_bucket[5m])))",
                  "s", thresholds=[(0.25, "orange"), (1, "red")]))
    p.append(stat(L, "Writer lag", "Messages in the stream the msg-writers have not stored and "
                  "acked yet (pending plus in flight on the durable consumer, as the writers "
                  "read it).",
                  "max(dyschat_writer_consumer_pending) + max(dyschat_writer_consumer_ack_pending)",
                  "short", thresholds=[(1000, "orange"), (20000, "red")]))
    p.append(stat(L, "Errors / s", "Error answers (HTTP and WebSocket) per second, all codes.",
                  f"sum(rate(dyschat_errors_total[5m])) or vector(0)", "short",
                  thresholds=[(1, "orange"), (10, "red")]))
    p.append(stat(L, "Services up", "Service instances Prometheus scrapes successfully "
                  "(2 each of ws-agent, auth, rooms, msg-writer: 8).",
                  'sum(up{job=~"ws-agent|auth|rooms|msg-writer"})', "short"))

    p.append(row(L, "Messages"))
    p.append(timeseries(L, "Messages per second",
                        "Published: accepted by JetStream (acked to the sender). Delivered: message "
                        "frames queued on sockets (one per receiving socket). Stored: written to "
                        "Redis history by the msg-writers.",
                        [
                            (f'sum(rate(dyschat_messages_published_total{{duplicate="false"}}[{RI}]))', "published"),
                            (f'sum(rate(dyschat_messages_published_total{{duplicate="true"}}[{RI}]))', "retried duplicates"),
                            (f"sum(rate(dyschat_ws_messages_delivered_total[{RI}]))", "delivered to sockets"),
                            (f"sum(rate(dyschat_writer_messages_stored_total[{RI}]))", "stored in Redis"),
                        ], "short"))
    p.append(timeseries(L, "End-to-end delivery latency",
                        "From the sender's send frame at its agent to the message queued on each "
                        "receiving socket (any agent): p50, p95, p99.",
                        quantiles("dyschat_delivery_latency_seconds"), "s"))
    p.append(timeseries(L, "Publish-ack latency",
                        "From publishing to JetStream to its acknowledgement (R3: stored and fsynced "
                        "on two of three nodes): p50, p95, p99.",
                        quantiles("dyschat_publish_ack_seconds"), "s"))
    p.append(timeseries(L, "Frames per second by type",
                        "WebSocket frames received from clients (in) and sent to them (out), by "
                        "frame type.",
                        [
                            (f"sum by (type) (rate(dyschat_ws_frames_in_total[{RI}]))", "in {{type}}"),
                            (f"sum by (type) (rate(dyschat_ws_frames_out_total[{RI}]))", "out {{type}}"),
                        ], "short"))

    p.append(row(L, "Sockets"))
    p.append(timeseries(L, "Open WebSockets per agent", "Sockets open on each ws-agent instance; "
                        "nginx balances new sockets to the agent with the fewest connections.",
                        [("sum by (instance) (dyschat_ws_sockets_open)", "{{instance}}")], "short"))
    p.append(timeseries(L, "Room subscriptions and slow consumers",
                        "Rooms each agent is subscribed to (it has a socket joined there); sockets "
                        "closed with 1013 because they did not read; live gaps filled from "
                        "JetStream.",
                        [
                            ("sum by (instance) (dyschat_ws_room_subscriptions)", "rooms {{instance}}"),
                            (f"sum(rate(dyschat_ws_slow_consumer_closed_total[{RI}])) or vector(0)", "slow sockets closed / s"),
                            (f"sum(rate(dyschat_ws_gap_fills_total[{RI}])) or vector(0)", "gap fills / s"),
                        ], "short"))

    p.append(row(L, "Writer"))
    p.append(timeseries(L, "Writer lag",
                        "The msg-writer durable consumer: messages not yet delivered to a writer "
                        "(pending) and delivered but not yet acked (ack pending), as the NATS "
                        "exporter reads them from the stream leader and as the writers poll them "
                        "every 5 s. Both near zero in steady state; a growing line means Redis or "
                        "the writers are too slow.",
                        [
                            (f"sum(jetstream_consumer_num_pending{{{WRITER}}})", "pending"),
                            (f"sum(jetstream_consumer_num_ack_pending{{{WRITER}}})", "ack pending"),
                            (f"sum(rate(jetstream_consumer_num_redelivered{{{WRITER}}}[{RI}]))", "redelivered / s"),
                            ("max(dyschat_writer_consumer_pending)", "pending (writers' view)"),
                            ("max(dyschat_writer_consumer_ack_pending)", "ack pending (writers' view)"),
                        ], "short", stack=False))
    p.append(timeseries(L, "Writer batch size", "Messages per Redis pipeline: p50, p95, max-ish "
                        "(p99). Larger batches under load are expected.",
                        quantiles("dyschat_writer_batch_size"), "short"))
    p.append(timeseries(L, "Redis latency by operation", "Redis round trips by operation "
                        "(history writes and reads): p99.",
                        quantiles("dyschat_redis_seconds", by="op", qs=(0.99,)), "s"))
    p.append(timeseries(L, "Dead-lettered messages and history rebuilds",
                        "Messages the writer could never store (set aside on dyschat.deadletter.msg), "
                        "and rebuilds of Redis history from JetStream.",
                        [
                            (f"sum(increase(dyschat_writer_dead_lettered_total[{RI}])) or vector(0)", "dead-lettered"),
                            (f"sum(increase(dyschat_writer_rebuilds_total[{RI}])) or vector(0)", "rebuilds"),
                        ], "short"))

    p.append(row(L, "Requests"))
    p.append(timeseries(L, "Requests to auth and rooms by endpoint and outcome",
                        "NATS requests answered by the auth and rooms services per second, by "
                        "endpoint (register, login, create, join, ...) and outcome (ok or the "
                        "error code).",
                        [(f"sum by (endpoint, outcome) (rate(dyschat_requests_total[{RI}]))", "{{endpoint}} {{outcome}}")],
                        "short", stack=True))
    p.append(timeseries(L, "Request latency by endpoint",
                        "p99 time auth and rooms take to answer a request, by endpoint.",
                        quantiles("dyschat_request_seconds", by="endpoint", qs=(0.99,)), "s"))
    p.append(timeseries(L, "HTTP API by route and status",
                        "HTTP requests the agents answered per second, by route template and status.",
                        [(f"sum by (route, status) (rate(dyschat_http_requests_total[{RI}]))", "{{route}} {{status}}")],
                        "short", stack=True))
    p.append(timeseries(L, "HTTP latency by route", "p99 HTTP response time by route template.",
                        quantiles("dyschat_http_request_seconds", by="route", qs=(0.99,)), "s"))

    p.append(row(L, "Errors and limits"))
    p.append(timeseries(L, "Errors by code", "Error answers per second by contract code and edge "
                        "(http or ws).",
                        [(f"sum by (code, edge) (rate(dyschat_errors_total[{RI}]))", "{{edge}} {{code}}")],
                        "short", stack=True))
    p.append(timeseries(L, "Rate limited and shed", "Requests refused by the abuse limits, by kind "
                        "(send, login, sockets), and requests to auth/rooms shed because too many "
                        "were in flight.",
                        [
                            (f"sum by (kind) (rate(dyschat_rate_limited_total[{RI}]))", "{{kind}}"),
                            (f"sum(rate(dyschat_requests_shed_total[{RI}])) or vector(0)", "shed"),
                        ], "short", stack=True))
    return dashboard("dyschat-mesh", "DYSCHAT mesh overview",
                     "Messages, delivery latency, sockets, writer lag and errors across the mesh.",
                     p, ["dyschat"])


JS = 'stream_name="DYSCHAT_MESSAGES", is_stream_leader="true"'


def nats():
    L = Layout()
    p = []
    p.append(row(L, "Cluster"))
    p.append(stat(L, "Nodes up", "NATS nodes whose exporter answers (3 expected).",
                  'sum(up{job="nats"})', thresholds=[]))
    p.append(stat(L, "Routes (min per node)", "Route connections of the node with the fewest "
                  "(NATS pools several routes per peer; 0 means a node is cut off).",
                  "min(gnatsd_routez_num_routes)", thresholds=[]))
    p.append(stat(L, "Client connections", "Client connections on all nodes.",
                  "sum(gnatsd_varz_connections)"))
    p.append(stat(L, "Messages in stream", "Messages stored in DYSCHAT_MESSAGES (leader's view).",
                  f"max(jetstream_stream_total_messages{{{JS}}})"))
    p.append(stat(L, "Stream size", "Bytes stored in DYSCHAT_MESSAGES, per replica.",
                  f"max(jetstream_stream_total_bytes{{{JS}}})", "bytes"))
    p.append(stat(L, "Slow consumers", "Clients the servers cut off for not reading (all time).",
                  "sum(gnatsd_varz_slow_consumers)", thresholds=[(1, "orange")]))

    p.append(row(L, "Traffic"))
    p.append(timeseries(L, "Messages per second by node", "Messages received from clients and "
                        "routes (in) and sent (out) by each node.",
                        [
                            (f"sum by (node) (rate(gnatsd_varz_in_msgs[{RI}]))", "in {{node}}"),
                            (f"sum by (node) (rate(gnatsd_varz_out_msgs[{RI}]))", "out {{node}}"),
                        ]))
    p.append(timeseries(L, "Bytes per second by node", "Bytes in and out of each node.",
                        [
                            (f"sum by (node) (rate(gnatsd_varz_in_bytes[{RI}]))", "in {{node}}"),
                            (f"sum by (node) (rate(gnatsd_varz_out_bytes[{RI}]))", "out {{node}}"),
                        ], "Bps"))
    p.append(timeseries(L, "Connections and subscriptions by node", "Client connections and "
                        "subscriptions on each node (ws-agents subscribe per room with local "
                        "sockets).",
                        [
                            ("sum by (node) (gnatsd_varz_connections)", "connections {{node}}"),
                            ("sum by (node) (gnatsd_varz_subscriptions)", "subscriptions {{node}}"),
                        ]))
    p.append(timeseries(L, "CPU and memory by node", "Process CPU (percent of one core) and "
                        "resident memory of each nats-server.",
                        [
                            ("sum by (node) (gnatsd_varz_cpu)", "cpu % {{node}}"),
                            ("sum by (node) (gnatsd_varz_mem) / 1024 / 1024", "MiB {{node}}"),
                        ]))

    p.append(row(L, "JetStream"))
    p.append(timeseries(L, "Stream DYSCHAT_MESSAGES: messages stored per second",
                        "Growth of the stream's last sequence (= chat messages accepted per second).",
                        [(f"max(rate(jetstream_stream_last_seq{{{JS}}}[{RI}]))", "messages / s")]))
    p.append(timeseries(L, "Stream leader", "Which node leads DYSCHAT_MESSAGES (1 = leader). A "
                        "change is a leader election (node restart or failure).",
                        [(f'max by (server_name) (jetstream_stream_total_messages{{stream_name="DYSCHAT_MESSAGES", is_stream_leader="true"}} > bool 0)', "{{server_name}}")]))
    p.append(timeseries(L, "Consumers: pending and ack pending",
                        "Every durable consumer (the msg-writer's is the one that matters): "
                        "messages not yet delivered, delivered but not acked, and redeliveries.",
                        [
                            ('sum by (consumer_name) (jetstream_consumer_num_pending{is_consumer_leader="true"})', "pending {{consumer_name}}"),
                            ('sum by (consumer_name) (jetstream_consumer_num_ack_pending{is_consumer_leader="true"})', "ack pending {{consumer_name}}"),
                            (f'sum by (consumer_name) (rate(jetstream_consumer_num_redelivered{{is_consumer_leader="true"}}[{RI}]))', "redelivered / s {{consumer_name}}"),
                        ]))
    p.append(timeseries(L, "JetStream storage by node", "Bytes and messages each node stores "
                        "(streams and KV buckets, all replicas), against its limit.",
                        [
                            ("sum by (node) (jetstream_server_total_message_bytes)", "bytes {{node}}"),
                            ("max by (node) (jetstream_server_max_storage)", "limit {{node}}"),
                        ], "bytes"))
    return dashboard("dyschat-nats", "DYSCHAT NATS and JetStream",
                     "The three-node NATS cluster: nodes, routes, traffic, the message stream and "
                     "its consumers (from prometheus-nats-exporter).",
                     p, ["dyschat", "nats"])


def render(d):
    return json.dumps(d, indent=2, ensure_ascii=False) + "\n"


def main():
    check = "--check" in sys.argv[1:]
    stale = []
    for name, d in (("mesh-overview.json", mesh_overview()), ("nats.json", nats())):
        path = OUT / name
        text = render(d)
        if check:
            if not path.exists() or path.read_text() != text:
                stale.append(str(path.relative_to(ROOT)))
        else:
            OUT.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            print(f"wrote {path.relative_to(ROOT)}")
    if stale:
        print("out of date (run scripts/gen-dashboards.py): " + ", ".join(stale), file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
