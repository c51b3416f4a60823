//! The storage of the [standing cache](super): entries per room and user, the room's
//! visibility, the bound (expired entries go first, then whole rooms) and the bounded record of
//! deleted rooms. The rules about which change wins are in the parent module.

use std::collections::{HashMap, HashSet, VecDeque};

use dyschat_protocol::policy::{Standing, Visibility};
use tokio::time::Instant;

use super::{newer, MEMBERSHIP_TTL};

/// The most deleted rooms remembered (the oldest is forgotten first; its record is a tombstone
/// in the rooms service anyway, so asking again answers `not_found`).
const MAX_DELETED: usize = 10_000;

#[derive(Debug, Clone, Copy)]
pub(super) struct Entry {
    pub(super) standing: Standing,
    pub(super) revision: u64,
    /// The newest revision whose event was turned into frames here: this agent's own join
    /// reply records the state at revision R before the event at R arrives, and that event must
    /// still be announced (`member_joined`, sockets detached), once.
    pub(super) announced: u64,
    pub(super) checked: Instant,
    /// `false`: rooms answered `not_found` (no such room): an outsider probing ids is answered
    /// from here like one probing a private room, in the same time.
    pub(super) exists: bool,
}

pub(super) struct RoomEntries {
    pub(super) users: HashMap<String, Entry>,
    pub(super) visibility: Visibility,
    pub(super) room_revision: u64,
    /// The newest room revision announced (`room_updated`).
    pub(super) room_announced: u64,
}

impl RoomEntries {
    pub(super) fn new(visibility: Visibility, room_revision: u64) -> Self {
        RoomEntries {
            users: HashMap::new(),
            visibility,
            room_revision,
            room_announced: 0,
        }
    }

    pub(super) fn standing(&self, entry: &Entry) -> Standing {
        Standing {
            visibility: self.visibility,
            ..entry.standing
        }
    }

    /// Takes the visibility of an answer read at `room_revision` if it is newer.
    pub(super) fn see_visibility(&mut self, visibility: Visibility, room_revision: u64) {
        if newer(room_revision, self.room_revision) {
            self.visibility = visibility;
            self.room_revision = room_revision;
        }
    }
}

#[derive(Default)]
pub(super) struct Entries {
    pub(super) rooms: HashMap<String, RoomEntries>,
    pub(super) len: usize,
    pub(super) deleted: HashSet<String>,
    pub(super) deleted_order: VecDeque<String>,
}

impl Entries {
    /// Drops expired entries, then whole rooms, until the cache is at most 7/8 full: the sweep
    /// is O(n) but runs once per n/8 insertions.
    pub(super) fn make_room(&mut self, now: Instant, max: usize) {
        for room in self.rooms.values_mut() {
            room.users
                .retain(|_, e| now.saturating_duration_since(e.checked) < MEMBERSHIP_TTL);
        }
        self.rooms.retain(|_, room| !room.users.is_empty());
        self.len = self.rooms.values().map(|r| r.users.len()).sum();
        let target = max - max / 8;
        while self.len > target {
            let Some(room) = self.rooms.keys().next().cloned() else {
                break;
            };
            if let Some(entries) = self.rooms.remove(&room) {
                self.len -= entries.users.len();
            }
        }
    }

    pub(super) fn insert(&mut self, room_id: &str, user_id: &str, entry: Entry, max: usize) {
        if self.len >= max {
            self.make_room(entry.checked, max);
        }
        let room = self
            .rooms
            .entry(room_id.to_string())
            .or_insert_with(|| RoomEntries::new(entry.standing.visibility, 0));
        if room.users.insert(user_id.to_string(), entry).is_none() {
            self.len += 1;
        }
    }

    /// Forgets everything of a deleted room and remembers (bounded) that it is gone.
    pub(super) fn forget_room(&mut self, room_id: &str) {
        if let Some(room) = self.rooms.remove(room_id) {
            self.len -= room.users.len();
        }
        if self.deleted.insert(room_id.to_string()) {
            self.deleted_order.push_back(room_id.to_string());
            if self.deleted_order.len() > MAX_DELETED {
                if let Some(oldest) = self.deleted_order.pop_front() {
                    self.deleted.remove(&oldest);
                }
            }
        }
    }
}
