//! The reactions scenario's lines of the printed table, its ratios, targets and what makes its
//! accounting clean.

use super::{PhaseFigures, Ratios, Reactions};

fn ratio(a: f64, b: f64) -> f64 {
    a / b.max(1e-9)
}

pub(super) fn ratios(storm: &PhaseFigures, messages: &PhaseFigures) -> Ratios {
    Ratios {
        ack_p50: ratio(storm.ack_latency.p50_ms, messages.ack_latency.p50_ms),
        ack_p99: ratio(storm.ack_latency.p99_ms, messages.ack_latency.p99_ms),
        delivery_p50: ratio(
            storm.delivery_latency.p50_ms,
            messages.delivery_latency.p50_ms,
        ),
        delivery_p99: ratio(
            storm.delivery_latency.p99_ms,
            messages.delivery_latency.p99_ms,
        ),
        deliveries_per_sec: ratio(storm.deliveries_per_sec, messages.deliveries_per_sec),
        achieved_per_sec: ratio(storm.achieved_per_sec, messages.achieved_per_sec),
    }
}

fn errors(p: &PhaseFigures) -> String {
    if p.errors.is_empty() {
        return "none".into();
    }
    p.errors
        .iter()
        .map(|(code, n)| format!("{n} {code}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Errors other than `unavailable` (the agent's answer after losing its retries, which is no
/// loss): they mean the bench's frames or the limits are wrong.
fn unexpected_errors(p: &PhaseFigures) -> u64 {
    p.errors
        .iter()
        .filter(|(code, _)| !code.starts_with("unavailable:"))
        .map(|(_, n)| n)
        .sum()
}

pub(super) fn phase_line(p: &PhaseFigures) -> String {
    format!(
        "target {:.0}/s: achieved {:.0}/s, acked {}/{} errors {} unanswered {} stored unacked {} | deliveries {} = {:.0}/s ({:.0} B each, {:.1} MiB/s) | gaps {} duplicates {} lost {} short {} complete {}\n    ack      {}\n    delivery {}",
        p.target_per_sec,
        p.achieved_per_sec,
        p.acked,
        p.sent,
        errors(p),
        p.unanswered,
        p.applied_unacked,
        p.deliveries,
        p.deliveries_per_sec,
        p.bytes_per_delivery,
        p.delivered_mib_per_sec,
        p.gaps,
        p.duplicates,
        p.lost,
        p.listeners_short,
        p.complete,
        p.ack_latency.row(),
        p.delivery_latency.row()
    )
}

/// Nothing lost, no chain broken, every frame answered, every listener up to date.
pub fn clean(r: &Reactions) -> bool {
    [&r.storm, &r.messages].iter().all(|p| {
        p.lost == 0
            && p.gaps == 0
            && p.duplicates == 0
            && p.unanswered == 0
            && p.listeners_short == 0
            && unexpected_errors(p) == 0
    }) && r.foreign == 0
        && r.stale_listeners == 0
        && r.odd_frames == 0
        && r.sockets_closed == 0
}

pub fn targets(r: &Reactions) -> Vec<crate::report::Target> {
    vec![crate::report::Target {
        name: format!(
            "reaction storm on one message of a {}-member room: acked reactions missing from its final state",
            r.members
        ),
        value: r.storm.lost as f64,
        unit: "reactions".into(),
        target: "0".into(),
        met: r.storm.lost == 0 && clean(r),
    }]
}

/// The scenario's lines of the printed table.
pub fn lines(r: &Reactions) -> Vec<String> {
    let (s, m, q) = (&r.storm, &r.messages, &r.ratios);
    let mut out = vec![format!(
        "reactions: one message of a {}-member room, {} listeners ({} probes) over {} agents and {} actors over {}, {:.0}/s for {:.0}s",
        r.members, r.listeners, r.probes, r.agents, r.actors, r.actor_agents, s.target_per_sec, s.duration_secs
    )];
    out.push(format!("  storm    {}", phase_line(s)));
    out.push(format!("  messages {}", phase_line(m)));
    out.push(format!(
        "  reaction / message: ack p50 {:.2} | ack p99 {:.2} | delivery p50 {:.2} | delivery p99 {:.2} | deliveries/s {:.3} | achieved/s {:.3}",
        q.ack_p50, q.ack_p99, q.delivery_p50, q.delivery_p99, q.deliveries_per_sec, q.achieved_per_sec
    ));
    out.push(format!(
        "  final state: {} reactions, {} B; lost {} | foreign {} | stale listeners {} | odd frames {} | sockets closed {}",
        r.final_reactions,
        r.final_state_bytes,
        s.lost,
        r.foreign,
        r.stale_listeners,
        r.odd_frames,
        r.sockets_closed
    ));
    out
}
