//! Per-room fan-out inside one agent.
//!
//! While something here holds a room (a joined socket, or an HTTP post waiting for its
//! position), the agent holds one subscription to the room's live feed (the stream's RePublish)
//! and one task that turns each message into a frame once and queues the shared bytes on every
//! joined socket. The task remembers the last `seq` it forwarded; a message whose `prev_seq` is
//! newer than that means core NATS dropped something, and the gap is filled from JetStream
//! before going on, so sockets see every message once, in order.
//!
//! A socket that is joining is attached in *buffering* mode: live frames are held for it while
//! its replay is read from JetStream, then [`Hub::activate`] releases the ones newer than the
//! replay. That is what makes the junction free of gaps and duplicates; the join protocol itself
//! is driven by [`crate::core::join`].
//!
//! The per-room task, with its gap detection and catch-up checks, is in [`room`]; delivery and
//! gap filling in [`deliver`]; the positions HTTP posts wait for in [`watch`].
//!
//! A channel is closed (and the agent unsubscribed) by whoever sees it become idle: the last
//! socket to detach, or the room task for a channel only posts held. The `closed` flag, set under
//! the channel's lock, guarantees that a closing channel never gains a socket or a watcher.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use dyschat_protocol::wire::ServerFrame;
use dyschat_runtime::metric;
use tokio::sync::{oneshot, Notify};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::ports::{Bus, ChangeLog, MessageStream, PortError};
use crate::socket::{OutFrame, SocketHandle};

mod deliver;
mod evict;
mod room;
#[cfg(test)]
mod tests;
mod watch;

pub(crate) use watch::Watch;

/// The most `(seq, prev_seq)` pairs a room remembers for the posts watching it.
const RECENT_LIMIT: usize = 4096;

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
    /// The newest position (a message's `seq` or a change's `event_seq`) this agent forwarded
    /// for the room; `None` until known (`Some(0)`: the room was empty when it was looked at).
    last_forwarded: Option<u64>,
    /// The newest message `seq` forwarded or known (the `prev_seq` of the next one).
    last_message: u64,
    /// The newest change `event_seq` forwarded or known (0: none seen).
    last_change: u64,
    /// The newest `seq` this agent knows is stored, from its own publish acks.
    expected: u64,
    sockets: HashMap<u64, Attached>,
    /// HTTP posts waiting for their message's position.
    watchers: usize,
    /// `(seq, prev_seq)` of the messages forwarded while posts watch, oldest first: a post's
    /// own message often comes live before its ack does.
    recent: VecDeque<(u64, u64)>,
    /// Posts waiting for a `seq` not forwarded yet; answered with its `prev_seq`, or `None` when
    /// the room moved past it without forwarding it (then the post asks the stream).
    waiters: Vec<(u64, oneshot::Sender<Option<u64>>)>,
    closed: bool,
}

impl RoomState {
    fn idle(&self) -> bool {
        self.sockets.is_empty() && self.watchers == 0
    }

    /// Records the room's newest message as read from the stream, if nothing is known yet.
    fn note_position(&mut self, seq: u64) {
        if self.last_forwarded.is_none() {
            self.last_forwarded = Some(seq);
            self.last_message = seq;
        }
    }

    /// Records a forwarded change event.
    fn forwarded_change(&mut self, event_seq: u64) {
        self.last_forwarded = Some(event_seq);
        self.last_change = event_seq;
    }

    /// Records a forwarded message for the posts that watch the room.
    fn forwarded(&mut self, seq: u64, prev: u64) {
        self.last_forwarded = Some(seq);
        self.last_message = seq;
        if self.watchers > 0 {
            if self.recent.len() >= RECENT_LIMIT {
                self.recent.pop_front();
            }
            self.recent.push_back((seq, prev));
        }
        if !self.waiters.is_empty() {
            for (waited, tx) in std::mem::take(&mut self.waiters) {
                if waited == seq {
                    let _ = tx.send(Some(prev));
                } else if waited < seq {
                    let _ = tx.send(None);
                } else {
                    self.waiters.push((waited, tx));
                }
            }
        }
    }
}

struct RoomChannel {
    state: Mutex<RoomState>,
    stop: CancellationToken,
    /// Woken by [`Hub::expect`] when this agent learns of a stored message it has not forwarded.
    expected: Notify,
}

/// What keeps a room channel open.
enum Holder<'a> {
    Socket(&'a SocketHandle),
    Watcher,
}

impl Holder<'_> {
    fn hold(&self, state: &mut RoomState) {
        match self {
            Holder::Socket(socket) => {
                state.sockets.insert(
                    socket.id(),
                    Attached {
                        socket: (*socket).clone(),
                        mode: Mode::Buffering(Vec::new()),
                    },
                );
            }
            Holder::Watcher => state.watchers += 1,
        }
    }
}

pub(crate) struct Hub {
    bus: Arc<dyn Bus>,
    stream: Arc<dyn MessageStream>,
    changes: Arc<dyn ChangeLog>,
    rooms: RwLock<HashMap<String, Arc<RoomChannel>>>,
    /// Serialises subscribing, so two joins of a new room do not both subscribe.
    subscribing: tokio::sync::Mutex<()>,
    tracker: TaskTracker,
    shutdown: CancellationToken,
    /// The most frames held for a socket while it replays.
    buffer_limit: usize,
    /// The most messages a gap fill reads.
    recovery_limit: u64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Hub {
    pub(crate) fn new(
        bus: Arc<dyn Bus>,
        stream: Arc<dyn MessageStream>,
        changes: Arc<dyn ChangeLog>,
        tracker: TaskTracker,
        shutdown: CancellationToken,
        buffer_limit: usize,
        recovery_limit: u64,
    ) -> Self {
        Hub {
            bus,
            stream,
            changes,
            rooms: RwLock::new(HashMap::new()),
            subscribing: tokio::sync::Mutex::new(()),
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

    /// The room's open channel, now also held by `holder`; subscribes the agent to the room
    /// first if it has none (then `true`).
    async fn enter(
        self: &Arc<Self>,
        room_id: &str,
        holder: Holder<'_>,
    ) -> Result<(Arc<RoomChannel>, bool), PortError> {
        let try_hold = |channel: &RoomChannel| {
            let mut state = lock(&channel.state);
            !state.closed && {
                holder.hold(&mut state);
                true
            }
        };
        if let Some(channel) = self.channel(room_id).filter(|c| try_hold(c)) {
            return Ok((channel, false));
        }
        let _guard = self.subscribing.lock().await;
        // Again: another task may have subscribed while this one waited.
        if let Some(channel) = self.channel(room_id).filter(|c| try_hold(c)) {
            return Ok((channel, false));
        }
        let live = self.bus.subscribe_live(room_id).await?;
        let mut state = RoomState::default();
        holder.hold(&mut state);
        let channel = Arc::new(RoomChannel {
            state: Mutex::new(state),
            stop: self.shutdown.child_token(),
            expected: Notify::new(),
        });
        self.rooms
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(room_id.to_string(), channel.clone());
        let (hub, room, task_channel) = (self.clone(), room_id.to_string(), channel.clone());
        self.tracker
            .spawn(async move { hub.room_task(room, task_channel, live).await });
        metrics::gauge!(metric::WS_ROOM_SUBSCRIPTIONS).increment(1.0);
        Ok((channel, true))
    }

    /// Closes `channel` if nothing holds it any more; `false` if something does (or it was
    /// closed already).
    fn close_if_idle(&self, room_id: &str, channel: &Arc<RoomChannel>) -> bool {
        {
            let mut state = lock(&channel.state);
            if state.closed || !state.idle() {
                return false;
            }
            state.closed = true;
        }
        self.forget(room_id, channel);
        true
    }

    /// Removes a closed channel from the map (unless a newer one replaced it) and stops its task.
    fn forget(&self, room_id: &str, channel: &Arc<RoomChannel>) {
        {
            let mut rooms = self.rooms.write().unwrap_or_else(|p| p.into_inner());
            if rooms.get(room_id).is_some_and(|c| Arc::ptr_eq(c, channel)) {
                rooms.remove(room_id);
            }
        }
        channel.stop.cancel();
        metrics::gauge!(metric::WS_ROOM_SUBSCRIPTIONS).decrement(1.0);
    }

    /// Attaches `socket` to `room_id` in buffering mode (replacing an earlier attachment of the
    /// same socket), subscribing the agent to the room first if nothing held it yet. Once this
    /// returns, every message stored afterwards reaches the socket's buffer.
    pub(crate) async fn attach(
        self: &Arc<Self>,
        room_id: &str,
        socket: &SocketHandle,
    ) -> Result<(), PortError> {
        self.enter(room_id, Holder::Socket(socket))
            .await
            .map(|_| ())
    }

    /// Records the room's newest `seq` as read at join time, if the channel has not seen one yet,
    /// so that a later gap is recognised.
    pub(crate) fn note_position(&self, room_id: &str, seq: u64) {
        if let Some(channel) = self.channel(room_id) {
            lock(&channel.state).note_position(seq);
        }
    }

    /// Records the room's newest change event as read at join time (after
    /// [`note_position`](Self::note_position)), if the channel has not forwarded a newer one.
    pub(crate) fn note_change_position(&self, room_id: &str, event_seq: u64) {
        if let Some(channel) = self.channel(room_id) {
            let mut state = lock(&channel.state);
            if state.last_change < event_seq && state.last_forwarded.is_some_and(|l| l <= event_seq)
            {
                state.last_forwarded = Some(event_seq);
                state.last_change = event_seq;
            }
        }
    }

    /// Tells the room's task that `seq` is stored (this agent had its publish acked), so that
    /// it fills the message from JetStream if the live copy never comes. A re-published message
    /// is at-most-once: on a cluster a fresh subscription's interest may not yet have reached
    /// the stream leader's node, and then the room's newest message would otherwise wait for
    /// the next message or the periodic catch-up check.
    pub(crate) fn expect(&self, room_id: &str, seq: u64) {
        if let Some(channel) = self.channel(room_id) {
            expect_on(&channel, seq);
        }
    }

    /// Ends buffering for a socket whose replay delivered everything up to `delivered_up_to`:
    /// queues the buffered frames newer than that and switches the socket to live delivery.
    pub(crate) fn activate(&self, room_id: &str, socket_id: u64, delivered_up_to: u64) {
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

    /// Detaches a socket; the last holder out unsubscribes the agent from the room.
    pub(crate) fn detach(&self, room_id: &str, socket_id: u64) {
        let Some(channel) = self.channel(room_id) else {
            return;
        };
        lock(&channel.state).sockets.remove(&socket_id);
        self.close_if_idle(room_id, &channel);
    }

    /// Sockets of `user_id` joined to `room_id` here (to detach them when the user leaves).
    pub(crate) fn sockets_of(&self, room_id: &str, user_id: &str) -> Vec<SocketHandle> {
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
    pub(crate) fn broadcast(&self, room_id: &str, frame: &ServerFrame) {
        self.broadcast_except(room_id, "", frame);
    }

    /// Like [`broadcast`](Self::broadcast), skipping the sockets of `user_id` (typing is not
    /// echoed to the typist).
    pub(crate) fn broadcast_except(&self, room_id: &str, user_id: &str, frame: &ServerFrame) {
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
    pub(crate) fn room_ids(&self) -> Vec<String> {
        self.rooms
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .keys()
            .cloned()
            .collect()
    }
}

fn expect_on(channel: &RoomChannel, seq: u64) {
    {
        let mut state = lock(&channel.state);
        if seq <= state.expected || state.last_forwarded.is_some_and(|last| seq <= last) {
            return;
        }
        state.expected = seq;
    }
    channel.expected.notify_one();
}
