//! Who is a member of which room, cached in the agent.
//!
//! Every send, history read and member listing needs a membership check; asking the rooms service
//! each time would put a request on every message. The cache is filled from the rooms service on
//! first use, kept fresh by the membership events rooms publishes, and expires after a while so a
//! missed event (core NATS is at-most-once) cannot keep it wrong for long.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use dyschat_protocol::wire::{Member, MembershipEvent};

/// How long a room's member set is trusted without a refresh.
pub const MEMBERSHIP_TTL: Duration = Duration::from_secs(30);
/// The most rooms cached; past it the cache starts over rather than grow without bound.
pub const MAX_CACHED_ROOMS: usize = 10_000;

struct Entry {
    members: HashMap<String, String>,
    fetched: Instant,
}

#[derive(Default)]
pub struct MembershipCache {
    rooms: Mutex<HashMap<String, Entry>>,
}

impl MembershipCache {
    fn rooms(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.rooms.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `Some(is_member)` if the room's member set is cached and fresh, `None` if it must be
    /// fetched.
    pub fn check(&self, room_id: &str, user_id: &str) -> Option<bool> {
        let rooms = self.rooms();
        let entry = rooms.get(room_id)?;
        (entry.fetched.elapsed() < MEMBERSHIP_TTL).then(|| entry.members.contains_key(user_id))
    }

    /// Stores a member set fetched from the rooms service.
    pub fn put(&self, room_id: &str, members: &[Member]) {
        let mut rooms = self.rooms();
        if rooms.len() >= MAX_CACHED_ROOMS && !rooms.contains_key(room_id) {
            rooms.clear();
        }
        rooms.insert(
            room_id.to_string(),
            Entry {
                members: members
                    .iter()
                    .map(|m| (m.user_id.clone(), m.username.clone()))
                    .collect(),
                fetched: Instant::now(),
            },
        );
    }

    /// Applies a join or leave to a cached room (uncached rooms are fetched when needed).
    pub fn apply(&self, event: &MembershipEvent) {
        let mut rooms = self.rooms();
        if let Some(entry) = rooms.get_mut(&event.room_id) {
            if event.joined {
                entry
                    .members
                    .insert(event.user_id.clone(), event.username.clone());
            } else {
                entry.members.remove(&event.user_id);
            }
        }
    }

    /// Whether `user_id` is a cached member of `room_id`, stale or not (for routing events).
    pub fn knows_member(&self, room_id: &str, user_id: &str) -> bool {
        self.rooms()
            .get(room_id)
            .is_some_and(|e| e.members.contains_key(user_id))
    }

    pub fn clear(&self) {
        self.rooms().clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(id: &str) -> Member {
        Member {
            user_id: id.into(),
            username: id.into(),
            online: false,
            role: Default::default(),
        }
    }

    #[test]
    fn events_update_cached_rooms_only() {
        let cache = MembershipCache::default();
        assert_eq!(cache.check("r", "a"), None);
        cache.put("r", &[member("a")]);
        assert_eq!(cache.check("r", "a"), Some(true));
        assert_eq!(cache.check("r", "b"), Some(false));
        let mut event = MembershipEvent {
            room_id: "r".into(),
            user_id: "b".into(),
            username: "b".into(),
            joined: true,
            revision: 0,
        };
        cache.apply(&event);
        assert_eq!(cache.check("r", "b"), Some(true));
        event.joined = false;
        cache.apply(&event);
        assert_eq!(cache.check("r", "b"), Some(false));
        event.room_id = "other".into();
        cache.apply(&event);
        assert_eq!(cache.check("other", "b"), None);
    }
}
