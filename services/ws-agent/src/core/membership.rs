//! Who is a member of which room, as this agent knows it.
//!
//! Every send, history read and member page needs a membership check; asking the rooms service
//! each time would put a request on every message. So the agent keeps one entry per
//! (room, user): filled by the rooms service's `access` answers (and the replies to this agent's
//! own joins and leaves), kept fresh by the membership events rooms publishes, and trusted for
//! [`MEMBERSHIP_TTL`] only, so a missed event (core NATS is at-most-once) cannot keep it wrong for
//! long. A check costs one map lookup or one `access` request, whatever the size of the room: no
//! member set is ever fetched.
//!
//! Every change carries the revision of the member record it produced. An event or answer is
//! applied only if it is newer than what is cached (while the rooms service still answers
//! revision 0 for everything, one that is not older), so a late event never undoes a later
//! change.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use dyschat_protocol::wire::{
    AccessRequest, MemberList, MembersRequest, MembershipEvent, MembershipReply, MembershipRequest,
    Role,
};
use tokio::time::Instant;

use super::{CoreError, User};
use crate::ports::RoomsService;

/// How long an entry is trusted without a fresh answer.
pub(crate) const MEMBERSHIP_TTL: Duration = Duration::from_secs(30);
/// The most (room, user) entries kept; past it, expired entries go first, then whole rooms.
pub(crate) const MAX_ENTRIES: usize = 100_000;

#[derive(Debug, Clone, Copy)]
struct Entry {
    /// `None`: not a member.
    role: Option<Role>,
    revision: u64,
    /// The newest revision whose event was turned into frames here: this agent's own join
    /// reply records the state at revision R before the event at R arrives, and that event must
    /// still be announced (`member_joined`, sockets detached), once.
    announced: u64,
    checked: Instant,
}

/// Whether a change at `incoming` may replace what is known at `cached`.
fn newer(incoming: u64, cached: u64) -> bool {
    incoming > cached || (incoming == 0 && cached == 0)
}

#[derive(Default)]
struct Entries {
    rooms: HashMap<String, HashMap<String, Entry>>,
    len: usize,
}

impl Entries {
    fn get(&self, room_id: &str, user_id: &str) -> Option<&Entry> {
        self.rooms.get(room_id)?.get(user_id)
    }

    fn get_mut(&mut self, room_id: &str, user_id: &str) -> Option<&mut Entry> {
        self.rooms.get_mut(room_id)?.get_mut(user_id)
    }

    fn insert(&mut self, room_id: &str, user_id: &str, entry: Entry, max: usize) {
        if self.len >= max {
            self.make_room(entry.checked, max);
        }
        let users = self.rooms.entry(room_id.to_string()).or_default();
        if users.insert(user_id.to_string(), entry).is_none() {
            self.len += 1;
        }
    }

    /// Drops expired entries, then whole rooms, until the cache is at most 7/8 full: the sweep
    /// is O(n) but runs once per n/8 insertions.
    fn make_room(&mut self, now: Instant, max: usize) {
        for users in self.rooms.values_mut() {
            users.retain(|_, e| now.saturating_duration_since(e.checked) < MEMBERSHIP_TTL);
        }
        self.rooms.retain(|_, users| !users.is_empty());
        self.len = self.rooms.values().map(HashMap::len).sum();
        let target = max - max / 8;
        while self.len > target {
            let Some(room) = self.rooms.keys().next().cloned() else {
                break;
            };
            if let Some(users) = self.rooms.remove(&room) {
                self.len -= users.len();
            }
        }
    }
}

/// The bounded per-(room, user) cache.
pub(crate) struct AccessCache {
    entries: Mutex<Entries>,
    max: usize,
}

impl AccessCache {
    pub(crate) fn new(max: usize) -> Self {
        AccessCache {
            entries: Mutex::new(Entries::default()),
            max: max.max(8),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Entries> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `Some(role)` (`role` is `None` for a non-member) if the pair is cached and fresh, `None`
    /// if it must be asked.
    pub(crate) fn fresh(&self, room_id: &str, user_id: &str) -> Option<Option<Role>> {
        let entries = self.lock();
        let entry = entries.get(room_id, user_id)?;
        (entry.checked.elapsed() < MEMBERSHIP_TTL).then_some(entry.role)
    }

    /// Whether `user_id` is a member of `room_id` as far as the cache knows, fresh or not (for
    /// routing presence, which must not cost a request per room).
    pub(crate) fn knows_member(&self, room_id: &str, user_id: &str) -> bool {
        self.lock()
            .get(room_id, user_id)
            .is_some_and(|e| e.role.is_some())
    }

    /// Records an answer of the rooms service about the pair and returns what is known after:
    /// the answer, unless a newer change is already cached (then only that).
    pub(crate) fn answer(
        &self,
        room_id: &str,
        user_id: &str,
        role: Option<Role>,
        revision: u64,
    ) -> Option<Role> {
        let now = Instant::now();
        let mut entries = self.lock();
        if let Some(entry) = entries.get_mut(room_id, user_id) {
            if newer(revision, entry.revision) {
                *entry = Entry {
                    role,
                    revision,
                    announced: entry.announced,
                    checked: now,
                };
            } else if revision == entry.revision {
                entry.checked = now;
            }
            return entry.role;
        }
        let entry = Entry {
            role,
            revision,
            announced: 0,
            checked: now,
        };
        entries.insert(room_id, user_id, entry, self.max);
        role
    }

    /// Applies a join (`joined`) or leave at `revision` answered to this agent's own request;
    /// returns whether it was newer than what is cached.
    pub(crate) fn change(&self, room_id: &str, user_id: &str, joined: bool, revision: u64) -> bool {
        self.record(room_id, user_id, joined, revision, false)
    }

    /// Applies a membership event at `revision`; returns whether it is to be announced: it is not
    /// older than what is cached and no event at its revision was announced before (a duplicate
    /// or late event changes nothing, frames included).
    pub(crate) fn event(&self, room_id: &str, user_id: &str, joined: bool, revision: u64) -> bool {
        self.record(room_id, user_id, joined, revision, true)
    }

    fn record(
        &self,
        room_id: &str,
        user_id: &str,
        joined: bool,
        revision: u64,
        announce: bool,
    ) -> bool {
        let now = Instant::now();
        let mut entries = self.lock();
        let role_after = |before: Option<Role>| match (joined, before) {
            (false, _) => None,
            (true, Some(role)) => Some(role),
            (true, None) => Some(Role::Member),
        };
        let announced = |before: u64| {
            if announce {
                before.max(revision)
            } else {
                before
            }
        };
        if let Some(entry) = entries.get_mut(room_id, user_id) {
            if newer(revision, entry.revision) {
                *entry = Entry {
                    role: role_after(entry.role),
                    revision,
                    announced: announced(entry.announced),
                    checked: now,
                };
                return true;
            }
            // The state at this revision is known already (e.g. from this agent's own join
            // reply); its event is announced unless it was before.
            let due = announce && revision == entry.revision && revision > entry.announced;
            if due {
                entry.announced = revision;
            }
            return due;
        }
        let entry = Entry {
            role: role_after(None),
            revision,
            announced: announced(0),
            checked: now,
        };
        entries.insert(room_id, user_id, entry, self.max);
        true
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.lock().len
    }
}

/// Membership checks and changes, over the cache and the rooms service.
pub(crate) struct Membership {
    cache: AccessCache,
    rooms: Arc<dyn RoomsService>,
}

impl Membership {
    pub(crate) fn new(rooms: Arc<dyn RoomsService>, max_entries: usize) -> Self {
        Membership {
            cache: AccessCache::new(max_entries),
            rooms,
        }
    }

    /// The user's role in the room (`None`: not a member); `not_found` for an unknown room.
    pub(crate) async fn role(
        &self,
        room_id: &str,
        user_id: &str,
    ) -> Result<Option<Role>, CoreError> {
        if let Some(known) = self.cache.fresh(room_id, user_id) {
            return Ok(known);
        }
        let access = self
            .rooms
            .access(AccessRequest {
                room_id: room_id.to_string(),
                user_id: user_id.to_string(),
            })
            .await?;
        Ok(self
            .cache
            .answer(room_id, user_id, access.role, access.revision))
    }

    /// `forbidden` for a non-member, `not_found` for an unknown room.
    pub(crate) async fn authorize(&self, room_id: &str, user_id: &str) -> Result<Role, CoreError> {
        self.role(room_id, user_id)
            .await?
            .ok_or(CoreError::NotMember)
    }

    /// Joins (`joined`) or leaves the room through the rooms service and records the reply at
    /// once, so the caller's next send is not refused by a cache the event has not reached yet.
    pub(crate) async fn set(
        &self,
        room_id: &str,
        user: &User,
        joined: bool,
    ) -> Result<MembershipReply, CoreError> {
        let request = MembershipRequest {
            room_id: room_id.to_string(),
            user_id: user.user_id.clone(),
            username: user.username.clone(),
        };
        let reply = if joined {
            self.rooms.join(request).await?
        } else {
            self.rooms.leave(request).await?
        };
        self.cache
            .change(room_id, &user.user_id, joined, reply.revision);
        Ok(reply)
    }

    /// Applies a membership event; `false` if it is older than what is known (ignore it).
    pub(crate) fn apply(&self, event: &MembershipEvent) -> bool {
        self.cache
            .event(&event.room_id, &event.user_id, event.joined, event.revision)
    }

    pub(crate) fn knows_member(&self, room_id: &str, user_id: &str) -> bool {
        self.cache.knows_member(room_id, user_id)
    }

    /// One page of the room's members, for a member.
    pub(crate) async fn members(
        &self,
        user_id: &str,
        request: MembersRequest,
    ) -> Result<MemberList, CoreError> {
        self.authorize(&request.room_id, user_id).await?;
        Ok(self.rooms.members(request).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn answers_are_trusted_for_the_ttl_then_asked_again() {
        let cache = AccessCache::new(100);
        assert_eq!(cache.fresh("r", "a"), None);
        assert_eq!(
            cache.answer("r", "a", Some(Role::Owner), 0),
            Some(Role::Owner)
        );
        assert_eq!(cache.answer("r", "b", None, 0), None);
        assert_eq!(cache.fresh("r", "a"), Some(Some(Role::Owner)));
        assert_eq!(cache.fresh("r", "b"), Some(None));
        assert_eq!(cache.fresh("other", "a"), None);
        tokio::time::advance(MEMBERSHIP_TTL).await;
        assert_eq!(cache.fresh("r", "a"), None, "expired");
        assert!(cache.knows_member("r", "a"), "still known for routing");
    }

    #[tokio::test(start_paused = true)]
    async fn a_late_event_never_undoes_a_later_change() {
        let cache = AccessCache::new(100);
        assert!(cache.change("r", "a", true, 5));
        // The leave at 7 arrives before the late join event at 6.
        assert!(cache.change("r", "a", false, 7));
        assert!(!cache.change("r", "a", true, 6));
        assert_eq!(cache.fresh("r", "a"), Some(None));
        // An answer read before the leave (revision 5) does not bring the member back, but one
        // at the same revision confirms what is known and renews it.
        assert_eq!(cache.answer("r", "a", Some(Role::Member), 5), None);
        tokio::time::advance(MEMBERSHIP_TTL - Duration::from_secs(1)).await;
        assert_eq!(cache.answer("r", "a", None, 7), None);
        tokio::time::advance(Duration::from_secs(2)).await;
        assert_eq!(cache.fresh("r", "a"), Some(None), "renewed by the answer");
        // A newer answer wins.
        assert_eq!(
            cache.answer("r", "a", Some(Role::Member), 8),
            Some(Role::Member)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn the_event_of_an_own_change_is_announced_once() {
        let cache = AccessCache::new(100);
        // This agent's join reply arrives before the event of the same revision.
        assert!(cache.change("r", "a", true, 3));
        assert!(
            cache.event("r", "a", true, 3),
            "announced although already applied"
        );
        assert!(
            !cache.event("r", "a", true, 3),
            "a duplicate is not announced again"
        );
        // The same for a leave, and an older event is never announced.
        assert!(cache.change("r", "a", false, 4));
        assert!(!cache.event("r", "a", true, 3));
        assert!(cache.event("r", "a", false, 4));
        assert_eq!(cache.fresh("r", "a"), Some(None));
        // An event ahead of the reply is announced once, and the reply does not undo it.
        assert!(cache.event("r", "a", true, 6));
        assert!(!cache.change("r", "a", true, 6));
        assert!(!cache.event("r", "a", true, 6));
    }

    #[tokio::test(start_paused = true)]
    async fn while_revisions_are_zero_the_latest_change_applies() {
        let cache = AccessCache::new(100);
        assert!(cache.change("r", "a", true, 0));
        assert!(cache.change("r", "a", false, 0));
        assert_eq!(cache.fresh("r", "a"), Some(None));
        assert!(cache.change("r", "a", true, 0));
        assert_eq!(cache.fresh("r", "a"), Some(Some(Role::Member)));
        // A join keeps a known role.
        cache.answer("r", "o", Some(Role::Owner), 0);
        assert!(cache.change("r", "o", true, 0));
        assert_eq!(cache.fresh("r", "o"), Some(Some(Role::Owner)));
    }

    #[tokio::test(start_paused = true)]
    async fn the_cache_is_bounded_and_drops_expired_entries_first() {
        let cache = AccessCache::new(64);
        for i in 0..40 {
            cache.answer("old", &format!("u{i}"), Some(Role::Member), 0);
        }
        tokio::time::advance(MEMBERSHIP_TTL).await;
        for i in 0..24 {
            cache.answer("new", &format!("u{i}"), Some(Role::Member), 0);
        }
        assert_eq!(cache.len(), 64);
        cache.answer("new", "one-more", Some(Role::Member), 0);
        assert_eq!(cache.len(), 25, "the 40 expired entries went");
        assert_eq!(cache.fresh("new", "u0"), Some(Some(Role::Member)));
        for i in 0..1000 {
            cache.answer("flood", &format!("u{i}"), None, 0);
            assert!(cache.len() <= 64);
        }
    }
}
