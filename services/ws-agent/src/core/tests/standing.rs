//! The standing cache: revisions order every change, a room's visibility is the room's, a
//! deleted room stays gone, and the cache is bounded.

use std::time::Duration;

use dyschat_protocol::policy::{Standing, Visibility};
use dyschat_protocol::wire::Role;

use crate::core::standing::{Change, Lookup, StandingCache, MEMBERSHIP_TTL};

fn as_role(role: Option<Role>) -> Standing {
    Standing {
        role,
        ..Default::default()
    }
}

fn role_of(cache: &StandingCache, room: &str, user: &str) -> Option<Option<Role>> {
    match cache.fresh(room, user)? {
        Lookup::Standing(s) => Some(s.role),
        Lookup::Gone => None,
    }
}

#[tokio::test(start_paused = true)]
async fn answers_are_trusted_for_the_ttl_then_asked_again() {
    let cache = StandingCache::new(100);
    assert_eq!(cache.fresh("r", "a"), None);
    let owner = as_role(Some(Role::Owner));
    assert_eq!(cache.answer("r", "a", owner, 0, 0), Some(owner));
    cache.answer("r", "b", as_role(None), 0, 0);
    assert_eq!(role_of(&cache, "r", "a"), Some(Some(Role::Owner)));
    assert_eq!(role_of(&cache, "r", "b"), Some(None));
    assert_eq!(cache.fresh("other", "a"), None);
    tokio::time::advance(MEMBERSHIP_TTL).await;
    assert_eq!(cache.fresh("r", "a"), None, "expired");
    assert!(cache.known("r", "a").is_some(), "still known for routing");
}

#[tokio::test(start_paused = true)]
async fn a_late_event_never_undoes_a_later_change() {
    let cache = StandingCache::new(100);
    cache.answer("r", "a", as_role(None), 4, 0);
    assert!(cache.change("r", "a", Change::Joined(true), 5));
    // The leave at 7 arrives before the late join event at 6.
    assert!(cache.change("r", "a", Change::Joined(false), 7));
    assert!(!cache.change("r", "a", Change::Joined(true), 6));
    assert_eq!(role_of(&cache, "r", "a"), Some(None));
    // An answer read before the leave (revision 5) does not bring the member back, but one at
    // the same revision confirms what is known and renews it.
    assert_eq!(
        cache.answer("r", "a", as_role(Some(Role::Member)), 5, 0),
        Some(as_role(None))
    );
    tokio::time::advance(MEMBERSHIP_TTL - Duration::from_secs(1)).await;
    cache.answer("r", "a", as_role(None), 7, 0);
    tokio::time::advance(Duration::from_secs(2)).await;
    assert_eq!(
        role_of(&cache, "r", "a"),
        Some(None),
        "renewed by the answer"
    );
    let member = as_role(Some(Role::Member));
    assert_eq!(cache.answer("r", "a", member, 8, 0), Some(member));
}

#[tokio::test(start_paused = true)]
async fn the_event_of_an_own_change_is_announced_once() {
    let cache = StandingCache::new(100);
    cache.answer("r", "a", as_role(None), 2, 0);
    // This agent's join reply arrives before the event of the same revision.
    assert!(cache.change("r", "a", Change::Joined(true), 3));
    let member = Change::To(as_role(Some(Role::Member)));
    assert!(
        cache.event("r", "a", member, 3),
        "announced although applied"
    );
    assert!(!cache.event("r", "a", member, 3), "a duplicate is not");
    // The same for a leave (or an eviction), and an older event is never announced.
    assert!(cache.change("r", "a", Change::To(as_role(None)), 4));
    assert!(!cache.event("r", "a", member, 3));
    assert!(cache.event("r", "a", Change::Joined(false), 4));
    assert_eq!(role_of(&cache, "r", "a"), Some(None));
    // An event ahead of the reply is announced once, and the reply does not undo it.
    assert!(cache.event("r", "a", member, 6));
    assert!(!cache.change("r", "a", Change::Joined(true), 6));
    assert!(!cache.event("r", "a", member, 6));
}

#[tokio::test(start_paused = true)]
async fn a_bare_join_or_leave_is_recorded_only_over_a_known_standing() {
    let cache = StandingCache::new(100);
    // Nothing known: the private room's visibility is not guessed.
    assert!(cache.change("r", "a", Change::Joined(false), 3));
    assert_eq!(cache.fresh("r", "a"), None);
    // Known: a join keeps the role and uses the invitation up.
    let invited = Standing {
        visibility: Visibility::Private,
        invited: true,
        ..Default::default()
    };
    cache.answer("r", "b", invited, 1, 1);
    assert!(cache.change("r", "b", Change::Joined(true), 2));
    let Some(Lookup::Standing(after)) = cache.fresh("r", "b") else {
        panic!("cached");
    };
    assert_eq!(after.role, Some(Role::Member));
    assert!(!after.invited);
    assert_eq!(after.visibility, Visibility::Private);
}

#[tokio::test(start_paused = true)]
async fn visibility_is_the_rooms_and_follows_newer_room_updates() {
    let cache = StandingCache::new(100);
    cache.answer("r", "a", as_role(Some(Role::Member)), 1, 5);
    cache.answer("r", "b", as_role(None), 1, 5);
    assert!(cache.room_updated("r", Visibility::Private, 6));
    assert!(!cache.room_updated("r", Visibility::Private, 6), "once");
    assert!(!cache.room_updated("r", Visibility::Public, 4), "older");
    for user in ["a", "b"] {
        let Some(Lookup::Standing(s)) = cache.fresh("r", user) else {
            panic!("cached");
        };
        assert_eq!(s.visibility, Visibility::Private);
    }
    // An answer read before the update does not make the room public again.
    let stale = Standing {
        visibility: Visibility::Public,
        ..as_role(None)
    };
    let seen = cache.answer("r", "c", stale, 1, 5).unwrap();
    assert_eq!(seen.visibility, Visibility::Private);
}

#[tokio::test(start_paused = true)]
async fn a_deleted_room_stays_gone() {
    let cache = StandingCache::new(100);
    cache.answer("r", "a", as_role(Some(Role::Owner)), 1, 1);
    cache.deleted("r");
    assert_eq!(cache.fresh("r", "a"), Some(Lookup::Gone));
    assert_eq!(cache.fresh("r", "x"), Some(Lookup::Gone));
    assert_eq!(cache.answer("r", "a", as_role(None), 9, 9), None);
    assert!(!cache.event("r", "a", Change::Joined(true), 10));
    assert_eq!(cache.len(), 0);
}

#[tokio::test(start_paused = true)]
async fn the_cache_is_bounded_and_drops_expired_entries_first() {
    let cache = StandingCache::new(64);
    let member = as_role(Some(Role::Member));
    for i in 0..40 {
        cache.answer("old", &format!("u{i}"), member, 0, 0);
    }
    tokio::time::advance(MEMBERSHIP_TTL).await;
    for i in 0..24 {
        cache.answer("new", &format!("u{i}"), member, 0, 0);
    }
    assert_eq!(cache.len(), 64);
    cache.answer("new", "one-more", member, 0, 0);
    assert_eq!(cache.len(), 25, "the 40 expired entries went");
    assert_eq!(role_of(&cache, "new", "u0"), Some(Some(Role::Member)));
    for i in 0..1000 {
        cache.answer("flood", &format!("u{i}"), as_role(None), 0, 0);
        assert!(cache.len() <= 64);
    }
}

#[tokio::test(start_paused = true)]
async fn a_missing_room_is_remembered_until_something_says_otherwise() {
    let cache = StandingCache::new(100);
    cache.missing("r", "a");
    assert_eq!(cache.fresh("r", "a"), Some(Lookup::Gone));
    assert_eq!(cache.known("r", "a"), None, "not a member for presence");
    tokio::time::advance(MEMBERSHIP_TTL).await;
    assert_eq!(cache.fresh("r", "a"), None, "asked again after the TTL");
    cache.missing("r", "a");
    // An answer or an event with a standing replaces it; a bare join makes it asked again.
    let member = as_role(Some(Role::Member));
    assert_eq!(cache.answer("r", "a", member, 0, 0), Some(member));
    cache.missing("r", "b");
    assert!(cache.event("r", "b", Change::To(member), 3));
    assert_eq!(role_of(&cache, "r", "b"), Some(Some(Role::Member)));
    cache.missing("r", "c");
    assert!(cache.change("r", "c", Change::Joined(true), 4));
    assert_eq!(cache.fresh("r", "c"), None);
    assert_eq!(cache.len(), 2);
}
