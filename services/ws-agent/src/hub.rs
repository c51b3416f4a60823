//! Per-room fan-out inside one agent.
//!
//! While at least one local socket is joined to a room, the agent holds one core subscription to
//! the room's live subject (the stream's RePublish) and one task that turns each message into a
//! frame once and queues the shared bytes on every joined socket. The task remembers the last `seq`
//! it forwarded; a message whose `prev_seq` is newer than that means core NATS dropped something,
//! and the gap is filled from JetStream before going on, so sockets see every message once, in
//! order.
//!
//! A socket that is joining with `since` is attached in *buffering* mode: live frames are held for
//! it while its replay is read from JetStream, then [`Hub::activate`] releases the ones newer than
//! the replay. That is what makes the junction free of gaps and duplicates.
//!
//! Each live message is delivered in a `chat.deliver` span, a child of the sender's `chat.send`
//! (the context is in the re-published headers), and its age since `sent_at` is recorded in
//! `dyschat_delivery_latency_seconds`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use async_nats::{HeaderMap, Subscriber};
use axum::extract::ws::Utf8Bytes;
use dyschat_shared::{
    subjects, telemetry, time,
    wire::{Message, ServerFrame, StoredMessage},
    ApiError,
};
use futures::StreamExt;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::chat::Chat;
use crate::socket::{SocketHandle, CLOSE_SLOW};

enum Mode {
    Live { last_seq: u64 },
    Buffering(Vec<(u64, Utf8Bytes)>),
}

struct Attached {
    socket: SocketHandle,
    mode: Mode,
}

#[derive(Default)]
struct RoomState {
    /// The newest `seq` this agent forwarded for the room; `None` until known (`Some(0)`: the
    /// room was empty when it was looked at).
    last_forwarded: Option<u64>,
    sockets: HashMap<u64, Attached>,
}

/// When a new room subscription first checks that it missed nothing, and how often after.
const CATCH_UP_FIRST: std::time::Duration = std::time::Duration::from_secs(1);
const CATCH_UP_EVERY: std::time::Duration = std::time::Duration::from_secs(15);

struct RoomChannel {
    state: Mutex<RoomState>,
    stop: CancellationToken,
}

pub struct Hub {
    client: async_nats::Client,
    chat: Chat,
    rooms: RwLock<HashMap<String, Arc<RoomChannel>>>,
    /// Serialises attach and detach, which may subscribe or unsubscribe.
    membership_changes: tokio::sync::Mutex<()>,
    tracker: TaskTracker,
    shutdown: CancellationToken,
    /// The most frames held for a socket while it replays, and the most a gap fill reads.
    buffer_limit: usize,
    recovery_limit: u64,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Hub {
    pub fn new(
        client: async_nats::Client,
        chat: Chat,
        tracker: TaskTracker,
        shutdown: CancellationToken,
        buffer_limit: usize,
        recovery_limit: u64,
    ) -> Self {
        Hub {
            client,
            chat,
            rooms: RwLock::new(HashMap::new()),
            membership_changes: tokio::sync::Mutex::new(()),
            tracker,
            shutdown,
            buffer_limit,
            recovery_limit,
        }
    }

    fn channel(&self, room_id: &str) -> Option<Arc<RoomChannel>> {
        self.rooms
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(room_id)
            .cloned()
    }

    /// Attaches `socket` to `room_id` in buffering mode, subscribing the agent to the room first
    /// if no local socket was joined yet. Once this returns, every message stored afterwards
    /// reaches the socket's buffer.
    pub async fn attach(
        self: &Arc<Self>,
        room_id: &str,
        socket: &SocketHandle,
    ) -> Result<(), ApiError> {
        let _guard = self.membership_changes.lock().await;
        let channel = match self.channel(room_id) {
            Some(channel) => channel,
            None => {
                let subscriber = self
                    .client
                    .subscribe(subjects::live(room_id))
                    .await
                    .map_err(|e| ApiError::unavailable(format!("subscribe failed: {e}")))?;
                let channel = Arc::new(RoomChannel {
                    state: Mutex::new(RoomState::default()),
                    stop: self.shutdown.child_token(),
                });
                self.rooms
                    .write()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(room_id.to_string(), channel.clone());
                let hub = self.clone();
                let room = room_id.to_string();
                let task_channel = channel.clone();
                self.tracker
                    .spawn(async move { hub.room_task(room, task_channel, subscriber).await });
                metrics::gauge!("dyschat_ws_room_subscriptions").increment(1.0);
                channel
            }
        };
        lock(&channel.state).sockets.insert(
            socket.id(),
            Attached {
                socket: socket.clone(),
                mode: Mode::Buffering(Vec::new()),
            },
        );
        Ok(())
    }

    /// Records the room's newest `seq` as read at join time, if the channel has not seen one yet,
    /// so that a later gap is recognised.
    pub fn note_position(&self, room_id: &str, seq: u64) {
        if let Some(channel) = self.channel(room_id) {
            let mut state = lock(&channel.state);
            if state.last_forwarded.is_none() {
                state.last_forwarded = Some(seq);
            }
        }
    }

    /// Ends buffering for a socket whose replay delivered everything up to `delivered_up_to`:
    /// queues the buffered frames newer than that and switches the socket to live delivery.
    pub fn activate(&self, room_id: &str, socket_id: u64, delivered_up_to: u64) {
        let Some(channel) = self.channel(room_id) else {
            return;
        };
        let mut state = lock(&channel.state);
        let Some(attached) = state.sockets.get_mut(&socket_id) else {
            return;
        };
        let mut last_seq = delivered_up_to;
        if let Mode::Buffering(buffer) = &mut attached.mode {
            for (seq, frame) in buffer.drain(..) {
                if seq > last_seq {
                    if !attached.socket.push(frame) {
                        break;
                    }
                    last_seq = seq;
                }
            }
        }
        attached.mode = Mode::Live { last_seq };
    }

    /// Detaches a socket; the last one out unsubscribes the agent from the room.
    pub async fn detach(&self, room_id: &str, socket_id: u64) {
        let _guard = self.membership_changes.lock().await;
        let Some(channel) = self.channel(room_id) else {
            return;
        };
        let empty = {
            let mut state = lock(&channel.state);
            state.sockets.remove(&socket_id);
            state.sockets.is_empty()
        };
        if empty {
            self.rooms
                .write()
                .unwrap_or_else(|p| p.into_inner())
                .remove(room_id);
            channel.stop.cancel();
            metrics::gauge!("dyschat_ws_room_subscriptions").decrement(1.0);
        }
    }

    /// Sockets of `user_id` joined to `room_id` here (to detach them when the user leaves).
    pub fn sockets_of(&self, room_id: &str, user_id: &str) -> Vec<SocketHandle> {
        let Some(channel) = self.channel(room_id) else {
            return Vec::new();
        };
        let state = lock(&channel.state);
        state
            .sockets
            .values()
            .filter(|a| a.socket.user_id() == user_id)
            .map(|a| a.socket.clone())
            .collect()
    }

    /// Queues an unsequenced event (membership, presence) on every socket of the room.
    pub fn broadcast(&self, room_id: &str, frame: &ServerFrame) {
        self.broadcast_except(room_id, "", frame);
    }

    /// Like [`broadcast`](Self::broadcast), skipping the sockets of `user_id` (typing is not
    /// echoed to the typist).
    pub fn broadcast_except(&self, room_id: &str, user_id: &str, frame: &ServerFrame) {
        let Some(channel) = self.channel(room_id) else {
            return;
        };
        let bytes = Utf8Bytes::from(frame.to_json());
        let state = lock(&channel.state);
        for attached in state.sockets.values() {
            if attached.socket.user_id() != user_id {
                attached.socket.push(bytes.clone());
            }
        }
    }

    /// Rooms this agent is subscribed to.
    pub fn room_ids(&self) -> Vec<String> {
        self.rooms
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .keys()
            .cloned()
            .collect()
    }

    async fn room_task(
        self: Arc<Self>,
        room_id: String,
        channel: Arc<RoomChannel>,
        mut sub: Subscriber,
    ) {
        let mut catch_up =
            tokio::time::interval_at(tokio::time::Instant::now() + CATCH_UP_FIRST, CATCH_UP_EVERY);
        loop {
            let message = tokio::select! {
                _ = channel.stop.cancelled() => break,
                _ = catch_up.tick() => {
                    self.catch_up(&room_id, &channel).await;
                    continue;
                }
                next = sub.next() => match next {
                    Some(m) => m,
                    None => break,
                },
            };
            let Some((seq, prev)) = message.headers.as_ref().and_then(sequence_headers) else {
                tracing::warn!(room = %room_id, "live message without sequence headers ignored");
                continue;
            };
            let last = lock(&channel.state).last_forwarded;
            if last.is_some_and(|last| seq <= last) {
                continue;
            }
            if let Some(last) = last.filter(|last| prev > *last) {
                self.fill_gap(&room_id, &channel, last, prev).await;
            }
            match serde_json::from_slice::<StoredMessage>(&message.payload) {
                Ok(stored) => {
                    if let Some(age) = time::seconds_since(&stored.sent_at) {
                        metrics::histogram!("dyschat_delivery_latency_seconds").record(age);
                    }
                    let span = deliver_span(&room_id, seq, &stored.message_id, &message);
                    let _entered = span.enter();
                    let delivered = fan_out(
                        &channel,
                        Message::from_stored(stored, seq, prev),
                        self.buffer_limit,
                    );
                    span.record("sockets", delivered);
                }
                Err(e) => tracing::error!(seq, error = %e, "undecodable live message skipped"),
            }
        }
        if let Err(e) = sub.unsubscribe().await {
            tracing::debug!(error = %e, "unsubscribe");
        }
    }

    /// Compares the room's newest `seq` in JetStream with the last one forwarded and fills the
    /// difference. A live message lost with nothing after it (the subscription's interest not yet
    /// known to the stream leader's node in a cluster, a reconnect) is otherwise only noticed when
    /// the next message arrives.
    async fn catch_up(&self, room_id: &str, channel: &RoomChannel) {
        let Some(last) = lock(&channel.state).last_forwarded else {
            return;
        };
        match self.chat.last_seq(room_id).await {
            Ok(newest) if newest > last => self.fill_gap(room_id, channel, last, newest).await,
            Ok(_) => {}
            Err(e) => tracing::debug!(room = %room_id, error = %e, "catch-up check failed"),
        }
    }

    /// Reads `(after, up_to]` of the room from JetStream and forwards it.
    async fn fill_gap(&self, room_id: &str, channel: &RoomChannel, after: u64, up_to: u64) {
        metrics::counter!("dyschat_ws_gap_fills_total").increment(1);
        tracing::info!(room = %room_id, after, up_to, "live gap detected, filling from JetStream");
        match self
            .chat
            .replay(room_id, after, up_to, after, self.recovery_limit)
            .await
        {
            Ok(Some(messages)) => {
                for m in messages {
                    fan_out(channel, m, self.buffer_limit);
                }
            }
            Ok(None) => {
                tracing::warn!(room = %room_id, "gap too large to fill; clients rejoin with since")
            }
            Err(e) => {
                tracing::warn!(room = %room_id, error = %e, "gap fill failed; clients rejoin with since")
            }
        }
    }
}

/// `Nats-Sequence` and `Nats-Last-Sequence` of a re-published message: the contract's `seq` and
/// `prev_seq`.
pub fn sequence_headers(headers: &HeaderMap) -> Option<(u64, u64)> {
    let seq = headers
        .get(async_nats::header::NATS_SEQUENCE)?
        .as_str()
        .parse()
        .ok()?;
    let prev = headers
        .get(async_nats::header::NATS_LAST_SEQUENCE)
        .map_or(Some(0), |v| v.as_str().parse().ok())?;
    Some((seq, prev))
}

/// The `chat.deliver` span of a live message at this agent (none while traces are not exported).
fn deliver_span(
    room_id: &str,
    seq: u64,
    message_id: &str,
    message: &async_nats::Message,
) -> tracing::Span {
    if !telemetry::exporting() {
        return tracing::Span::none();
    }
    let span = tracing::info_span!(
        "chat.deliver",
        otel.kind = "consumer",
        messaging.system = "nats",
        messaging.operation.type = "process",
        messaging.destination.name = %message.subject,
        room.id = %room_id,
        message.id = %message_id,
        message.seq = seq,
        sockets = tracing::field::Empty,
        dyschat.service = "dyschat-ws-agent",
    );
    telemetry::set_parent(&span, message.headers.as_ref());
    span
}

/// Serialises `message` once and queues it on every socket that has not had it yet; returns on
/// how many sockets it was queued.
fn fan_out(channel: &RoomChannel, message: Message, buffer_limit: usize) -> u64 {
    let seq = message.seq;
    let frame = Utf8Bytes::from(ServerFrame::Message(message).to_json());
    let mut state = lock(&channel.state);
    if state.last_forwarded.is_some_and(|last| seq <= last) {
        return 0;
    }
    state.last_forwarded = Some(seq);
    let mut delivered = 0u64;
    for attached in state.sockets.values_mut() {
        match &mut attached.mode {
            Mode::Live { last_seq } => {
                if seq > *last_seq && attached.socket.push(frame.clone()) {
                    *last_seq = seq;
                    delivered += 1;
                }
            }
            Mode::Buffering(buffer) => {
                if buffer.len() < buffer_limit {
                    buffer.push((seq, frame.clone()));
                } else {
                    attached.socket.close(CLOSE_SLOW);
                }
            }
        }
    }
    metrics::counter!("dyschat_ws_messages_delivered_total").increment(delivered);
    delivered
}
