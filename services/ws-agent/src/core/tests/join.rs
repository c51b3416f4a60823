//! Joining over fakes: buffering during the replay, the junction, the recovery limit, undo.

use std::sync::atomic::Ordering;

use crate::core::{CoreError, SocketRooms};
use crate::socket::{OutFrame, SocketHandle};
use crate::testing::{assert_chain, fixture, fixture_with, json, next_frame, settings, user};
use crate::testing::{next_messages, Fixture};

const ROOM: &str = "room1";

fn joiner(
    f: &Fixture,
) -> (
    SocketRooms,
    SocketHandle,
    tokio::sync::mpsc::Receiver<OutFrame>,
) {
    let owner = user("owner");
    f.rooms.create(ROOM, &owner);
    let (socket, rx) = SocketHandle::new(user("joiner").user_id, 256);
    (SocketRooms::new(socket.clone()), socket, rx)
}

#[tokio::test]
async fn a_join_without_since_answers_the_position_then_goes_live() {
    let f = fixture();
    let (mut rooms, _socket, mut rx) = joiner(&f);
    let last = f.stream.post(ROOM, "old");
    rooms
        .join(&f.core, &user("joiner"), ROOM, None, Some("j1".into()))
        .await
        .unwrap();
    let joined = json(&next_frame(&mut rx).await);
    assert_eq!(joined["type"], "joined");
    assert_eq!(joined["last_seq"].as_u64(), Some(last));
    assert_eq!(joined["recovered"], true);
    assert_eq!(joined["ref"], "j1");
    let live = f.stream.post(ROOM, "new");
    let got = next_messages(&mut rx, 1).await;
    assert_eq!(assert_chain(&got, last), vec![live]);
    // The joiner is a member now.
    assert!(f.core.membership.allows_cached(
        ROOM,
        &user("joiner").user_id,
        dyschat_protocol::policy::Action::Read
    ));
}

#[tokio::test]
async fn since_replays_then_live_with_no_gap_and_no_duplicate_at_the_junction() {
    let f = fixture();
    let (mut rooms, _socket, mut rx) = joiner(&f);
    // Someone else keeps the room subscribed here already.
    let (other, mut other_rx) = SocketHandle::new("other".into(), 256);
    f.core.hub.attach(ROOM, &other).await.unwrap();
    f.core.hub.note_position(ROOM, 0);
    f.core.hub.activate(ROOM, other.id(), 0);
    let mut seqs = Vec::new();
    for n in 0..5 {
        seqs.push(f.stream.post(ROOM, &format!("m{n}")));
        // Another room's messages in between: a room's seqs are not contiguous.
        f.stream.post("elsewhere", "noise");
    }
    next_messages(&mut other_rx, 5).await;
    // The newest message is stored but its live copy is late: it comes while the joiner
    // replays, so the joiner gets it both from the replay and in its buffer.
    f.stream.deaf.store(true, Ordering::SeqCst);
    let last = f.stream.post(ROOM, "m5");
    f.stream.deaf.store(false, Ordering::SeqCst);
    seqs.push(last);
    f.stream.live_copy_during_next_replay(last);
    f.stream.publish_during_next_replay(ROOM, "during replay 1");
    f.stream.publish_during_next_replay(ROOM, "during replay 2");
    let since = seqs[1];
    rooms
        .join(&f.core, &user("joiner"), ROOM, Some(since), None)
        .await
        .unwrap();
    let joined = json(&next_frame(&mut rx).await);
    assert_eq!(joined["last_seq"].as_u64(), Some(last));
    assert_eq!(joined["recovered"], true);
    let after = f.stream.post(ROOM, "after");
    let got = next_messages(&mut rx, 7).await;
    let delivered = assert_chain(&got, since);
    assert_eq!(&delivered[..4], &seqs[2..]);
    assert_eq!(got[4]["body"], "during replay 1");
    assert_eq!(got[5]["body"], "during replay 2");
    assert_eq!(delivered[6], after);
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
    assert!(rx.try_recv().is_err(), "something was delivered twice");
    // The socket that was there all along saw the same order.
    let theirs = next_messages(&mut other_rx, 4).await;
    assert_eq!(assert_chain(&theirs, seqs[4]), delivered[3..]);
}

#[tokio::test]
async fn a_since_that_is_not_a_message_of_the_room_still_chains() {
    let f = fixture();
    let (mut rooms, _socket, mut rx) = joiner(&f);
    let first = f.stream.post(ROOM, "first");
    let other = f.stream.post("elsewhere", "another room");
    let second = f.stream.post(ROOM, "second");
    rooms
        .join(&f.core, &user("joiner"), ROOM, Some(other), None)
        .await
        .unwrap();
    next_frame(&mut rx).await;
    let got = next_messages(&mut rx, 1).await;
    // The first replayed message follows the room's message before `since`, not `since`.
    assert_eq!(assert_chain(&got, first), vec![second]);
}

#[tokio::test]
async fn past_the_recovery_limit_nothing_is_replayed_and_recovered_is_false() {
    let f = fixture_with(crate::config::AgentSettings {
        recovery_limit: 3,
        ..settings()
    });
    let (mut rooms, _socket, mut rx) = joiner(&f);
    let seqs: Vec<u64> = (0..6)
        .map(|n| f.stream.post(ROOM, &format!("m{n}")))
        .collect();
    rooms
        .join(&f.core, &user("joiner"), ROOM, Some(seqs[0]), None)
        .await
        .unwrap();
    let joined = json(&next_frame(&mut rx).await);
    assert_eq!(joined["recovered"], false);
    assert_eq!(joined["last_seq"].as_u64(), Some(seqs[5]));
    // None of the missed ones, but live messages from the position on.
    let live = f.stream.post(ROOM, "live");
    let got = next_messages(&mut rx, 1).await;
    assert_eq!(assert_chain(&got, seqs[5]), vec![live]);
}

#[tokio::test]
async fn a_join_that_fails_after_attaching_leaves_nothing_behind() {
    let f = fixture();
    let (mut rooms, _socket, mut rx) = joiner(&f);
    f.stream.failing.store(true, Ordering::SeqCst);
    let e = rooms
        .join(&f.core, &user("joiner"), ROOM, Some(0), None)
        .await
        .unwrap_err();
    assert!(matches!(e, CoreError::Unavailable { .. }), "{e:?}");
    assert!(
        f.core.hub.room_ids().is_empty(),
        "the room is still subscribed"
    );
    assert!(
        rx.try_recv().is_err(),
        "a frame of the failed join was sent"
    );
    // It works once the stream does.
    f.stream.failing.store(false, Ordering::SeqCst);
    rooms
        .join(&f.core, &user("joiner"), ROOM, None, None)
        .await
        .unwrap();
    assert_eq!(json(&next_frame(&mut rx).await)["type"], "joined");
}

#[tokio::test]
async fn an_unknown_room_is_not_found_and_the_socket_stays_out() {
    let f = fixture();
    let (mut rooms, _socket, _rx) = joiner(&f);
    let e = rooms
        .join(&f.core, &user("joiner"), "nosuchroom", None, None)
        .await
        .unwrap_err();
    assert_eq!(
        dyschat_protocol::ApiError::from(e).code,
        dyschat_protocol::ErrorCode::NotFound
    );
    assert!(f.core.hub.room_ids().is_empty());
}

#[tokio::test]
async fn leaving_detaches_the_socket_and_ends_the_membership() {
    let f = fixture();
    let (mut rooms, _socket, mut rx) = joiner(&f);
    let me = user("joiner");
    rooms.join(&f.core, &me, ROOM, None, None).await.unwrap();
    next_frame(&mut rx).await;
    rooms.leave(&f.core, &me, ROOM).await.unwrap();
    assert!(f.core.hub.room_ids().is_empty());
    let e = f
        .core
        .membership
        .decide(ROOM, &me.user_id, dyschat_protocol::policy::Action::Read)
        .await
        .unwrap_err();
    assert!(matches!(e, CoreError::Denied(_)));
}

#[tokio::test]
async fn a_socket_joins_at_most_its_bound_of_rooms() {
    let f = fixture();
    let (mut rooms, _socket, _rx) = joiner(&f);
    let owner = user("owner");
    let me = user("joiner");
    for n in 0..crate::core::join::MAX_ROOMS_PER_SOCKET {
        let room = format!("r{n}");
        f.rooms.create(&room, &owner);
        rooms.join(&f.core, &me, &room, None, None).await.unwrap();
    }
    let e = rooms
        .join(&f.core, &me, ROOM, None, None)
        .await
        .unwrap_err();
    assert!(matches!(e, CoreError::Invalid(_)));
    // Joining one it is in again is fine.
    rooms.join(&f.core, &me, "r0", None, None).await.unwrap();
    rooms.detach_all(&f.core);
    assert!(f.core.hub.room_ids().is_empty());
}
