//! Read markers: `read {room_id, seq}` and `POST /api/v1/rooms/{room_id}/read`, one path for
//! both edges.
//!
//! A marker only moves forward. The rule lives here, over the store's compare-and-set: read the
//! marker and its revision, answer the current one when `seq` is not above it, else write at
//! that revision; a concurrent write (another device of the user) makes the write fail, and the
//! decision is taken again on what that write left, at most [`MAX_ATTEMPTS`] times. Reading a
//! room is authorized like its history (members only; a private room is `not_found` to
//! outsiders), and a `seq` above the room's `last_event_seq` (its newest message or change) is refused. A marker that moved is
//! announced on the user's event subject, so every socket of theirs, on every agent, gets
//! `read_marker` ([`super::user_sockets`]) — but the socket that sent `read`, which has its
//! answer — and, in a room of at most 100 members, as a receipt to the room's other members
//! ([`super::receipts`]).

use dyschat_protocol::{policy::Action, wire::ReadMarkerEvent};

use super::{Core, CoreError, User};

/// Compare-and-set attempts before the answer is "busy, try again".
const MAX_ATTEMPTS: usize = 8;

impl Core {
    /// Moves the user's marker in the room to `seq` if that is forward; returns the marker.
    /// `socket` is the socket whose `read` it is (it gets the answer, not the announcement).
    pub(crate) async fn read(
        &self,
        user: &User,
        room_id: &str,
        seq: u64,
        socket: Option<u64>,
    ) -> Result<u64, CoreError> {
        self.membership
            .decide(room_id, &user.user_id, Action::Read)
            .await?;
        let mut newest_checked = false;
        for _ in 0..MAX_ATTEMPTS {
            let current = self
                .read_markers
                .marker(&user.user_id, room_id)
                .await
                .map_err(CoreError::unavailable("read marker"))?;
            let (marker, expected) = current.map_or((0, None), |m| (m.seq, Some(m.revision)));
            if seq <= marker {
                return Ok(marker);
            }
            if !newest_checked {
                let (last_seq, last_change) = self
                    .positions(room_id)
                    .await
                    .map_err(CoreError::unavailable("read marker"))?;
                if seq > last_seq.max(last_change) {
                    return Err(CoreError::Invalid("seq is above the room's last_event_seq"));
                }
                newest_checked = true;
            }
            if self
                .read_markers
                .put_if(&user.user_id, room_id, seq, expected)
                .await
                .map_err(CoreError::unavailable("read marker"))?
            {
                let origin = socket.map(|id| self.user_sockets.origin(id));
                tokio::join!(
                    self.announce_read(user, room_id, seq, origin),
                    self.announce_receipt(user, room_id, seq),
                );
                return Ok(seq);
            }
        }
        Err(CoreError::Busy("the read marker is changing, try again"))
    }

    /// Tells every socket of the user (on every agent, this one included) where the marker is.
    async fn announce_read(&self, user: &User, room_id: &str, seq: u64, origin: Option<String>) {
        let event = ReadMarkerEvent {
            user_id: user.user_id.clone(),
            room_id: room_id.to_string(),
            seq,
            origin,
        };
        // The marker is stored: a lost announcement leaves the other devices one step behind
        // until their next me/rooms, it does not fail the read.
        if let Err(e) = self.user_events.publish_read(&event).await {
            tracing::warn!(error = %e, "read marker announcement failed");
        }
    }
}
