//! What a run found: the results written as JSON, the targets as ratios within the run, and
//! the table printed at the end.

use serde::Serialize;

use crate::load::{Accounting, PhaseResult};
use crate::{ceiling, idle, members, reactions, search_bench, writer};

#[derive(Debug, Clone, Serialize)]
pub(crate) struct Machine {
    pub(crate) nproc: usize,
    pub(crate) cpu: String,
    pub(crate) mem_total_kib: u64,
}

impl Machine {
    pub(crate) fn read() -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        Machine {
            nproc: std::thread::available_parallelism().map_or(1, |n| n.get()),
            cpu: cpuinfo
                .lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|v| v.trim_start_matches([' ', '\t', ':']).to_string())
                .unwrap_or_default(),
            mem_total_kib: meminfo
                .lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
                .unwrap_or(0),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct LoadResult {
    pub(crate) rooms: usize,
    pub(crate) members: usize,
    pub(crate) agents: usize,
    pub(crate) senders: usize,
    pub(crate) body_bytes: usize,
    pub(crate) search: Vec<PhaseResult>,
    pub(crate) max: Option<PhaseResult>,
    pub(crate) sustained: Option<PhaseResult>,
    pub(crate) half: Option<PhaseResult>,
    pub(crate) writer_catch_up_secs: f64,
    pub(crate) accounting: Accounting,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct Target {
    pub(crate) name: String,
    pub(crate) value: f64,
    pub(crate) unit: String,
    pub(crate) target: String,
    pub(crate) met: bool,
}

#[derive(Debug, Serialize, Default)]
pub(crate) struct Results {
    pub(crate) command: String,
    pub(crate) machine: Option<Machine>,
    pub(crate) raised_limits: Vec<(String, String)>,
    pub(crate) redis_appendfsync: String,
    pub(crate) ceiling: Option<ceiling::Ceiling>,
    pub(crate) ingest: Option<LoadResult>,
    pub(crate) fanout: Option<LoadResult>,
    pub(crate) drain: Option<writer::Drain>,
    pub(crate) idle: Option<idle::Idle>,
    pub(crate) members: Option<members::Members>,
    pub(crate) reactions: Option<reactions::Reactions>,
    pub(crate) search: Option<search_bench::SearchBench>,
    pub(crate) targets: Vec<Target>,
    pub(crate) accounting_clean: bool,
    /// Scenarios that could not run to the end.
    pub(crate) errors: Vec<String>,
    pub(crate) wall_secs: f64,
}

/// The targets as ratios within this run, and whether the accounting is clean.
pub(crate) fn evaluate(r: &mut Results) {
    let mut targets = Vec::new();
    let mut clean = true;
    let ceiling = r.ceiling.clone();
    if let Some(ing) = &r.ingest {
        clean &= ing.accounting.clean();
        if let (Some(c), Some(s)) = (&ceiling, &ing.sustained) {
            let ratio = s.ingest_msgs_per_sec / c.async_publish_per_sec;
            targets.push(Target {
                name: format!(
                    "sustained ingest, {}-member rooms over {} agents, / raw JetStream async publish",
                    ing.members, ing.agents
                ),
                value: ratio,
                unit: "ratio".into(),
                target: ">= 0.25".into(),
                met: ratio >= 0.25 && s.complete && ing.accounting.clean(),
            });
        }
        if let (Some(c), Some(h)) = (&ceiling, &ing.half) {
            let ratio = h.delivery_latency.p99_ms / c.sync_publish.p99_ms.max(1e-3);
            targets.push(Target {
                name: "delivery p99 at half load / raw sync publish p99".into(),
                value: ratio,
                unit: "ratio".into(),
                target: "<= 10".into(),
                met: ratio <= 10.0,
            });
        }
        if let Some(s) = &ing.sustained {
            let bound = (s.ingest_msgs_per_sec).max(1000.0);
            targets.push(Target {
                name: "msg-writer pending at the sustained rate (max during the run)".into(),
                value: s.writer_pending_max as f64,
                unit: "messages".into(),
                target: format!("bounded: <= 1 s of ingest ({bound:.0})"),
                met: (s.writer_pending_max as f64) <= bound,
            });
        }
    }
    if let Some(f) = &r.fanout {
        clean &= f.accounting.clean();
        // The highest deliveries/s of any phase that delivered everything (the search's failing
        // steps included: they fail on ingest rate or ack latency, not on loss).
        let peak = f
            .search
            .iter()
            .chain(f.sustained.iter())
            .filter(|p| p.complete)
            .map(|p| p.deliveries_per_sec)
            .fold(0.0f64, f64::max);
        targets.push(Target {
            name: format!(
                "{}-member room over {} agents: peak deliveries/s of a complete phase",
                f.members, f.agents
            ),
            value: peak,
            unit: "deliveries/s".into(),
            target: ">= 200000, loss 0".into(),
            met: peak >= 200_000.0 && f.accounting.clean(),
        });
    }
    if let Some(d) = &r.drain {
        clean &= d.history_missing == 0 && d.history_extra == 0;
        targets.push(Target {
            name: format!("msg-writer drains a {}-message backlog", d.messages),
            value: d.drain_msgs_per_sec,
            unit: "msg/s".into(),
            target: ">= 50000".into(),
            met: d.drain_msgs_per_sec >= 50_000.0,
        });
    }
    if let Some(i) = &r.idle {
        targets.push(Target {
            name: format!(
                "memory per idle WebSocket at {} sockets on one agent",
                i.sockets
            ),
            value: i.kib_per_socket,
            unit: "KiB".into(),
            target: "<= 16".into(),
            met: i.kib_per_socket <= 16.0,
        });
    }
    if let Some(m) = &r.members {
        targets.extend(members::targets(m));
    }
    if let Some(x) = &r.reactions {
        clean &= reactions::clean(x);
        targets.extend(reactions::targets(x));
    }
    if let Some(s) = &r.search {
        clean &= search_bench::clean(s);
    }
    r.targets = targets;
    r.accounting_clean = clean && r.errors.is_empty();
}

pub(crate) fn print_table(r: &Results) {
    let mut out = String::new();
    let mut line = |s: String| {
        out.push_str(&s);
        out.push('\n');
    };
    line(format!("command: {}", r.command));
    if let Some(m) = &r.machine {
        line(format!(
            "machine: {} cores, {}, {} MiB",
            m.nproc,
            m.cpu,
            m.mem_total_kib / 1024
        ));
    }
    line(format!(
        "raised: {}  redis appendfsync {}",
        r.raised_limits
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(" "),
        r.redis_appendfsync
    ));
    if let Some(c) = &r.ceiling {
        line("ceiling (raw JetStream, RePublish on, same nats-server):".into());
        line(format!(
            "  async publish        {:>12.0} msg/s ({} B payload)",
            c.async_publish_per_sec, c.payload_bytes
        ));
        line(format!("  sync publish RTT     {}", c.sync_publish.row()));
        line(format!("  paced (100/s) RTT    {}", c.paced_publish.row()));
    }
    for (name, l) in [("ingest", &r.ingest), ("fanout", &r.fanout)] {
        let Some(l) = l else { continue };
        line(format!(
            "{name}: {} rooms x {} members over {} agents, {} senders, {} B bodies",
            l.rooms, l.members, l.agents, l.senders, l.body_bytes
        ));
        for (label, p) in [
            ("search max", &l.max),
            ("sustained", &l.sustained),
            ("half load", &l.half),
        ] {
            let Some(p) = p else { continue };
            line(format!(
                "  {label:<10} target {:>8.0} msg/s | in {:>8.0} msg/s | out {:>9.0} deliveries/s | complete {} | writer pending max {}",
                p.target_msgs_per_sec, p.ingest_msgs_per_sec, p.deliveries_per_sec, p.complete, p.writer_pending_max
            ));
            line(format!("    ack      {}", p.ack_latency.row()));
            line(format!("    delivery {}", p.delivery_latency.row()));
        }
        line(format!("  accounting: {}", l.accounting.line()));
        line(format!(
            "  msg-writer caught up {:.2}s after the last phase",
            l.writer_catch_up_secs
        ));
    }
    if let Some(d) = &r.drain {
        line(format!(
            "drain: {} messages over {} rooms: {:.1}s = {:.0} msg/s (backlog published at {:.0} msg/s); history missing {} extra {}",
            d.messages, d.rooms, d.drain_secs, d.drain_msgs_per_sec, d.publish_per_sec, d.history_missing, d.history_extra
        ));
    }
    if let Some(i) = &r.idle {
        line(format!(
            "idle: {} sockets: VmRSS {} -> {} KiB = {:.2} KiB per socket",
            i.sockets, i.rss_before_kib, i.rss_after_kib, i.kib_per_socket
        ));
    }
    if let Some(m) = &r.members {
        for l in members::lines(m) {
            line(l);
        }
    }
    if let Some(x) = &r.reactions {
        for l in reactions::lines(x) {
            line(l);
        }
    }
    if let Some(s) = &r.search {
        for l in search_bench::lines(s) {
            line(l);
        }
    }
    if !r.targets.is_empty() {
        line("targets:".into());
        for t in &r.targets {
            line(format!(
                "  [{}] {:<80} {:>12.3} {:<13} target {}",
                if t.met { "met " } else { "MISS" },
                t.name,
                t.value,
                t.unit,
                t.target
            ));
        }
    }
    for e in &r.errors {
        line(format!("FAILED scenario: {e}"));
    }
    line(format!(
        "accounting: {}   wall time {:.0}s",
        if r.accounting_clean {
            "clean (lost 0, duplicated 0, out of order 0)"
        } else {
            "FAILED"
        },
        r.wall_secs
    ));
    print!("{out}");
}
