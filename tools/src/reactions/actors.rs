//! The acting members of the reactions scenario: sockets of members that are not joined to the
//! room (so none of its fan-out reaches them), each writing on an open-loop schedule either
//! `react` frames (the storm) or `send` frames (the messages it is held against), and reading
//! their answers. A frame's `ref` carries who sent it, which of its frames it is and when it was
//! due (µs since the scenario's base), so answers are matched and timed without a table.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use serde::Deserialize;
use tokio::sync::{mpsc, watch};
use tokio_tungstenite::tungstenite::Message as WsMessage;

use super::{lock, Kind, Shared, PAIR_ACKED, PAIR_ERROR, PAIR_SENT};
use crate::client;
use crate::stats;

/// One phase of one socket: `count` frames of `kind`, frame `k` due at
/// `start + (k * actors + index) / rate`, so that the sockets' frames interleave evenly.
#[derive(Debug, Clone, Copy)]
pub(super) struct Plan {
    pub kind: Kind,
    pub start: Instant,
    pub rate: f64,
    pub count: usize,
}

/// The answer frames an actor reads (`reacted`, `ack`, `error`); anything else is skipped.
#[derive(Deserialize)]
struct Answer<'a> {
    #[serde(rename = "type", borrow)]
    kind: &'a str,
    #[serde(default, rename = "ref", borrow)]
    reference: Option<&'a str>,
    #[serde(default)]
    seq: u64,
    #[serde(default, borrow)]
    code: Option<&'a str>,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    duplicate: bool,
}

/// `(kind, actor, k, due_us)` of a bench `ref`: `r<actor>-<k>-<us>` or `m<actor>-<k>-<us>`.
pub(super) fn parse_ref(r: &str) -> Option<(Kind, usize, usize, u64)> {
    let kind = match r.as_bytes().first()? {
        b'r' => Kind::React,
        b'm' => Kind::Send,
        _ => return None,
    };
    let mut parts = r.get(1..)?.split('-');
    let actor = parts.next()?.parse().ok()?;
    let k = parts.next()?.parse().ok()?;
    let us = parts.next()?.parse().ok()?;
    Some((kind, actor, k, us))
}

/// Runs one actor's socket until `stop`: a writer task follows the plans, this task reads.
pub(super) async fn run(
    shared: Arc<Shared>,
    index: usize,
    ws: client::Ws,
    plans: mpsc::Receiver<Plan>,
    mut stop: watch::Receiver<bool>,
) {
    let (sink, mut stream) = ws.split();
    let writer = tokio::spawn(write(shared.clone(), index, sink, plans));
    loop {
        let next = tokio::select! {
            _ = stop.changed() => break,
            next = stream.next() => next,
        };
        match next {
            Some(Ok(WsMessage::Text(t))) => on_answer(&shared, &t),
            Some(Ok(_)) => {}
            Some(Err(_)) | None => {
                shared.actor_sockets_closed.fetch_add(1, Ordering::Relaxed);
                break;
            }
        }
    }
    writer.abort();
}

type Sink = futures::stream::SplitSink<client::Ws, WsMessage>;

/// Writes each plan's frames at their due times, never waiting for answers.
async fn write(shared: Arc<Shared>, index: usize, mut sink: Sink, mut plans: mpsc::Receiver<Plan>) {
    let actors = shared.actors as f64;
    while let Some(plan) = plans.recv().await {
        let tally = shared.tally(plan.kind);
        for k in 0..plan.count {
            let due = plan.start
                + Duration::from_secs_f64((k as f64 * actors + index as f64) / plan.rate);
            if due > Instant::now() {
                if sink.flush().await.is_err() {
                    return;
                }
                tokio::time::sleep_until(due.into()).await;
            }
            let us =
                u64::try_from(due.saturating_duration_since(shared.base).as_micros()).unwrap_or(0);
            let frame = match plan.kind {
                Kind::React => {
                    let pair = index * shared.emoji.len() + k;
                    let (Some(emoji), Some(scheduled), Some(status)) = (
                        shared.emoji.get(k),
                        shared.scheduled.get(pair),
                        shared.status.get(pair),
                    ) else {
                        return;
                    };
                    scheduled.store(us, Ordering::Relaxed);
                    status.store(PAIR_SENT, Ordering::Relaxed);
                    format!(
                        r#"{{"type":"react","room_id":"{}","seq":{},"emoji":"{emoji}","ref":"r{index}-{k}-{us}"}}"#,
                        shared.room, shared.target_seq
                    )
                }
                Kind::Send => format!(
                    r#"{{"type":"send","room_id":"{}","client_msg_id":"m{index}-{k}-{us}","ref":"m{index}-{k}-{us}","body":"{}"}}"#,
                    shared.room, shared.body
                ),
            };
            if sink.feed(WsMessage::Text(frame.into())).await.is_err() {
                return;
            }
            tally.sent.fetch_add(1, Ordering::Relaxed);
        }
        if sink.flush().await.is_err() {
            return;
        }
    }
}

/// Books an answer against its phase: `reacted` and `ack` as acknowledged (timed from when the
/// frame was due), `error` by its code and message (`unavailable` has several causes: lost
/// races, or a stream that did not answer in time).
fn on_answer(shared: &Shared, text: &str) {
    let Ok(answer) = serde_json::from_str::<Answer>(text) else {
        return;
    };
    let Some((kind, actor, k, due_us)) = answer.reference.and_then(parse_ref) else {
        return;
    };
    let tally = shared.tally(kind);
    let now_us = shared.now_us();
    let pair = shared.status.get(actor * shared.emoji.len() + k);
    match (answer.kind, kind) {
        ("reacted", Kind::React) | ("ack", Kind::Send) => {
            if let (Kind::React, Some(p)) = (kind, pair) {
                p.store(PAIR_ACKED, Ordering::Relaxed);
            }
            if answer.duplicate {
                *lock(&tally.errors)
                    .entry("duplicate_ack".into())
                    .or_default() += 1;
            }
            tally.seq_sum.fetch_add(answer.seq, Ordering::Relaxed);
            stats::record(
                &mut lock(&tally.ack),
                Duration::from_micros(now_us.saturating_sub(due_us)),
            );
            tally.acked.fetch_add(1, Ordering::Relaxed);
        }
        ("error", _) => {
            if let (Kind::React, Some(p)) = (kind, pair) {
                p.store(PAIR_ERROR, Ordering::Relaxed);
            }
            let code = format!(
                "{}: {}",
                answer.code.unwrap_or("(no code)"),
                answer.message.as_deref().unwrap_or("")
            );
            *lock(&tally.errors).entry(code).or_default() += 1;
            tally.errored.fetch_add(1, Ordering::Relaxed);
        }
        _ => return,
    }
    tally.last_answer_us.fetch_max(now_us, Ordering::Relaxed);
}
