//! The search for the highest rate a load sustains within its latency bound.

use super::*;

/// Looks for the highest rate the mesh sustains: `start`, then ×1.5 while a step passes, then
/// two bisections between the last pass and the first failure. A step passes when it is
/// complete, without errors, ingests at least 90% of its target and its ack p99 stays under
/// `max_p99_ms`.
pub async fn find_max(
    load: &mut Load,
    start: f64,
    step: Duration,
    max_p99_ms: f64,
    lag: &LagSampler,
    log: &mut dyn FnMut(&str),
) -> anyhow::Result<(Option<PhaseResult>, Vec<PhaseResult>)> {
    let passes = |r: &PhaseResult| {
        r.complete
            && r.errors == 0
            && r.ingest_msgs_per_sec >= 0.9 * r.target_msgs_per_sec
            && r.ack_latency.p99_ms <= max_p99_ms
    };
    let mut steps = Vec::new();
    let mut best: Option<PhaseResult> = None;
    // Warm-up (connections, caches, allocator), not counted.
    let warm = load.phase(start / 4.0, Duration::from_secs(3), lag).await?;
    log(&format!("  warm-up {}", warm.line()));
    let mut rate = start;
    let mut failed_at: Option<f64> = None;
    for _ in 0..16 {
        let r = load.phase(rate, step, lag).await?;
        log(&format!("  step {}", r.line()));
        let ok = passes(&r);
        steps.push(r.clone());
        if ok {
            best = Some(r);
            rate *= 1.5;
        } else if best.is_none() && rate > start / 8.0 {
            // The first rate is already too high: come down.
            rate /= 2.0;
            tokio::time::sleep(Duration::from_secs(2)).await;
        } else {
            failed_at = Some(rate);
            // Let a backlog clear before the next step.
            tokio::time::sleep(Duration::from_secs(2)).await;
            break;
        }
    }
    if let (Some(fail), Some(_)) = (failed_at, best.as_ref()) {
        let mut lo = best.as_ref().map_or(start, |b| b.target_msgs_per_sec);
        let mut hi = fail;
        for _ in 0..2 {
            let mid = (lo + hi) / 2.0;
            let r = load.phase(mid, step, lag).await?;
            log(&format!("  bisect {}", r.line()));
            let ok = passes(&r);
            steps.push(r.clone());
            if ok {
                best = Some(r);
                lo = mid;
            } else {
                hi = mid;
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
        }
    }
    Ok((best, steps))
}
