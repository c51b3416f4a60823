//! What this agent knows of each user's standing in each room: the cache every authorization
//! decision of the agent reads (see [`super::membership`], which fills it and decides with
//! `dyschat_protocol::policy::decide`).
//!
//! Every send, history read, typing frame and member page needs a decision; asking the rooms
//! service each time would put a request on every message. So the agent keeps one [`Standing`]
//! per (room, user): filled by the rooms service's `access` answers (and the replies to this
//! agent's own joins and leaves), kept fresh by the events rooms publishes (membership, role,
//! standing, room updates, evictions), and trusted for [`MEMBERSHIP_TTL`] only, so a missed
//! event (core NATS is at-most-once) cannot keep it wrong for long.
//!
//! Every change about a pair carries the revision of the member record it produced; one is
//! applied only if it is newer than what is cached (while revisions are all 0, one that is not
//! older), so a late event never undoes a later change. A room's visibility is ordered by the
//! room record's own revision and kept once per room. A deleted room is remembered (bounded) so
//! that an `access` answer read before the deletion cannot bring it back.

use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use dyschat_protocol::policy::{Standing, Visibility};
use tokio::time::Instant;

mod entries;

use entries::{Entries, Entry, RoomEntries};

/// How long an entry is trusted without a fresh answer.
pub(crate) const MEMBERSHIP_TTL: Duration = Duration::from_secs(30);
/// The most (room, user) entries kept; past it, expired entries go first, then whole rooms.
pub(crate) const MAX_ENTRIES: usize = 100_000;

/// Whether a change at `incoming` may replace what is known at `cached`.
pub(super) fn newer(incoming: u64, cached: u64) -> bool {
    incoming > cached || (incoming == 0 && cached == 0)
}

/// What the cache knows of a pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lookup {
    Standing(Standing),
    /// The room was deleted.
    Gone,
}

/// A change to a pair's standing.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Change {
    /// The standing after the change, as rooms sent it.
    To(Standing),
    /// A join (`true`) or leave without a standing: applied to what is cached, if anything.
    Joined(bool),
}

/// The bounded per-(room, user) standing cache.
pub(crate) struct StandingCache {
    entries: Mutex<Entries>,
    max: usize,
}

impl StandingCache {
    pub(crate) fn new(max: usize) -> Self {
        StandingCache {
            entries: Mutex::new(Entries::default()),
            max: max.max(8),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Entries> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// What is known of the pair if it is fresh (or the room is gone); `None`: ask.
    pub(crate) fn fresh(&self, room_id: &str, user_id: &str) -> Option<Lookup> {
        let entries = self.lock();
        if entries.deleted.contains(room_id) {
            return Some(Lookup::Gone);
        }
        let room = entries.rooms.get(room_id)?;
        let entry = room.users.get(user_id)?;
        (entry.checked.elapsed() < MEMBERSHIP_TTL).then(|| {
            if entry.exists {
                Lookup::Standing(room.standing(entry))
            } else {
                Lookup::Gone
            }
        })
    }

    /// The pair's standing as far as the cache knows, fresh or not (for routing presence,
    /// which must not cost a request per room).
    pub(crate) fn known(&self, room_id: &str, user_id: &str) -> Option<Standing> {
        let entries = self.lock();
        let room = entries.rooms.get(room_id)?;
        room.users
            .get(user_id)
            .filter(|e| e.exists)
            .map(|e| room.standing(e))
    }

    /// Records that rooms answered `not_found` for the pair.
    pub(crate) fn missing(&self, room_id: &str, user_id: &str) {
        let now = Instant::now();
        let mut entries = self.lock();
        if let Some(entry) = entries
            .rooms
            .get_mut(room_id)
            .and_then(|room| room.users.get_mut(user_id))
        {
            entry.exists = false;
            entry.checked = now;
            return;
        }
        let entry = Entry {
            standing: Standing::default(),
            revision: 0,
            announced: 0,
            checked: now,
            exists: false,
        };
        entries.insert(room_id, user_id, entry, self.max);
    }

    /// Records an `access` answer and returns what is known after: the answer, unless a newer
    /// change is already cached (then that); `None` when the room was deleted meanwhile.
    pub(crate) fn answer(
        &self,
        room_id: &str,
        user_id: &str,
        standing: Standing,
        revision: u64,
        room_revision: u64,
    ) -> Option<Standing> {
        let now = Instant::now();
        let mut entries = self.lock();
        if entries.deleted.contains(room_id) {
            return None;
        }
        if let Some(room) = entries.rooms.get_mut(room_id) {
            room.see_visibility(standing.visibility, room_revision);
            if let Some(entry) = room.users.get_mut(user_id) {
                if newer(revision, entry.revision) || !entry.exists {
                    entry.standing = standing;
                    entry.revision = revision;
                    entry.checked = now;
                    entry.exists = true;
                } else if revision == entry.revision {
                    entry.checked = now;
                }
                let entry = *entry;
                return Some(room.standing(&entry));
            }
        } else {
            entries.rooms.insert(
                room_id.to_string(),
                RoomEntries::new(standing.visibility, room_revision),
            );
        }
        let entry = Entry {
            standing,
            revision,
            announced: 0,
            checked: now,
            exists: true,
        };
        entries.insert(room_id, user_id, entry, self.max);
        entries.rooms.get(room_id).map(|room| room.standing(&entry))
    }

    /// Applies a change answered to this agent's own request (a join or leave reply, an
    /// eviction); returns whether it was newer than what is cached. Never announced here: the
    /// event of the same revision still is, once.
    pub(crate) fn change(
        &self,
        room_id: &str,
        user_id: &str,
        change: Change,
        revision: u64,
    ) -> bool {
        self.record(room_id, user_id, change, revision, false)
    }

    /// Applies an event at `revision`; returns whether it is to be announced: it is not older
    /// than what is cached and no event at its revision was announced before (a duplicate or
    /// late event changes nothing, frames included).
    pub(crate) fn event(
        &self,
        room_id: &str,
        user_id: &str,
        change: Change,
        revision: u64,
    ) -> bool {
        self.record(room_id, user_id, change, revision, true)
    }

    fn record(
        &self,
        room_id: &str,
        user_id: &str,
        change: Change,
        revision: u64,
        announce: bool,
    ) -> bool {
        let now = Instant::now();
        let mut entries = self.lock();
        if entries.deleted.contains(room_id) {
            return false;
        }
        let after = |before: Option<Standing>| match (change, before) {
            (Change::To(standing), _) => Some(standing),
            (Change::Joined(joined), Some(before)) => Some(Standing {
                role: match (joined, before.role) {
                    (false, _) => None,
                    (true, Some(role)) => Some(role),
                    (true, None) => Some(dyschat_protocol::wire::Role::Member),
                },
                // Joining uses an invitation up.
                invited: before.invited && !joined,
                ..before
            }),
            (Change::Joined(_), None) => None,
        };
        let announced = |before: u64| {
            if announce {
                before.max(revision)
            } else {
                before
            }
        };
        let mut forget = false;
        if let Some(room) = entries.rooms.get_mut(room_id) {
            if let Some(entry) = room.users.get_mut(user_id) {
                if newer(revision, entry.revision) || !entry.exists {
                    match after(entry.exists.then_some(entry.standing)) {
                        Some(standing) => {
                            entry.standing = standing;
                            entry.exists = true;
                            entry.revision = revision;
                            entry.announced = announced(entry.announced);
                            entry.checked = now;
                            return true;
                        }
                        // A bare join or leave of a room thought missing: ask next time.
                        None => forget = true,
                    }
                }
            }
            if forget {
                room.users.remove(user_id);
            }
        }
        if forget {
            entries.len -= 1;
            return true;
        }
        if let Some(room) = entries.rooms.get_mut(room_id) {
            if let Some(entry) = room.users.get_mut(user_id) {
                // The state at this revision is known already (e.g. from this agent's own
                // join reply); its event is announced unless it was before.
                let due = announce && revision == entry.revision && revision > entry.announced;
                if due {
                    entry.announced = revision;
                }
                return due;
            }
        }
        // Nothing cached: a standing is recorded; a bare join or leave is only announced (the
        // next check asks rooms).
        if let Some(standing) = after(None) {
            let entry = Entry {
                standing,
                revision,
                announced: announced(0),
                checked: now,
                exists: true,
            };
            entries.insert(room_id, user_id, entry, self.max);
        }
        true
    }

    /// Applies a room update (visibility) at `room_revision`; returns whether it is to be
    /// announced (`room_updated`): not announced before, and not older than what is known.
    pub(crate) fn room_updated(
        &self,
        room_id: &str,
        visibility: Visibility,
        room_revision: u64,
    ) -> bool {
        let mut entries = self.lock();
        if entries.deleted.contains(room_id) {
            return false;
        }
        let Some(room) = entries.rooms.get_mut(room_id) else {
            return true;
        };
        if room_revision < room.room_revision {
            return false;
        }
        room.see_visibility(visibility, room_revision);
        let due = room_revision > room.room_announced || room_revision == 0;
        room.room_announced = room.room_announced.max(room_revision);
        due
    }

    /// Forgets everything of a deleted room and remembers that it is gone.
    pub(crate) fn deleted(&self, room_id: &str) {
        self.lock().forget_room(room_id);
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.lock().len
    }
}
