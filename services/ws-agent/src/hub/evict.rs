//! Taking sockets out of a room at once (a kick, a ban, a deletion), and the pushes of a join
//! that must not outlive such an eviction.
//!
//! "From the moment a kick, ban or deletion is answered, the user's sockets receive no further
//! frame of that room except `kicked` / `room_deleted`": every frame of a room reaches a socket
//! through the room's channel under its lock (fan-out, broadcasts), or, for a joining socket's
//! `joined` and replay, through [`Hub::push_if_attached`] / [`Hub::push_wait_if_attached`],
//! which check under the same lock that the socket is still attached. So once [`Hub::evict`]
//! has removed a socket under that lock and queued its last frame, nothing of the room follows.
//! Nothing here waits on a socket: a full queue closes the socket (1013), as in fan-out.

use dyschat_protocol::wire::ServerFrame;

use super::{lock, Hub};
use crate::socket::OutFrame;

impl Hub {
    /// Detaches the sockets of `user_id` (every socket of the room when `None`) and queues
    /// `last` on each as the room's last frame; returns how many were detached.
    pub(crate) fn evict(&self, room_id: &str, user_id: Option<&str>, last: &ServerFrame) -> usize {
        let Some(channel) = self.channel(room_id) else {
            return 0;
        };
        let frame = OutFrame::new(last);
        let evicted = {
            let mut state = lock(&channel.state);
            let ids: Vec<u64> = state
                .sockets
                .iter()
                .filter(|(_, a)| user_id.is_none_or(|u| a.socket.user_id() == u))
                .map(|(id, _)| *id)
                .collect();
            for id in &ids {
                if let Some(attached) = state.sockets.remove(id) {
                    attached.socket.push(frame.clone());
                }
            }
            ids.len()
        };
        self.close_if_idle(room_id, &channel);
        evicted
    }

    /// Whether the socket is attached to the room.
    pub(crate) fn is_attached(&self, room_id: &str, socket_id: u64) -> bool {
        self.channel(room_id)
            .is_some_and(|channel| lock(&channel.state).sockets.contains_key(&socket_id))
    }

    /// Queues `frame` on the socket if it is still attached to the room; never waits.
    pub(crate) fn push_if_attached(&self, room_id: &str, socket_id: u64, frame: OutFrame) -> bool {
        let Some(channel) = self.channel(room_id) else {
            return false;
        };
        let state = lock(&channel.state);
        match state.sockets.get(&socket_id) {
            Some(attached) => attached.socket.push(frame),
            None => false,
        }
    }

    /// Waits for room in the socket's queue (a replay, on the socket's own task), then queues
    /// `frame` if the socket is still attached; `false` when it is not (or closed).
    pub(crate) async fn push_wait_if_attached(
        &self,
        room_id: &str,
        socket: &crate::socket::SocketHandle,
        frame: OutFrame,
    ) -> bool {
        let Some(permit) = socket.reserve().await else {
            return false;
        };
        let Some(channel) = self.channel(room_id) else {
            return false;
        };
        let state = lock(&channel.state);
        if !state.sockets.contains_key(&socket.id()) {
            return false;
        }
        permit.send(frame);
        true
    }
}
