//! Where a message's time goes inside the agents during one phase: the agents' own
//! `dyschat_hop_seconds` histograms (one per hop of a send and of a delivery) and
//! `dyschat_ws_frames_per_write`, read from every agent's `/metrics` before and after the phase.
//! The difference is what this phase alone did; quantiles are read off the buckets (linear
//! within a bucket, so they are as fine as the buckets: 20 µs to 1 s).

use std::collections::BTreeMap;

use serde::Serialize;

use dyschat_runtime::metric;

/// Cumulative bucket counts (`le` → count) of one histogram series, summed over the agents.
#[derive(Debug, Clone, Default)]
struct Buckets {
    le: BTreeMap<u64, f64>,
    count: f64,
    sum: f64,
}

impl Buckets {
    fn minus(&self, earlier: &Buckets) -> Buckets {
        Buckets {
            le: self
                .le
                .iter()
                .map(|(k, v)| (*k, v - earlier.le.get(k).copied().unwrap_or(0.0)))
                .collect(),
            count: self.count - earlier.count,
            sum: self.sum - earlier.sum,
        }
    }

    /// The value below which a `q` share of the observations fall, interpolated in its bucket.
    fn quantile(&self, q: f64) -> f64 {
        let want = q * self.count;
        let mut lower = (0.0, 0.0);
        for (&key, &cumulative) in &self.le {
            let bound = key_bound(key);
            if cumulative >= want {
                let (lo_bound, lo_count) = lower;
                if !bound.is_finite() {
                    return lo_bound;
                }
                let share = if cumulative > lo_count {
                    (want - lo_count) / (cumulative - lo_count)
                } else {
                    0.0
                };
                return lo_bound + share * (bound - lo_bound);
            }
            lower = (bound, cumulative);
        }
        lower.0
    }
}

/// `le` values as map keys: nanoseconds (or frames × 10⁹), `u64::MAX` for `+Inf`.
fn bound_key(le: &str) -> Option<u64> {
    if le == "+Inf" {
        return Some(u64::MAX);
    }
    let v: f64 = le.parse().ok()?;
    Some((v * 1e9).round() as u64)
}

fn key_bound(key: u64) -> f64 {
    if key == u64::MAX {
        f64::INFINITY
    } else {
        key as f64 / 1e9
    }
}

/// Every hop histogram (by its `hop` label) and the frames-per-write histogram of some agents.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    hops: BTreeMap<String, Buckets>,
    frames_per_write: Buckets,
}

/// The value of `name="..."` in a label set `{a="x",b="y"}`.
fn label<'a>(labels: &'a str, name: &str) -> Option<&'a str> {
    let start = labels.find(&format!("{name}=\""))? + name.len() + 2;
    let rest = &labels[start..];
    Some(&rest[..rest.find('"')?])
}

impl Snapshot {
    /// Adds one agent's text exposition.
    fn add(&mut self, text: &str) {
        for line in text.lines() {
            let Some((series, value)) = line.rsplit_once(' ') else {
                continue;
            };
            let Ok(value) = value.parse::<f64>() else {
                continue;
            };
            let (name, labels) = series.split_once('{').unwrap_or((series, ""));
            let target = if let Some(base) = name.strip_prefix(metric::HOP_SECONDS) {
                let Some(hop) = label(labels, "hop") else {
                    continue;
                };
                (base, self.hops.entry(hop.to_string()).or_default())
            } else if let Some(base) = name.strip_prefix(metric::WS_FRAMES_PER_WRITE) {
                (base, &mut self.frames_per_write)
            } else {
                continue;
            };
            match target {
                ("_bucket", b) => {
                    if let Some(key) = label(labels, "le").and_then(bound_key) {
                        *b.le.entry(key).or_default() += value;
                    }
                }
                ("_count", b) => b.count += value,
                ("_sum", b) => b.sum += value,
                _ => {}
            }
        }
    }

    /// Reads `/metrics` of every agent (`bases` are their HTTP base URLs). An agent that does not
    /// answer is left out (the report then covers the others).
    pub async fn scrape(http: &reqwest::Client, bases: &[String]) -> Snapshot {
        let mut snapshot = Snapshot::default();
        for base in bases {
            let text = match http.get(format!("{base}/metrics")).send().await {
                Ok(r) => r.text().await.unwrap_or_default(),
                Err(_) => String::new(),
            };
            snapshot.add(&text);
        }
        snapshot
    }

    /// What happened between `earlier` and this snapshot.
    pub fn since(&self, earlier: &Snapshot) -> Hops {
        let empty = Buckets::default();
        let hops = self
            .hops
            .iter()
            .map(|(hop, b)| {
                let d = b.minus(earlier.hops.get(hop).unwrap_or(&empty));
                let ms = |s: f64| s * 1000.0;
                Hop {
                    hop: hop.clone(),
                    count: d.count as u64,
                    mean_ms: if d.count > 0.0 {
                        ms(d.sum / d.count)
                    } else {
                        0.0
                    },
                    p50_ms: ms(d.quantile(0.5)),
                    p99_ms: ms(d.quantile(0.99)),
                }
            })
            .filter(|h| h.count > 0)
            .collect();
        let writes = self.frames_per_write.minus(&earlier.frames_per_write);
        Hops {
            hops,
            writes: writes.count as u64,
            frames_per_write_mean: if writes.count > 0.0 {
                writes.sum / writes.count
            } else {
                0.0
            },
            frames_per_write_p99: writes.quantile(0.99),
        }
    }
}

/// One hop over a phase.
#[derive(Debug, Clone, Serialize)]
pub struct Hop {
    pub hop: String,
    pub count: u64,
    pub mean_ms: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

/// The hops of a phase and how many frames each socket write carried.
#[derive(Debug, Clone, Serialize, Default)]
pub struct Hops {
    pub hops: Vec<Hop>,
    pub writes: u64,
    pub frames_per_write_mean: f64,
    pub frames_per_write_p99: f64,
}

/// The order a message takes its hops in (see `dyschat_runtime::metric::hop`).
const ORDER: &[&str] = &[
    metric::hop::CHECKS,
    metric::hop::DEDUPE,
    metric::hop::PUBLISH,
    metric::hop::STORE_ACK,
    metric::hop::ACK_QUEUED,
    metric::hop::LIVE_FAN_OUT,
    metric::hop::MESSAGE_QUEUED,
];

impl Hops {
    pub fn line(&self) -> String {
        let mut parts: Vec<String> = Vec::new();
        for name in ORDER {
            if let Some(h) = self.hops.iter().find(|h| h.hop == *name) {
                parts.push(format!("{} {:.3}/{:.3}", h.hop, h.p50_ms, h.p99_ms));
            }
        }
        format!(
            "hops p50/p99 ms: {} | frames per write mean {:.2} p99 {:.0} ({} writes)",
            parts.join(", "),
            self.frames_per_write_mean,
            self.frames_per_write_p99,
            self.writes
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BEFORE: &str = r#"# TYPE dyschat_hop_seconds histogram
dyschat_hop_seconds_bucket{hop="checks",le="0.0001"} 10
dyschat_hop_seconds_bucket{hop="checks",le="0.001"} 10
dyschat_hop_seconds_bucket{hop="checks",le="+Inf"} 10
dyschat_hop_seconds_sum{hop="checks"} 0.0005
dyschat_hop_seconds_count{hop="checks"} 10
dyschat_ws_frames_per_write_bucket{le="1"} 4
dyschat_ws_frames_per_write_bucket{le="2"} 4
dyschat_ws_frames_per_write_bucket{le="+Inf"} 4
dyschat_ws_frames_per_write_sum 4
dyschat_ws_frames_per_write_count 4
"#;

    const AFTER: &str = r#"dyschat_hop_seconds_bucket{hop="checks",le="0.0001"} 10
dyschat_hop_seconds_bucket{hop="checks",le="0.001"} 110
dyschat_hop_seconds_bucket{hop="checks",le="+Inf"} 110
dyschat_hop_seconds_sum{hop="checks"} 0.0505
dyschat_hop_seconds_count{hop="checks"} 110
dyschat_ws_frames_per_write_bucket{le="1"} 4
dyschat_ws_frames_per_write_bucket{le="2"} 14
dyschat_ws_frames_per_write_bucket{le="+Inf"} 14
dyschat_ws_frames_per_write_sum 24
dyschat_ws_frames_per_write_count 14
"#;

    #[test]
    fn a_phase_is_the_difference_of_two_scrapes() {
        let (mut before, mut after) = (Snapshot::default(), Snapshot::default());
        before.add(BEFORE);
        after.add(AFTER);
        let hops = after.since(&before);
        let checks = &hops.hops[0];
        assert_eq!((checks.hop.as_str(), checks.count), ("checks", 100));
        // All 100 new observations are in (0.1 ms, 1 ms]: the median is half-way through it.
        assert!((checks.p50_ms - 0.55).abs() < 1e-9, "{}", checks.p50_ms);
        assert!((checks.mean_ms - 0.5).abs() < 1e-9, "{}", checks.mean_ms);
        assert_eq!(hops.writes, 10);
        assert!((hops.frames_per_write_mean - 2.0).abs() < 1e-9);
    }

    #[test]
    fn agents_add_up_and_junk_is_ignored() {
        let mut s = Snapshot::default();
        s.add(AFTER);
        s.add(AFTER);
        s.add("dyschat_hop_seconds_bucket{le=\"1\"} 3\nnot a metric\n");
        let hops = s.since(&Snapshot::default());
        assert_eq!(hops.hops[0].count, 220);
        assert_eq!(hops.writes, 28);
    }
}
