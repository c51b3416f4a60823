//! The listeners of the reactions scenario: members joined to the room, on a runtime and thread
//! of their own (as in `members/sends.rs`: reading them must not queue the actors' answers behind
//! their reads). Each checks both chains of the room: a `message_updated`'s `prev_event_seq` must
//! be the last `event_seq` it saw (else a gap), a `message`'s `prev_seq` the last `seq`.
//!
//! Every listener reads the two chain numbers of a `message_updated` from the frame's tail (the
//! frame ends with them; a full decode is the fallback), so that checking the chain does not
//! cost a decode of the message's whole state per frame in the bench's own process. Every
//! [`PROBE_EVERY`]th listener is a probe: it decodes every state in full, finds the reactions
//! new since the previous one and times each from when its `react` was due, so the delivery
//! latency is that of the frame that first showed the reaction.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use futures::StreamExt;
use hdrhistogram::Histogram;
use serde::Deserialize;
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::{Message as WsMessage, Utf8Bytes};

use super::{lock, Shared};
use crate::client;
use crate::stats;

/// One listener in this many decodes every state and times deliveries.
pub(super) const PROBE_EVERY: usize = 10;

/// What one listener saw.
pub(super) struct Listener {
    pub changes: u64,
    pub last_event: u64,
    pub change_gaps: u64,
    pub change_duplicates: u64,
    pub change_bytes: u64,
    /// The newest `message_updated` received, decoded once at the end.
    pub last_change: Option<Utf8Bytes>,
    pub messages: u64,
    pub last_seq: u64,
    pub seq_sum: u64,
    pub message_gaps: u64,
    pub message_duplicates: u64,
    pub message_bytes: u64,
    /// Frames about another message or that could not be read.
    pub odd: u64,
    pub closed: bool,
    pub probe: Option<Probe>,
}

pub(super) struct Probe {
    /// Each emoji's count in the newest state seen.
    counts: Vec<u32>,
    pub change_delivery: Histogram<u64>,
    pub message_delivery: Histogram<u64>,
}

/// The listeners' thread: answers once every listener has joined (their states, and a receiver
/// that fires when all have stopped after `stop`).
pub(super) async fn start(
    shared: Arc<Shared>,
    members: Vec<(std::net::SocketAddr, String)>,
    stop: watch::Receiver<bool>,
) -> anyhow::Result<(
    Vec<Arc<Mutex<Listener>>>,
    tokio::sync::oneshot::Receiver<()>,
)> {
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel::<anyhow::Result<_>>();
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("reaction-listeners".into())
        .spawn(move || {
            let runtime = match tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
            {
                Ok(r) => r,
                Err(e) => return drop(ready_tx.send(Err(e.into()))),
            };
            runtime.block_on(async move {
                let mut states = Vec::new();
                let mut tasks = Vec::new();
                for (j, (agent, token)) in members.into_iter().enumerate() {
                    let mut ws = match client::connect(agent, &token).await {
                        Ok(ws) => ws,
                        Err(e) => return drop(ready_tx.send(Err(e))),
                    };
                    let joined = match client::join(&mut ws, &shared.room).await {
                        Ok(f) => f,
                        Err(e) => return drop(ready_tx.send(Err(e))),
                    };
                    let state = Arc::new(Mutex::new(Listener {
                        changes: 0,
                        // The room has had no change yet: its first one names 0.
                        last_event: 0,
                        change_gaps: 0,
                        change_duplicates: 0,
                        change_bytes: 0,
                        last_change: None,
                        messages: 0,
                        last_seq: joined["last_seq"].as_u64().unwrap_or(0),
                        seq_sum: 0,
                        message_gaps: 0,
                        message_duplicates: 0,
                        message_bytes: 0,
                        odd: 0,
                        closed: false,
                        probe: (j % PROBE_EVERY == 0).then(|| Probe {
                            counts: vec![0; shared.emoji.len()],
                            change_delivery: stats::histogram(),
                            message_delivery: stats::histogram(),
                        }),
                    }));
                    states.push(state.clone());
                    tasks.push(tokio::spawn(listen(
                        shared.clone(),
                        ws,
                        state,
                        stop.clone(),
                    )));
                }
                let _ = ready_tx.send(Ok(states));
                for task in tasks {
                    let _ = task.await;
                }
                let _ = done_tx.send(());
            });
        })?;
    let states = ready_rx
        .await
        .context("the listeners' thread ended early")??;
    Ok((states, done_rx))
}

async fn listen(
    shared: Arc<Shared>,
    ws: client::Ws,
    state: Arc<Mutex<Listener>>,
    mut stop: watch::Receiver<bool>,
) {
    let (_sink, mut stream) = ws.split();
    loop {
        let next = tokio::select! {
            _ = stop.changed() => break,
            next = stream.next() => next,
        };
        match next {
            Some(Ok(WsMessage::Text(t))) => on_frame(&shared, &state, t),
            Some(Ok(_)) => {}
            Some(Err(_)) | None => {
                lock(&state).closed = true;
                break;
            }
        }
    }
}

/// The frame's `type`, read from its start (`{"type":"..."`, as the agent writes every frame).
fn kind_of(text: &str) -> Option<&str> {
    let rest = text.strip_prefix(r#"{"type":""#)?;
    rest.get(..rest.find('"')?)
}

/// The number after `key` in `bytes`.
fn number_after(bytes: &[u8], key: &[u8]) -> Option<u64> {
    let at = bytes.windows(key.len()).rposition(|w| w == key)? + key.len();
    let digits = bytes.get(at..)?.iter().take_while(|b| b.is_ascii_digit());
    let mut n = 0u64;
    let mut any = false;
    for d in digits {
        n = n.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
        any = true;
    }
    any.then_some(n)
}

#[derive(Deserialize)]
struct Chain {
    event_seq: u64,
    prev_event_seq: u64,
}

/// `(event_seq, prev_event_seq)` of a `message_updated`: from the last bytes of the frame (the
/// state's own fields hold neither key), else by decoding it.
fn chain_of(text: &str) -> Option<(u64, u64)> {
    let bytes = text.as_bytes();
    let tail = &bytes[bytes.len().saturating_sub(80)..];
    if let (Some(e), Some(p)) = (
        number_after(tail, br#""event_seq":"#),
        number_after(tail, br#""prev_event_seq":"#),
    ) {
        return Some((e, p));
    }
    serde_json::from_str::<Chain>(text)
        .ok()
        .map(|c| (c.event_seq, c.prev_event_seq))
}

#[derive(Deserialize)]
struct Sent<'a> {
    seq: u64,
    prev_seq: u64,
    #[serde(default, borrow)]
    client_msg_id: Option<&'a str>,
}

#[derive(Deserialize)]
struct Updated<'a> {
    #[serde(borrow)]
    message: State<'a>,
}

#[derive(Deserialize)]
pub(super) struct State<'a> {
    pub seq: u64,
    #[serde(default, borrow)]
    pub reactions: Vec<Reaction<'a>>,
}

#[derive(Deserialize)]
pub(super) struct Reaction<'a> {
    #[serde(borrow)]
    pub emoji: std::borrow::Cow<'a, str>,
    pub count: u32,
    #[serde(borrow)]
    pub user_ids: Vec<&'a str>,
}

/// The state a `message_updated` frame carries.
pub(super) fn state_of(text: &str) -> Option<State<'_>> {
    serde_json::from_str::<Updated>(text)
        .ok()
        .map(|u| u.message)
}

fn on_frame(shared: &Shared, state: &Mutex<Listener>, text: Utf8Bytes) {
    let now_us = shared.now_us();
    match kind_of(&text) {
        Some("message_updated") => {
            let mut s = lock(state);
            let Some((event, prev)) = chain_of(&text) else {
                s.odd += 1;
                return;
            };
            if event <= s.last_event {
                s.change_duplicates += 1;
                return;
            }
            if prev != s.last_event {
                s.change_gaps += 1;
            }
            s.last_event = event;
            s.changes += 1;
            s.change_bytes += text.len() as u64;
            if let Some(probe) = s.probe.as_mut() {
                if !time_reactions(shared, probe, &text, now_us) {
                    s.odd += 1;
                }
            }
            s.last_change = Some(text);
            drop(s);
            shared.last_delivery_us[0].fetch_max(now_us, Ordering::Relaxed);
        }
        Some("message") => {
            let Ok(m) = serde_json::from_str::<Sent>(&text) else {
                lock(state).odd += 1;
                return;
            };
            let mut s = lock(state);
            if m.seq <= s.last_seq {
                s.message_duplicates += 1;
                return;
            }
            if m.prev_seq != s.last_seq {
                s.message_gaps += 1;
            }
            s.last_seq = m.seq;
            s.messages += 1;
            s.seq_sum += m.seq;
            s.message_bytes += text.len() as u64;
            let due = m
                .client_msg_id
                .and_then(|id| id.rsplit('-').next()?.parse::<u64>().ok());
            if let (Some(probe), Some(due)) = (s.probe.as_mut(), due) {
                let d = Duration::from_micros(now_us.saturating_sub(due));
                stats::record(&mut probe.message_delivery, d);
            }
            drop(s);
            shared.last_delivery_us[1].fetch_max(now_us, Ordering::Relaxed);
        }
        _ => {}
    }
}

/// Times every reaction the state shows that the previous one did not; false when the frame is
/// not a state of the target message, or names a user or emoji the bench did not send.
fn time_reactions(shared: &Shared, probe: &mut Probe, text: &str, now_us: u64) -> bool {
    let Some(state) = state_of(text) else {
        return false;
    };
    if state.seq != shared.target_seq {
        return false;
    }
    let mut known = true;
    for r in &state.reactions {
        let Some(&e) = shared.emoji_index.get(r.emoji.as_ref()) else {
            known = false;
            continue;
        };
        let Some(before) = probe.counts.get_mut(e) else {
            continue;
        };
        let from = usize::try_from(*before).unwrap_or(usize::MAX);
        for user in r.user_ids.iter().skip(from) {
            match shared.scheduled_of(user, e) {
                Some(due) => stats::record(
                    &mut probe.change_delivery,
                    Duration::from_micros(now_us.saturating_sub(due)),
                ),
                None => known = false,
            }
        }
        *before = r.count;
    }
    known
}
