//! Changes over fakes: the live frame on a joined socket, repeated reactions, racing changes
//! keeping one chain, and a replay that brings an erased message back as its tombstone.

use crate::core::{Edit, SocketRooms};
use crate::socket::SocketHandle;
use crate::testing::{fixture, json, next_frame, user, Fixture};

const ROOM: &str = "room1";

/// A room of alice (owner) and bob; a message of alice's; bob's socket joined.
async fn room_with_message(
    f: &Fixture,
) -> (
    u64,
    SocketHandle,
    tokio::sync::mpsc::Receiver<crate::socket::OutFrame>,
) {
    f.rooms.create(ROOM, &user("alice"));
    f.rooms.add(ROOM, &user("bob"));
    let mut m = crate::testing::stream_message(ROOM, "hello");
    m.sender_id = user("alice").user_id;
    let seq = f.stream.append(m);
    let (socket, mut rx) = SocketHandle::new(user("bob").user_id, 256);
    SocketRooms::new(socket.clone())
        .join(&f.core, &user("bob"), ROOM, None, None)
        .await
        .unwrap();
    assert_eq!(json(&next_frame(&mut rx).await)["type"], "joined");
    (seq, socket, rx)
}

#[tokio::test]
async fn a_change_reaches_joined_sockets_once_and_a_repeat_sends_nothing() {
    let f = fixture();
    let (seq, _socket, mut rx) = room_with_message(&f).await;
    let react = || Edit::React("👍".into());
    let done = f
        .core
        .change(&user("bob"), ROOM, seq, react())
        .await
        .unwrap();
    assert_eq!(done.state.reactions[0].count, 1);
    let frame = json(&next_frame(&mut rx).await);
    assert_eq!(frame["type"], "message_updated");
    assert_eq!(
        frame["message"]["reactions"][0]["user_ids"][0],
        user("bob").user_id
    );
    assert_eq!(frame["prev_event_seq"], 0);
    let again = f
        .core
        .change(&user("bob"), ROOM, seq, react())
        .await
        .unwrap();
    assert_eq!(again.state, done.state);
    let edit = f
        .core
        .change(&user("alice"), ROOM, seq, Edit::Body("hi".into()))
        .await
        .unwrap();
    assert_eq!(edit.state.body, "hi");
    let next = json(&next_frame(&mut rx).await);
    assert_eq!(next["change"], "edited", "the repeat sent nothing: {next}");
    assert_eq!(next["prev_event_seq"], frame["event_seq"]);
}

#[tokio::test]
async fn racing_changes_of_one_room_form_one_chain() {
    let f = fixture();
    let (seq, _socket, mut rx) = room_with_message(&f).await;
    let mut racing = Vec::new();
    for n in 0..8 {
        let core = f.core.clone();
        racing.push(tokio::spawn(async move {
            core.change(&user("bob"), ROOM, seq, Edit::React(format!("e{n}")))
                .await
        }));
    }
    for r in racing {
        r.await.unwrap().unwrap();
    }
    let mut prev = 0;
    for _ in 0..8 {
        let frame = json(&next_frame(&mut rx).await);
        assert_eq!(frame["prev_event_seq"].as_u64(), Some(prev), "{frame}");
        prev = frame["event_seq"].as_u64().unwrap();
    }
    let last = f.stream.last_change_now(ROOM).unwrap();
    assert_eq!(last.message.reactions.len(), 8, "every reaction kept");
}

#[tokio::test]
async fn a_replay_brings_an_erased_message_back_as_its_tombstone() {
    let f = fixture();
    let (seq, _socket, _rx) = room_with_message(&f).await;
    let later = f.stream.post(ROOM, "later");
    f.core
        .change(&user("alice"), ROOM, seq, Edit::Delete)
        .await
        .unwrap();
    // msg-writer erased the original from the stream.
    f.stream.erase(seq);
    let (socket, mut rx) = SocketHandle::new(user("bob").user_id, 256);
    SocketRooms::new(socket)
        .join(&f.core, &user("bob"), ROOM, Some(seq - 1), None)
        .await
        .unwrap();
    let joined = json(&next_frame(&mut rx).await);
    assert!(joined["last_event_seq"].as_u64() > Some(later), "{joined}");
    let tombstone = json(&next_frame(&mut rx).await);
    assert_eq!(
        (
            tombstone["type"].as_str(),
            tombstone["seq"].as_u64(),
            tombstone["deleted"].as_bool(),
            tombstone["body"].as_str()
        ),
        (Some("message"), Some(seq), Some(true), Some(""))
    );
    let after = json(&next_frame(&mut rx).await);
    assert_eq!(
        (after["seq"].as_u64(), after["prev_seq"].as_u64()),
        (Some(later), Some(seq))
    );
    let change = json(&next_frame(&mut rx).await);
    assert_eq!(change["change"], "deleted");
    // Deleted: nothing more changes it, and the owner's repeat is a conflict.
    let again = f.core.change(&user("alice"), ROOM, seq, Edit::Delete).await;
    assert!(again.is_err());
}
