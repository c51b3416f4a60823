//! Joining and leaving, membership events, who is online, and concurrent membership changes.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn join_and_leave_are_idempotent_and_announced() {
    let h = Harness::start(1).await;
    let room_id = h.create("owner", "General").await.unwrap().room_id;
    let mut events = h
        .client
        .subscribe(subjects::membership(&room_id))
        .await
        .unwrap();
    h.client.flush().await.unwrap();

    let reply = h.join(&room_id, "u2").await.unwrap();
    assert_eq!(
        (reply.room_id.as_str(), reply.joined, reply.changed),
        (room_id.as_str(), true, true)
    );
    let reply = h.join(&room_id, "u2").await.unwrap();
    assert_eq!((reply.joined, reply.changed), (true, false));
    assert_eq!(h.get(&room_id).await.unwrap().member_count, 2);

    let reply = h.leave(&room_id, "u2").await.unwrap();
    assert_eq!((reply.joined, reply.changed), (false, true));
    let reply = h.leave(&room_id, "u2").await.unwrap();
    assert_eq!((reply.joined, reply.changed), (false, false));
    let reply = h.leave(&room_id, "never-joined").await.unwrap();
    assert_eq!((reply.joined, reply.changed), (false, false));
    assert_eq!(h.get(&room_id).await.unwrap().member_count, 1);

    // Exactly one event per actual change.
    let joined = next_event(&mut events).await;
    assert_eq!((joined.user_id.as_str(), joined.joined), ("u2", true));
    assert_eq!(joined.username, "name-u2");
    let left = next_event(&mut events).await;
    assert_eq!((left.user_id.as_str(), left.joined), ("u2", false));
    let extra = tokio::time::timeout(Duration::from_millis(300), events.next()).await;
    assert!(extra.is_err(), "unexpected event: {extra:?}");

    // The owner cannot leave (v2): ownership passes first, or the room is deleted.
    assert_eq!(code(h.leave(&room_id, "owner").await), ErrorCode::Conflict);
    assert_eq!(h.get(&room_id).await.unwrap().member_count, 1);
    assert_eq!(
        h.member_ids(&room_id).await,
        BTreeSet::from(["owner".to_string()])
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_show_who_is_online() {
    let h = Harness::start(1).await;
    let room_id = h.create("alice", "General").await.unwrap().room_id;
    h.join(&room_id, "bob").await.unwrap();
    h.join(&room_id, "carol").await.unwrap();

    // What a ws-agent does when a socket opens: one key per user and agent.
    let js = async_nats::jetstream::new(h.client.clone());
    let presence = topology::ensure_bucket(&js, topology::presence_bucket(&Default::default()))
        .await
        .unwrap();
    presence.put("alice.agent1", "".into()).await.unwrap();
    presence.put("carol.agent2", "".into()).await.unwrap();
    presence.put("carol.agent3", "".into()).await.unwrap();
    presence.put("dave.agent1", "".into()).await.unwrap();

    let list = h.members(&room_id).await.unwrap();
    let view: Vec<(&str, &str, bool)> = list
        .members
        .iter()
        .map(|m| (m.user_id.as_str(), m.username.as_str(), m.online))
        .collect();
    assert_eq!(
        view,
        [
            ("alice", "name-alice", true),
            ("bob", "name-bob", false),
            ("carol", "name-carol", true)
        ]
    );

    // The last socket of carol closes.
    presence.delete("carol.agent2").await.unwrap();
    presence.purge("carol.agent3").await.unwrap();
    let list = h.members(&room_id).await.unwrap();
    assert!(!list
        .members
        .iter()
        .any(|m| m.user_id == "carol" && m.online));
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thirty_concurrent_joins_all_count() {
    let h = Harness::start(1).await;
    let room_id = h.create("owner", "Busy").await.unwrap().room_id;
    let users: Vec<String> = (0..30).map(|i| format!("user{i}")).collect();
    let joins = users.iter().map(|user| h.join(&room_id, user));
    for reply in futures::future::join_all(joins).await {
        let reply = reply.unwrap();
        assert!(reply.joined && reply.changed);
    }
    assert_eq!(h.get(&room_id).await.unwrap().member_count, 31);
    assert_eq!(h.member_ids(&room_id).await.len(), 31);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_joins_and_leaves_across_instances_lose_nothing() {
    // Two service instances, so the races are between processes' worth of writers too.
    let h = Harness::start(2).await;
    let room_id = h.create("owner", "Churn").await.unwrap().room_id;
    for i in 0..20 {
        h.join(&room_id, &format!("old{i}")).await.unwrap();
    }

    // All at once: every old member leaves, 20 new ones join, and 10 more join, leave and
    // join again (each of their own steps in order).
    let mut ops = Vec::new();
    for i in 0..20 {
        let (room_id, old, new) = (room_id.clone(), format!("old{i}"), format!("new{i}"));
        let h = &h;
        ops.push(futures::future::Either::Left(async move {
            let (left, joined) = tokio::join!(h.leave(&room_id, &old), h.join(&room_id, &new));
            assert!(left.unwrap().changed);
            assert!(joined.unwrap().changed);
        }));
    }
    for i in 0..10 {
        let (room_id, user) = (room_id.clone(), format!("flip{i}"));
        let h = &h;
        ops.push(futures::future::Either::Right(async move {
            assert!(h.join(&room_id, &user).await.unwrap().changed);
            assert!(h.leave(&room_id, &user).await.unwrap().changed);
            assert!(h.join(&room_id, &user).await.unwrap().changed);
        }));
    }
    futures::future::join_all(ops).await;

    let expected: BTreeSet<String> = std::iter::once("owner".to_string())
        .chain((0..20).map(|i| format!("new{i}")))
        .chain((0..10).map(|i| format!("flip{i}")))
        .collect();
    assert_eq!(h.member_ids(&room_id).await, expected);
    assert_eq!(h.get(&room_id).await.unwrap().member_count, 31);
    h.stop().await;
}
