//! A load with loss accounting, for fault tests.
//!
//! Senders behave like a careful client: every message has a `client_msg_id`, unacknowledged sends
//! are retried with the same id after an error or a reconnect, and a socket that breaks is
//! reopened on the next agent. Receivers rejoin with `since` after a reconnect or a `prev_seq`
//! mismatch. At the end [`Report::verify`] compares what was acknowledged, what every receiver got
//! and what history holds: each acknowledged message exactly once, in order, nothing else.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::{json, Value};

use crate::client::{LoggedIn, WsClient};

/// Sends in flight per sender before it waits for acks.
const WINDOW: usize = 64;
/// Pause before a failed send or a broken socket is retried.
const RETRY_PAUSE: Duration = Duration::from_millis(200);

/// What one sender got acknowledged: `client_msg_id` → `seq`.
#[derive(Debug, Default)]
pub struct SenderReport {
    pub acked: HashMap<String, u64>,
    /// Acks for an id that had already been acked (must carry the same seq).
    pub repeated_acks: usize,
    pub reconnects: usize,
    pub retried_sends: usize,
}

/// Sends `count` messages as `user` to `room`, through `agents` (WebSocket URLs), at most one per
/// `pace`, until every one is acknowledged or `deadline` passes.
pub async fn run_sender(
    user: LoggedIn,
    agents: Vec<String>,
    room: String,
    count: usize,
    pace: Duration,
    deadline: Instant,
) -> anyhow::Result<SenderReport> {
    let started = Instant::now();
    let mut report = SenderReport::default();
    let mut unacked: BTreeMap<usize, String> = BTreeMap::new();
    let mut next = 0usize;
    let mut agent = 0usize;
    while report.acked.len() < count {
        if Instant::now() > deadline {
            bail!(
                "{}: {} of {count} acked by the deadline",
                user.username,
                report.acked.len()
            );
        }
        let url = &agents[agent % agents.len()];
        let session = async {
            let mut ws = WsClient::connect(url, &user.token).await?;
            ws.join(&room, None).await?;
            // Everything not yet acknowledged goes again, with the same ids.
            for (n, _) in unacked.iter() {
                ws.send(send_frame(&user, &room, *n)).await?;
            }
            loop {
                let due = |n: usize| started + pace * u32::try_from(n).unwrap_or(u32::MAX);
                while unacked.len() < WINDOW && next < count && Instant::now() >= due(next) {
                    unacked.insert(next, cmid(&user, next));
                    ws.send(send_frame(&user, &room, next)).await?;
                    next += 1;
                }
                if report.acked.len() == count {
                    return anyhow::Ok(());
                }
                let wait = if next < count && unacked.len() < WINDOW {
                    due(next).saturating_duration_since(Instant::now())
                } else {
                    crate::client::FRAME_TIMEOUT
                };
                let frame = match ws.recv_within(wait).await? {
                    Some(frame) => frame,
                    None => continue,
                };
                match frame["type"].as_str() {
                    Some("ack") => {
                        let id = frame["client_msg_id"]
                            .as_str()
                            .context("ack id")?
                            .to_string();
                        let seq = frame["seq"].as_u64().context("ack seq")?;
                        let n = index_of(&id)?;
                        unacked.remove(&n);
                        if let Some(first) = report.acked.insert(id, seq) {
                            report.repeated_acks += 1;
                            if first != seq {
                                bail!("message {n} acked with seq {first} and then {seq}");
                            }
                        }
                    }
                    Some("error") => {
                        let code = frame["code"].as_str().unwrap_or("");
                        let Some(reference) = frame["ref"].as_str() else {
                            bail!("error without ref: {frame}");
                        };
                        if !matches!(code, "unavailable" | "internal" | "rate_limited") {
                            bail!("unexpected error {frame}");
                        }
                        let pause = frame["retry_after_ms"]
                            .as_u64()
                            .map_or(RETRY_PAUSE, Duration::from_millis);
                        tokio::time::sleep(pause).await;
                        report.retried_sends += 1;
                        let n = index_of(reference)?;
                        ws.send(send_frame(&user, &room, n)).await?;
                    }
                    _ => {}
                }
            }
        };
        match session.await {
            Ok(()) => break,
            Err(_) => {
                report.reconnects += 1;
                agent += 1;
                tokio::time::sleep(RETRY_PAUSE).await;
            }
        }
    }
    Ok(report)
}

fn cmid(user: &LoggedIn, n: usize) -> String {
    format!("{}-{n}", user.username)
}

fn index_of(id: &str) -> anyhow::Result<usize> {
    id.rsplit('-')
        .next()
        .context("id")?
        .parse()
        .context("id index")
}

fn send_frame(user: &LoggedIn, room: &str, n: usize) -> Value {
    let id = cmid(user, n);
    json!({"type": "send", "room_id": room, "body": format!("load {id}"), "client_msg_id": id, "ref": id})
}

/// What one receiving socket saw.
#[derive(Debug, Default)]
pub struct ReceiverReport {
    /// Seqs in the order received, each once (repeats are counted, not kept).
    pub seqs: Vec<u64>,
    pub duplicates: usize,
    pub gaps_seen: usize,
    pub rejoins: usize,
}

/// Receives `room` as `user` until `expected` distinct messages arrived, rejoining with `since`
/// after a broken socket or a `prev_seq` that does not follow on.
pub async fn run_receiver(
    user: LoggedIn,
    agents: Vec<String>,
    room: String,
    expected: usize,
    deadline: Instant,
) -> anyhow::Result<ReceiverReport> {
    let mut report = ReceiverReport::default();
    let mut last: Option<u64> = None;
    let mut agent = 0usize;
    while report.seqs.len() < expected {
        if Instant::now() > deadline {
            bail!(
                "{}: {} of {expected} received by the deadline",
                user.username,
                report.seqs.len()
            );
        }
        let url = &agents[agent % agents.len()];
        let session = async {
            let mut ws = WsClient::connect(url, &user.token).await?;
            let joined = ws.join(&room, last.or(Some(0))).await?;
            if joined["recovered"] != true {
                bail!("join did not recover: {joined}");
            }
            while report.seqs.len() < expected {
                let frame = ws.recv().await?;
                if frame["type"] != "message" {
                    continue;
                }
                let seq = frame["seq"].as_u64().context("seq")?;
                let prev = frame["prev_seq"].as_u64().context("prev_seq")?;
                match last {
                    Some(l) if seq <= l => report.duplicates += 1,
                    Some(l) if prev != l => {
                        // Missed something: rejoin from what we have.
                        report.gaps_seen += 1;
                        bail!("gap before {seq}: prev {prev}, last seen {l}");
                    }
                    _ => {
                        report.seqs.push(seq);
                        last = Some(seq);
                    }
                }
            }
            anyhow::Ok(())
        };
        if session.await.is_err() {
            report.rejoins += 1;
            agent += 1;
            tokio::time::sleep(RETRY_PAUSE).await;
        }
    }
    Ok(report)
}

/// Everything a load run saw, compared at the end.
pub struct Report {
    pub senders: Vec<SenderReport>,
    pub receivers: Vec<ReceiverReport>,
    /// Seqs of the room's history, oldest first.
    pub history: Vec<u64>,
}

impl Report {
    /// The report of a finished run, [verified](Self::verify), with its
    /// [summary](Self::summary) printed for the test log: how a load test ends.
    pub fn verified(
        senders: Vec<SenderReport>,
        receivers: Vec<ReceiverReport>,
        history: Vec<u64>,
    ) -> anyhow::Result<Report> {
        let report = Report {
            senders,
            receivers,
            history,
        };
        report.verify()?;
        println!("{}", report.summary());
        Ok(report)
    }

    /// The acknowledged seqs, sorted.
    pub fn acked(&self) -> Vec<u64> {
        let mut all: Vec<u64> = self
            .senders
            .iter()
            .flat_map(|s| s.acked.values().copied())
            .collect();
        all.sort_unstable();
        all
    }

    /// Acked == history == every receiver, each once, in order.
    pub fn verify(&self) -> anyhow::Result<()> {
        let acked = self.acked();
        let mut unique = acked.clone();
        unique.dedup();
        if unique.len() != acked.len() {
            bail!("{} acked messages share a seq", acked.len() - unique.len());
        }
        if self.history != acked {
            bail!(
                "history ({} messages) differs from the acked set ({}): lost {}, extra {}",
                self.history.len(),
                acked.len(),
                acked.iter().filter(|s| !self.history.contains(s)).count(),
                self.history.iter().filter(|s| !acked.contains(s)).count()
            );
        }
        for (i, r) in self.receivers.iter().enumerate() {
            if r.seqs != acked {
                bail!(
                    "receiver {i} got {} messages, not the {} acked in order",
                    r.seqs.len(),
                    acked.len()
                );
            }
        }
        Ok(())
    }

    /// One line of figures for the test log and the reliability document.
    pub fn summary(&self) -> String {
        let acked = self.acked();
        let stored: std::collections::HashSet<u64> = self.history.iter().copied().collect();
        let lost = acked.iter().filter(|s| !stored.contains(s)).count();
        let duplicated = self.history.len() - stored.len();
        format!(
            "acked {} | lost {lost} | duplicated {duplicated} | sender reconnects {} | retried sends {} | repeated acks {} | receiver rejoins {} | duplicates dropped by receivers {} | gaps seen {}",
            acked.len(),
            self.senders.iter().map(|s| s.reconnects).sum::<usize>(),
            self.senders.iter().map(|s| s.retried_sends).sum::<usize>(),
            self.senders.iter().map(|s| s.repeated_acks).sum::<usize>(),
            self.receivers.iter().map(|r| r.rejoins).sum::<usize>(),
            self.receivers.iter().map(|r| r.duplicates).sum::<usize>(),
            self.receivers.iter().map(|r| r.gaps_seen).sum::<usize>(),
        )
    }
}
