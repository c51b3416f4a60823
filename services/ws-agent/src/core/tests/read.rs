//! Read markers: forward only under races, refused above the room's newest message and to
//! non-members, announced to every socket of the user (and only theirs), and the source of
//! `last_read_seq` and `unread` in me/rooms.

use std::sync::atomic::Ordering;

use dyschat_protocol::wire::ReadMarkerEvent;
use dyschat_protocol::ApiError;

use crate::socket::SocketHandle;
use crate::testing::{fixture, json, next_frame, user, Fixture};

const ROOM: &str = "room1";

/// A room of alice's with five messages of another sender.
fn room() -> Fixture {
    let f = fixture();
    f.rooms.create(ROOM, &user("alice"));
    for n in 0..5 {
        f.stream.post(ROOM, &format!("m{n}"));
    }
    f
}

#[tokio::test]
async fn the_marker_only_moves_forward() {
    let f = room();
    let alice = user("alice");
    let last = f.stream.last_seq_now(ROOM);
    assert_eq!(
        f.core.read(&alice, ROOM, last - 2, None).await.unwrap(),
        last - 2
    );
    // Lower and equal: a no-op answered with the current marker, and nothing announced.
    assert_eq!(f.core.read(&alice, ROOM, 1, None).await.unwrap(), last - 2);
    assert_eq!(
        f.core.read(&alice, ROOM, last - 2, None).await.unwrap(),
        last - 2
    );
    assert_eq!(f.user_events.published.lock().unwrap().len(), 1);
    assert_eq!(f.core.read(&alice, ROOM, last, None).await.unwrap(), last);
    assert_eq!(f.read_markers.get(&alice.user_id, ROOM), Some(last));
}

#[tokio::test]
async fn a_lost_race_decides_again_and_a_storm_of_them_is_busy() {
    let f = room();
    let alice = user("alice");
    f.read_markers.lose_races.store(3, Ordering::SeqCst);
    assert_eq!(f.core.read(&alice, ROOM, 2, None).await.unwrap(), 2);
    f.read_markers.lose_races.store(100, Ordering::SeqCst);
    let e: ApiError = f.core.read(&alice, ROOM, 3, None).await.unwrap_err().into();
    assert_eq!(e.code.as_str(), "unavailable");
    assert_eq!(f.read_markers.get(&alice.user_id, ROOM), Some(2));
}

#[tokio::test]
async fn above_the_newest_message_and_outsiders_are_refused() {
    let f = room();
    let last = f.stream.last_seq_now(ROOM);
    let e: ApiError = f
        .core
        .read(&user("alice"), ROOM, last + 1, None)
        .await
        .unwrap_err()
        .into();
    assert_eq!(e.code.as_str(), "bad_request");
    let e: ApiError = f
        .core
        .read(&user("bob"), ROOM, 1, None)
        .await
        .unwrap_err()
        .into();
    assert_eq!(e.code.as_str(), "forbidden");
    let e: ApiError = f
        .core
        .read(&user("alice"), "nowhere", 1, None)
        .await
        .unwrap_err()
        .into();
    assert_eq!(e.code.as_str(), "not_found");
    assert!(f.read_markers.get("id-bob", ROOM).is_none());
}

#[tokio::test]
async fn every_socket_of_the_user_hears_a_moved_marker_and_no_one_else() {
    let f = room();
    let alice = user("alice");
    let (phone, mut phone_rx) = SocketHandle::new(alice.user_id.clone(), 8);
    let (laptop, mut laptop_rx) = SocketHandle::new(alice.user_id.clone(), 8);
    let (bob, mut bob_rx) = SocketHandle::new("id-bob".into(), 8);
    for socket in [&phone, &laptop, &bob] {
        f.core.user_sockets.attach(socket).await;
    }
    assert_eq!(f.user_events.subscribers(&alice.user_id), 1);
    f.core.read(&alice, ROOM, 3, None).await.unwrap();
    for rx in [&mut phone_rx, &mut laptop_rx] {
        let frame = json(&next_frame(rx).await);
        assert_eq!(frame["type"], "read_marker");
        assert_eq!(frame["room_id"], ROOM);
        assert_eq!(frame["seq"], 3);
    }
    // Another agent's announcement reaches this agent's sockets of the user.
    f.user_events.inject(&ReadMarkerEvent {
        user_id: alice.user_id.clone(),
        room_id: ROOM.into(),
        seq: 4,
        origin: None,
    });
    assert_eq!(json(&next_frame(&mut laptop_rx).await)["seq"], 4);
    assert!(bob_rx.try_recv().is_err());
}

#[tokio::test]
async fn the_last_socket_of_a_user_ends_the_subscription() {
    let f = room();
    let alice = user("alice");
    let (one, _one_rx) = SocketHandle::new(alice.user_id.clone(), 8);
    let (two, _two_rx) = SocketHandle::new(alice.user_id.clone(), 8);
    f.core.user_sockets.attach(&one).await;
    f.core.user_sockets.attach(&two).await;
    f.core.user_sockets.detach(&one);
    assert_eq!(f.core.user_sockets.users_listened(), 1);
    assert_eq!(f.user_events.subscribers(&alice.user_id), 1);
    f.core.user_sockets.detach(&two);
    assert_eq!(f.core.user_sockets.users_listened(), 0);
    // The forwarding task drops its subscription once it sees the stop.
    tokio::time::timeout(std::time::Duration::from_secs(5), async {
        while f.user_events.subscribers(&alice.user_id) > 0 {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("unsubscribed");
}

#[tokio::test]
async fn my_rooms_counts_unread_above_the_marker() {
    let f = room();
    let alice = user("alice");
    let last = f.stream.last_seq_now(ROOM);
    let before = f.core.my_rooms(&alice).await.unwrap();
    assert_eq!(before.rooms[0].last_read_seq, 0);
    assert_eq!(before.rooms[0].unread, 5);
    f.core.read(&alice, ROOM, last - 2, None).await.unwrap();
    let after = f.core.my_rooms(&alice).await.unwrap();
    assert_eq!(after.rooms[0].last_read_seq, last - 2);
    assert_eq!(after.rooms[0].unread, 2);
    f.core.read(&alice, ROOM, last, None).await.unwrap();
    let read = f.core.my_rooms(&alice).await.unwrap();
    assert_eq!(
        (read.rooms[0].last_read_seq, read.rooms[0].unread),
        (last, 0)
    );
    // One batched read of the markers per answer.
    assert_eq!(f.read_markers.batches.load(Ordering::SeqCst), 3);
}
