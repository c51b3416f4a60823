//! Quotas of contract section 10: rooms a user owns at once (`DYSCHAT_MAX_ROOMS_PER_USER`) and
//! rooms a user is in (`DYSCHAT_MAX_ROOMS_JOINED`); past one, 429 for that user only.

use super::*;

use dyschat_protocol::wire::Role;

fn assert_quota<T: std::fmt::Debug>(r: Result<T, ApiError>) {
    let e = r.expect_err("past the quota");
    assert_eq!(e.code, ErrorCode::RateLimited, "{e:?}");
    assert!(e.retry_after_ms.is_some_and(|ms| ms > 0), "{e:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_owns_at_most_the_quota_of_rooms_at_once() {
    let h = Harness::start_with(1, &[("DYSCHAT_MAX_ROOMS_PER_USER", "2")]).await;
    let first = h.create("alice", "one").await.unwrap().room_id;
    h.create("alice", "two").await.unwrap();
    assert_quota(h.create("alice", "three").await);
    // Everyone else goes on.
    h.create("bob", "one").await.unwrap();
    // Refusals are not counted: still exactly at the quota.
    assert_quota(h.create("alice", "three").await);
    // Deleting one frees a place.
    h.delete(&first, "alice").await.unwrap();
    h.create("alice", "three").await.unwrap();
    assert_quota(h.create("alice", "four").await);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_creations_never_pass_the_quota() {
    let h = Harness::start_with(2, &[("DYSCHAT_MAX_ROOMS_PER_USER", "3")]).await;
    let names: Vec<String> = (0..10).map(|i| format!("r{i}")).collect();
    let results = futures::future::join_all(names.iter().map(|n| h.create("alice", n))).await;
    let created = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(created, 3, "{results:?}");
    for r in results.into_iter().filter(Result::is_err) {
        assert_quota(r);
    }
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ownership_handed_on_counts_for_the_new_owner() {
    let h = Harness::start_with(1, &[("DYSCHAT_MAX_ROOMS_PER_USER", "1")]).await;
    let alices = h.create("alice", "a").await.unwrap().room_id;
    h.create("bob", "b").await.unwrap();
    h.join(&alices, "bob").await.unwrap();
    // Bob owns one already.
    assert_quota(h.transfer(&alices, "alice", "bob").await);
    assert_eq!(
        h.access(&alices, "bob").await.unwrap().role,
        Some(Role::Member)
    );
    h.join(&alices, "carol").await.unwrap();
    h.transfer(&alices, "alice", "carol").await.unwrap();
    // Alice owns none now, so she may create again.
    h.create("alice", "again").await.unwrap();
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_is_in_at_most_the_quota_of_rooms() {
    let h = Harness::start_with(1, &[("DYSCHAT_MAX_ROOMS_JOINED", "3")]).await;
    let mut rooms = Vec::new();
    for i in 0..6 {
        rooms.push(
            h.create(&format!("owner{i}"), "room")
                .await
                .unwrap()
                .room_id,
        );
    }
    // A created room counts: alice owns one and joins two more.
    let own = h.create("alice", "mine").await.unwrap().room_id;
    h.join(&rooms[0], "alice").await.unwrap();
    h.join(&rooms[1], "alice").await.unwrap();
    assert_quota(h.join(&rooms[2], "alice").await);
    assert_quota(h.create("alice", "another").await);
    // Joining a room one is in is no new room.
    assert!(!h.join(&rooms[0], "alice").await.unwrap().changed);
    assert!(!h.join(&own, "alice").await.unwrap().changed);
    // Others are not held back.
    h.join(&rooms[2], "bob").await.unwrap();
    // Leaving frees a place.
    h.leave(&rooms[0], "alice").await.unwrap();
    h.join(&rooms[2], "alice").await.unwrap();
    // Being kicked frees one too.
    h.kick(&rooms[2], "owner2", "alice", "").await.unwrap();
    h.join(&rooms[3], "alice").await.unwrap();

    // Many joins at once never pass the quota.
    let results = futures::future::join_all(rooms.iter().map(|r| h.join(r, "dave"))).await;
    assert_eq!(
        results.iter().filter(|r| r.is_ok()).count(),
        3,
        "{results:?}"
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opening_a_direct_room_counts_for_who_opens_it() {
    let h = Harness::start_with(1, &[("DYSCHAT_MAX_ROOMS_JOINED", "1")]).await;
    let alice = h.register("alice").await;
    let bob = h.register("bob").await;
    let carol = h.register("carol").await;
    h.open_dm(&alice, &bob.user_id).await.unwrap();
    assert_quota(h.open_dm(&alice, &carol.user_id).await);
    // Opening it again is no new room.
    h.open_dm(&alice, &bob.user_id).await.unwrap();
    // Carol asks: hers is the quota that counts, not Alice's (who is past hers now).
    h.open_dm(&carol, &alice.user_id).await.unwrap();
    h.stop().await;
}
