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
//! The per-room task itself, with its gap detection and catch-up checks, is in [`room`].
//!
//! Each live message is delivered in a `chat.deliver` span, a child of the sender's `chat.send`
//! (the context is in the re-published headers), and its age since `sent_at` is recorded in
//! `dyschat_delivery_latency_seconds`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use async_nats::HeaderMap;
use dyschat_protocol::{subjects, wire::ServerFrame, ApiError};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::chat::Chat;
use crate::socket::{OutFrame, SocketHandle};

mod room;

enum Mode {
    Live { last_seq: u64 },
    Buffering(Vec<(u64, OutFrame)>),
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
    /// The newest `seq` this agent knows is stored, from its own publish acks.
    expected: u64,
    sockets: HashMap<u64, Attached>,
}

struct RoomChannel {
    state: Mutex<RoomState>,
    stop: CancellationToken,
    /// Woken by [`Hub::expect`] when this agent learns of a stored message it has not forwarded.
    expected: tokio::sync::Notify,
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
                    expected: tokio::sync::Notify::new(),
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
                metrics::gauge!(dyschat_runtime::metric::WS_ROOM_SUBSCRIPTIONS).increment(1.0);
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

    /// Tells the room's task that `seq` is stored (this agent had its publish acked), so that
    /// it fills the message from JetStream if the live copy never comes. A re-published message
    /// is at-most-once: on a cluster a fresh subscription's interest may not yet have reached
    /// the stream leader's node, and then the room's newest message would otherwise wait for
    /// the next message or the periodic catch-up check.
    pub fn expect(&self, room_id: &str, seq: u64) {
        let Some(channel) = self.channel(room_id) else {
            return;
        };
        {
            let mut state = lock(&channel.state);
            if seq <= state.expected || state.last_forwarded.is_some_and(|last| seq <= last) {
                return;
            }
            state.expected = seq;
        }
        channel.expected.notify_one();
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
            metrics::gauge!(dyschat_runtime::metric::WS_ROOM_SUBSCRIPTIONS).decrement(1.0);
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
        let bytes = OutFrame::new(frame);
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
