//! The membership check (`access`), the revisions that order what is known about (room, user),
//! the member count and membership index under racing rooms services.

use super::*;

use dyschat_protocol::layout::{membership_key, MEMBERSHIPS_BUCKET};
use dyschat_protocol::wire::Role;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_follows_joins_and_leaves_with_growing_revisions() {
    let h = Harness::start(1).await;
    let room_id = h.create("owner", "General").await.unwrap().room_id;

    let owner = h.access(&room_id, "owner").await.unwrap();
    assert_eq!(owner.role, Some(Role::Owner));
    assert!(owner.revision > 0);

    let before = h.access(&room_id, "u1").await.unwrap();
    assert_eq!((before.role, before.revision), (None, 0));
    assert_eq!(
        (before.room_id.as_str(), before.user_id.as_str()),
        (room_id.as_str(), "u1")
    );

    let joined = h.join(&room_id, "u1").await.unwrap();
    let member = h.access(&room_id, "u1").await.unwrap();
    assert_eq!(member.role, Some(Role::Member));
    assert_eq!(member.revision, joined.revision);
    assert!(joined.revision > owner.revision);
    // An idempotent join reports the record it found.
    let again = h.join(&room_id, "u1").await.unwrap();
    assert_eq!((again.changed, again.revision), (false, joined.revision));

    let left = h.leave(&room_id, "u1").await.unwrap();
    assert!(left.revision > joined.revision);
    let gone = h.access(&room_id, "u1").await.unwrap();
    assert_eq!((gone.role, gone.revision), (None, left.revision));
    let left_again = h.leave(&room_id, "u1").await.unwrap();
    assert_eq!(
        (left_again.changed, left_again.revision),
        (false, left.revision)
    );

    let rejoined = h.join(&room_id, "u1").await.unwrap();
    assert!(rejoined.changed && rejoined.revision > left.revision);
    assert_eq!(
        h.access(&room_id, "u1").await.unwrap().revision,
        rejoined.revision
    );

    // The owner stays: leaving is refused (v2), joining again changes nothing.
    assert_eq!(code(h.leave(&room_id, "owner").await), ErrorCode::Conflict);
    assert!(!h.join(&room_id, "owner").await.unwrap().changed);
    assert_eq!(
        h.access(&room_id, "owner").await.unwrap().role,
        Some(Role::Owner)
    );

    let missing = dyschat_protocol::ids::new_id();
    assert_eq!(code(h.access(&missing, "u1").await), ErrorCode::NotFound);
    assert_eq!(code(h.access("a.b", "u1").await), ErrorCode::BadRequest);
    assert_eq!(code(h.access(&room_id, "u*").await), ErrorCode::BadRequest);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_carry_the_revision_of_their_change() {
    let h = Harness::start(1).await;
    let mut events = h.membership_events().await;
    let room_id = h.create("owner", "General").await.unwrap().room_id;
    let created = next_event(&mut events).await;
    assert_eq!(
        created.revision,
        h.access(&room_id, "owner").await.unwrap().revision
    );

    let joined = h.join(&room_id, "u1").await.unwrap();
    let left = h.leave(&room_id, "u1").await.unwrap();
    let rejoined = h.join(&room_id, "u1").await.unwrap();
    let mut last = created.revision;
    for (reply, joined_flag) in [(joined, true), (left, false), (rejoined, true)] {
        let event = next_event(&mut events).await;
        assert_eq!((event.user_id.as_str(), event.joined), ("u1", joined_flag));
        assert_eq!(event.revision, reply.revision);
        assert!(event.revision > last, "revisions grow");
        last = event.revision;
    }
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_services_joining_the_same_users_count_each_once() {
    let h = Harness::start(2).await;
    let room_id = h.create("owner", "Race").await.unwrap().room_id;
    let users: Vec<String> = (0..150).map(|i| format!("user{i}")).collect();

    // Every user joins twice at once (the requests spread over both services), then half of
    // them leave twice at once.
    let joins = futures::stream::iter(users.iter())
        .map(|user| async { tokio::join!(h.join(&room_id, user), h.join(&room_id, user)) })
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await;
    for (a, b) in joins {
        let (a, b) = (a.unwrap(), b.unwrap());
        assert!(a.changed ^ b.changed, "exactly one of two joins changes");
        assert_eq!(a.revision, b.revision, "both report the one record");
    }
    assert_eq!(h.get(&room_id).await.unwrap().member_count, 151);

    let leaving = &users[..75];
    let leaves = futures::stream::iter(leaving.iter())
        .map(|user| async { tokio::join!(h.leave(&room_id, user), h.leave(&room_id, user)) })
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await;
    for (a, b) in leaves {
        let (a, b) = (a.unwrap(), b.unwrap());
        assert!(a.changed ^ b.changed, "exactly one of two leaves changes");
    }
    assert_eq!(h.get(&room_id).await.unwrap().member_count, 76);
    assert_eq!(h.member_ids(&room_id).await.len(), 76);

    // The user's index holds exactly the rooms they are in.
    let js = async_nats::jetstream::new(h.client.clone());
    let index = js.get_key_value(MEMBERSHIPS_BUCKET).await.unwrap();
    for (i, user) in users.iter().enumerate() {
        let entry = index.get(membership_key(user, &room_id)).await.unwrap();
        assert_eq!(entry.is_some(), i >= 75, "{user}");
    }
    assert!(index
        .get(membership_key("owner", &room_id))
        .await
        .unwrap()
        .is_some());
    h.stop().await;
}
