//! This agent's part of the eviction handshake (docs/ROOMS.md): before the rooms service answers
//! a kick, ban or deletion, every agent takes the sockets concerned out of the room and confirms.
//!
//! The order matters for a join racing the eviction: the new standing is recorded first, then
//! the sockets are detached (with `kicked` / `room_deleted` as their last frame of the room),
//! so a join that attaches after the detach decides over the new standing and undoes itself
//! (see [`super::join`]). Nothing here waits: the caller replies right after.

use dyschat_protocol::wire::{Eviction, EvictionCause, ServerFrame};

use super::standing::Change;
use super::Core;

impl Core {
    /// Applies an eviction; returns how many local sockets left the room.
    pub(crate) fn evict(&self, eviction: &Eviction) -> usize {
        let room_id = eviction.room_id.as_str();
        let cache = &self.membership.cache;
        let last = match eviction.cause {
            EvictionCause::Deleted => ServerFrame::RoomDeleted {
                room_id: room_id.to_string(),
            },
            EvictionCause::Kicked | EvictionCause::Banned => ServerFrame::Kicked {
                room_id: room_id.to_string(),
                by: eviction.by.clone(),
                reason: eviction.reason.clone(),
            },
        };
        if eviction.cause == EvictionCause::Deleted {
            cache.deleted(room_id);
        }
        match &eviction.user_id {
            Some(user_id) => {
                let change = eviction.standing.map_or(Change::Joined(false), Change::To);
                cache.change(room_id, user_id, change, eviction.revision);
                self.hub.evict(room_id, Some(user_id), &last)
            }
            None => self.hub.evict(room_id, None, &last),
        }
    }
}
