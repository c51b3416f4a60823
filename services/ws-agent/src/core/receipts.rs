//! Read receipts (contract section 8), in rooms of at most [`RECEIPT_ROOM_LIMIT`] members:
//! when a member's read marker moves, the room's other subscribed members get
//! `receipt {room_id, user_id, seq}`, and `GET /api/v1/rooms/{room_id}/receipts` lists every
//! member's marker. Larger rooms send none and list none.
//!
//! A receipt travels like typing: the agent that moved the marker publishes a
//! [`ReceiptEvent`] on the room's receipt subject, and every agent queues the frame on the
//! sockets joined to the room there (their users are members: joining decided it), except the
//! reader's own. Whether a room is small is one members page of 101 (one batched read, whatever
//! the room's size), remembered for [`SIZE_TTL`] so a reader does not ask at every `read`; a
//! room that just grew past 100 may send receipts for that long.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use dyschat_protocol::wire::{
    MembersRequest, Receipt, ReceiptEvent, ReceiptList, RECEIPT_ROOM_LIMIT,
};

use super::{Core, CoreError, User};

/// How long a room's size is trusted.
const SIZE_TTL: Duration = Duration::from_secs(30);
/// Rooms whose size is remembered at most; past that the memory starts afresh.
const MAX_ROOMS: usize = 10_000;

/// Whether each recently read room is small enough for receipts, and since when that is known.
#[derive(Default)]
pub(crate) struct RoomSizes {
    rooms: Mutex<HashMap<String, (bool, Instant)>>,
}

impl RoomSizes {
    fn get(&self, room_id: &str, now: Instant) -> Option<bool> {
        let rooms = self.rooms.lock().unwrap_or_else(|p| p.into_inner());
        rooms
            .get(room_id)
            .filter(|(_, at)| now.duration_since(*at) < SIZE_TTL)
            .map(|(small, _)| *small)
    }

    fn put(&self, room_id: &str, small: bool, now: Instant) {
        let mut rooms = self.rooms.lock().unwrap_or_else(|p| p.into_inner());
        if rooms.len() >= MAX_ROOMS {
            rooms.retain(|_, (_, at)| now.duration_since(*at) < SIZE_TTL);
            if rooms.len() >= MAX_ROOMS {
                rooms.clear();
            }
        }
        rooms.insert(room_id.to_string(), (small, now));
    }
}

impl Core {
    /// Every member's read marker in the room, for a member (`Action::Read`: a private room is
    /// `not_found` to outsiders, a public one `forbidden` to non-members); empty in a room of
    /// more than 100 members.
    pub(crate) async fn receipts(
        &self,
        user: &User,
        room_id: &str,
    ) -> Result<ReceiptList, CoreError> {
        let Some(members) = self.small_room_members(user, room_id).await? else {
            return Ok(ReceiptList {
                receipts: Vec::new(),
            });
        };
        let user_ids: Vec<String> = members.iter().map(|(id, _)| id.clone()).collect();
        let markers: HashMap<String, u64> = self
            .read_markers
            .room_markers(room_id, &user_ids)
            .await
            .map_err(CoreError::unavailable("read markers"))?
            .into_iter()
            .collect();
        let receipts = members
            .into_iter()
            .map(|(user_id, username)| Receipt {
                last_read_seq: markers.get(&user_id).copied().unwrap_or(0),
                user_id,
                username,
            })
            .collect();
        Ok(ReceiptList { receipts })
    }

    /// The room's members `(user_id, username)` when there are at most 100, else `None`.
    async fn small_room_members(
        &self,
        user: &User,
        room_id: &str,
    ) -> Result<Option<Vec<(String, String)>>, CoreError> {
        let request = MembersRequest {
            room_id: room_id.to_string(),
            limit: RECEIPT_ROOM_LIMIT + 1,
            cursor: None,
            user_id: user.user_id.clone(),
        };
        let page = self.membership.members(&user.user_id, request).await?;
        let small = page.members.len() <= RECEIPT_ROOM_LIMIT && page.next_cursor.is_none();
        self.room_sizes.put(room_id, small, Instant::now());
        Ok(small.then(|| {
            page.members
                .into_iter()
                .map(|m| (m.user_id, m.username))
                .collect()
        }))
    }

    /// Tells the room's other members that `user` read up to `seq`, if the room is small. The
    /// marker is stored: a failure here is logged, not the reader's.
    pub(super) async fn announce_receipt(&self, user: &User, room_id: &str, seq: u64) {
        let small = match self.room_sizes.get(room_id, Instant::now()) {
            Some(small) => small,
            None => match self.small_room_members(user, room_id).await {
                Ok(members) => members.is_some(),
                Err(e) => {
                    tracing::warn!(error = %e, "room size for a receipt unknown");
                    return;
                }
            },
        };
        if !small {
            return;
        }
        let event = ReceiptEvent {
            room_id: room_id.to_string(),
            user_id: user.user_id.clone(),
            seq,
        };
        if let Err(e) = self.bus.publish_receipt(&event).await {
            tracing::warn!(error = %e, "receipt announcement failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_trusted_for_a_while() {
        let sizes = RoomSizes::default();
        let now = Instant::now();
        assert_eq!(sizes.get("r", now), None);
        sizes.put("r", true, now);
        assert_eq!(sizes.get("r", now + Duration::from_secs(1)), Some(true));
        assert_eq!(sizes.get("r", now + SIZE_TTL), None);
    }
}
