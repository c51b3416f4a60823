//! Joining a room with a socket, from start to finish, and leaving it.
//!
//! The invariant that makes `join` with `since` free of gaps and duplicates at the junction with
//! live messages, in the order it needs:
//! 1. the user becomes a member (rooms service);
//! 2. the socket is attached to the room's channel in *buffering* mode: from then on every
//!    stored message reaches its buffer;
//! 3. the room's newest message `seq` and change `event_seq` are read (`joined.last_seq`, and
//!    `joined.last_event_seq` = `L`, the newer of the two);
//! 4. `(since, L]` is replayed from JetStream, messages and change events in sequence order,
//!    each in its current state ([`super::fold`]) (or, past the recovery limit, nothing:
//!    `recovered: false`);
//! 5. the socket is activated: buffered messages newer than `L` are released, and it goes live.
//!
//! Between steps 2 and 3 the user's standing is decided again (`Read`, from the cache): a kick,
//! ban or deletion records the new standing before it detaches the room's sockets, so a join
//! attached after such an eviction sees it and undoes itself. Every frame of steps 3 to 5 is
//! queued only while the socket is still attached ([`crate::hub::Hub::push_if_attached`]): an
//! eviction during the join leaves `kicked` / `room_deleted` as the room's last frame.
//!
//! Anything that fails after step 2 detaches the socket again, so a failed join leaves nothing
//! behind. [`SocketRooms`] is the set of rooms one socket is joined to, bounded, kept here with
//! the steps that change it.

use std::collections::HashSet;

use dyschat_protocol::policy::Action;
use dyschat_protocol::wire::ServerFrame;

use super::{fold, Core, CoreError, User};
use crate::socket::{OutFrame, SocketHandle};

/// The most rooms one socket may be joined to.
pub(crate) const MAX_ROOMS_PER_SOCKET: usize = 100;
/// How long a join waits for one of the agent's replay slots.
const REPLAY_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// The rooms one socket is joined to.
pub(crate) struct SocketRooms {
    socket: SocketHandle,
    rooms: HashSet<String>,
}

impl SocketRooms {
    pub(crate) fn new(socket: SocketHandle) -> Self {
        SocketRooms {
            socket,
            rooms: HashSet::new(),
        }
    }

    /// Joins `room_id` (a valid id): `joined {room_id, last_seq, recovered}` (with `reference`),
    /// then the replay after `since` if asked for, then live messages. Joining a room the socket
    /// is in starts over from step 1.
    pub(crate) async fn join(
        &mut self,
        core: &Core,
        user: &User,
        room_id: &str,
        since: Option<u64>,
        reference: Option<String>,
    ) -> Result<(), CoreError> {
        if !self.rooms.contains(room_id) && self.rooms.len() >= MAX_ROOMS_PER_SOCKET {
            // Rooms this socket was evicted from (kicked, banned, deleted) no longer count.
            let socket_id = self.socket.id();
            self.rooms
                .retain(|room| core.hub.is_attached(room, socket_id));
            if self.rooms.len() >= MAX_ROOMS_PER_SOCKET {
                return Err(CoreError::Invalid("too many rooms joined on this socket"));
            }
        }
        core.membership.set(room_id, user, true).await?;
        if let Err(e) = core.hub.attach(room_id, &self.socket).await {
            // An earlier attachment of this socket to the room is untouched.
            return Err(CoreError::unavailable("room subscription")(e));
        }
        self.rooms.insert(room_id.to_string());
        let allowed = core
            .membership
            .decide(room_id, &user.user_id, Action::Read)
            .await;
        let caught_up = match allowed {
            Ok(_) => catch_up(core, &self.socket, room_id, since, reference).await,
            Err(e) => Err(e),
        };
        if let Err(e) = caught_up {
            self.rooms.remove(room_id);
            core.hub.detach(room_id, self.socket.id());
            return Err(e);
        }
        Ok(())
    }

    /// Leaves `room_id`: the user stops being a member, and this socket stops receiving it
    /// (the membership event detaches the user's other sockets).
    pub(crate) async fn leave(
        &mut self,
        core: &Core,
        user: &User,
        room_id: &str,
    ) -> Result<(), CoreError> {
        core.membership.set(room_id, user, false).await?;
        if self.rooms.remove(room_id) {
            core.hub.detach(room_id, self.socket.id());
        }
        Ok(())
    }

    /// Detaches the socket from every room (it is closing).
    pub(crate) fn detach_all(&mut self, core: &Core) {
        for room_id in self.rooms.drain() {
            core.hub.detach(&room_id, self.socket.id());
        }
    }
}

/// Steps 3 to 5: `joined`, the replay after `since` if asked for, and live.
async fn catch_up(
    core: &Core,
    socket: &SocketHandle,
    room_id: &str,
    since: Option<u64>,
    reference: Option<String>,
) -> Result<(), CoreError> {
    let (last_seq, last_change) = core
        .positions(room_id)
        .await
        .map_err(CoreError::unavailable("room position lookup"))?;
    let last_event_seq = last_seq.max(last_change);
    core.hub.note_position(room_id, last_seq);
    core.hub.note_change_position(room_id, last_change);
    let joined = |recovered| {
        OutFrame::new(&ServerFrame::Joined {
            room_id: room_id.to_string(),
            last_seq,
            last_event_seq,
            recovered,
            reference: reference.clone(),
        })
    };
    let since = match since {
        Some(since) if since < last_event_seq => since,
        _ => {
            core.hub
                .push_if_attached(room_id, socket.id(), joined(true));
            core.hub.activate(room_id, socket.id(), last_event_seq);
            return Ok(());
        }
    };
    // The replay's first message follows the room's newest message at or before `since`
    // (`since` itself when the client saw it, which is the usual case).
    let stream_newest = core
        .stream
        .newest_up_to(room_id, since)
        .await
        .map_err(CoreError::unavailable("replay"))?;
    // Bounded: each replay is a consumer on the stream; past the bound a join waits a little,
    // then is told to try again rather than piling consumers onto the server.
    let _slot = tokio::time::timeout(REPLAY_WAIT, core.replays.acquire())
        .await
        .ok()
        .and_then(Result::ok)
        .ok_or(CoreError::Busy(
            "too many rooms being replayed at once, try again",
        ))?;
    let replay = core
        .stream
        .replay(room_id, since, last_event_seq, core.recovery_limit)
        .await
        .map_err(CoreError::unavailable("replay"))?;
    match replay {
        None => {
            core.hub
                .push_if_attached(room_id, socket.id(), joined(false));
        }
        Some(entries) => {
            if !core
                .hub
                .push_if_attached(room_id, socket.id(), joined(true))
            {
                return Ok(());
            }
            let start = fold::Start {
                after: since,
                prev_seq: fold::first_prev_seq(&entries, since, stream_newest),
                prev_event_seq: fold::first_prev_event_seq(&entries, since),
            };
            for (_, frame) in fold::replay_frames(room_id, &entries, start) {
                // Bounded (the recovery limit) and on the socket's own task: waiting for room
                // in its queue slows only this socket.
                let frame = OutFrame::new(&frame);
                if !core.hub.push_wait_if_attached(room_id, socket, frame).await {
                    return Ok(());
                }
            }
        }
    }
    core.hub.activate(room_id, socket.id(), last_event_seq);
    Ok(())
}
