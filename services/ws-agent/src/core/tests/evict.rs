//! Evictions, room events and unread counts over fakes: an evicted socket's last frame of the
//! room is `kicked` / `room_deleted`, the cache decides from the eviction on without asking, a
//! join after an eviction undoes itself, room events make their frames once, and unread counts
//! are exact whatever the store holds.

use std::sync::atomic::Ordering;

use bytes::Bytes;
use dyschat_protocol::policy::{Action, Standing, Visibility};
use dyschat_protocol::subjects;
use dyschat_protocol::wire::{Eviction, EvictionCause, Role, Room, RoomEvent, StoredMessage};
use dyschat_protocol::ErrorCode;

use crate::core::events::handle;
use crate::core::{CoreError, SocketRooms};
use crate::ports::EventMessage;
use crate::socket::{OutFrame, SocketHandle};
use crate::testing::{fixture, json, user, Fixture};

const ROOM: &str = "room1";

async fn joined(f: &Fixture, name: &str) -> (SocketHandle, tokio::sync::mpsc::Receiver<OutFrame>) {
    let (socket, rx) = SocketHandle::new(user(name).user_id, 64);
    f.core.hub.attach(ROOM, &socket).await.unwrap();
    f.core.hub.note_position(ROOM, 0);
    f.core.hub.activate(ROOM, socket.id(), 0);
    (socket, rx)
}

fn drain(rx: &mut tokio::sync::mpsc::Receiver<OutFrame>) -> Vec<serde_json::Value> {
    let mut frames = Vec::new();
    while let Ok(frame) = rx.try_recv() {
        frames.push(json(&frame));
    }
    frames
}

fn kick(user_id: &str, revision: u64, banned: bool) -> Eviction {
    Eviction {
        eviction_id: "e1".into(),
        room_id: ROOM.into(),
        user_id: Some(user_id.into()),
        cause: if banned {
            EvictionCause::Banned
        } else {
            EvictionCause::Kicked
        },
        by: "id-owner".into(),
        reason: "spam".into(),
        revision,
        standing: Some(Standing {
            banned,
            ..Default::default()
        }),
    }
}

fn error_code(e: CoreError) -> ErrorCode {
    dyschat_protocol::ApiError::from(e).code
}

#[tokio::test]
async fn a_kick_leaves_kicked_as_the_rooms_last_frame_and_the_cache_decides_from_it() {
    let f = fixture();
    f.rooms.create(ROOM, &user("owner"));
    f.rooms.add(ROOM, &user("victim"));
    let (_w, mut watcher) = joined(&f, "watcher").await;
    let (_a, mut first) = joined(&f, "victim").await;
    let (_b, mut second) = joined(&f, "victim").await;
    assert_eq!(f.core.evict(&kick("id-victim", 7, true)), 2);
    for rx in [&mut first, &mut second] {
        let frames = drain(rx);
        assert_eq!(frames.len(), 1, "{frames:?}");
        assert_eq!(frames[0]["type"], "kicked");
        assert_eq!(frames[0]["by"], "id-owner");
        assert_eq!(frames[0]["reason"], "spam");
    }
    // The room goes on without them.
    f.stream.post(ROOM, "after");
    let got = crate::testing::next_messages(&mut watcher, 1).await;
    assert_eq!(got[0]["body"], "after");
    assert!(drain(&mut first).is_empty() && drain(&mut second).is_empty());
    // Banned: refused from the cache, without asking rooms.
    let calls = f.rooms.access_calls.load(Ordering::SeqCst);
    let e = f
        .core
        .membership
        .decide(ROOM, "id-victim", Action::Post)
        .await
        .unwrap_err();
    assert_eq!(error_code(e), ErrorCode::Forbidden);
    assert_eq!(f.rooms.access_calls.load(Ordering::SeqCst), calls);
    // An eviction of nobody here is answered too (0 sockets).
    assert_eq!(f.core.evict(&kick("id-stranger", 3, false)), 0);
}

#[tokio::test]
async fn a_join_that_attaches_after_an_eviction_undoes_itself() {
    let f = fixture();
    f.rooms.create(ROOM, &user("owner"));
    // The eviction is known here at revision 9; the join's own reply is older.
    f.core.evict(&kick("id-joiner", 9, true));
    let (socket, mut rx) = SocketHandle::new(user("joiner").user_id, 64);
    let mut rooms = SocketRooms::new(socket.clone());
    let e = rooms
        .join(&f.core, &user("joiner"), ROOM, None, None)
        .await
        .unwrap_err();
    assert_eq!(error_code(e), ErrorCode::Forbidden);
    assert!(f.core.hub.sockets_of(ROOM, "id-joiner").is_empty());
    assert!(drain(&mut rx).is_empty(), "no joined frame");
}

#[tokio::test]
async fn a_deletion_evicts_every_socket_and_the_room_is_gone() {
    let f = fixture();
    f.rooms.create(ROOM, &user("owner"));
    let (_a, mut a) = joined(&f, "owner").await;
    let (_b, mut b) = joined(&f, "member").await;
    let deletion = Eviction {
        user_id: None,
        cause: EvictionCause::Deleted,
        standing: None,
        revision: 0,
        ..kick("x", 0, false)
    };
    assert_eq!(f.core.evict(&deletion), 2);
    for rx in [&mut a, &mut b] {
        let frames = drain(rx);
        assert_eq!(frames.len(), 1);
        assert_eq!(
            frames[0],
            serde_json::json!({"type": "room_deleted", "room_id": ROOM})
        );
    }
    assert!(f.core.hub.room_ids().is_empty(), "unsubscribed");
    // Even though the (fake) rooms service still answers for it.
    let e = f
        .core
        .membership
        .decide(ROOM, "id-owner", Action::Read)
        .await
        .unwrap_err();
    assert_eq!(error_code(e), ErrorCode::NotFound);
}

fn room_event(event: &RoomEvent) -> EventMessage {
    EventMessage {
        subject: subjects::room_events(ROOM),
        payload: Bytes::from(serde_json::to_vec(event).unwrap()),
        headers: None,
    }
}

#[tokio::test]
async fn room_events_make_their_frames_once_and_update_standings() {
    let f = fixture();
    f.rooms.create(ROOM, &user("owner"));
    let (_w, mut watcher) = joined(&f, "watcher").await;
    // An outsider's public standing is cached.
    let e = f
        .core
        .membership
        .decide(ROOM, "id-outsider", Action::Read)
        .await
        .unwrap_err();
    assert_eq!(error_code(e), ErrorCode::Forbidden);
    let role = RoomEvent::MemberRole {
        room_id: ROOM.into(),
        user_id: "id-watcher".into(),
        username: "watcher".into(),
        role: Role::Moderator,
        revision: 4,
        standing: Standing {
            role: Some(Role::Moderator),
            ..Default::default()
        },
    };
    handle(&f.core, &room_event(&role)).await;
    handle(&f.core, &room_event(&role)).await;
    let frames = drain(&mut watcher);
    assert_eq!(frames.len(), 1, "once: {frames:?}");
    assert_eq!(frames[0]["type"], "member_role");
    assert_eq!(frames[0]["role"], "moderator");
    let room = Room {
        room_id: ROOM.into(),
        name: "renamed".into(),
        topic: String::new(),
        owner_id: "id-owner".into(),
        created_at: "2026-01-01T00:00:00.000Z".into(),
        member_count: 2,
        visibility: Visibility::Private,
        kind: Default::default(),
    };
    let updated = RoomEvent::RoomUpdated {
        room,
        room_revision: 3,
    };
    handle(&f.core, &room_event(&updated)).await;
    let frames = drain(&mut watcher);
    assert_eq!(frames.len(), 1);
    assert_eq!(frames[0]["type"], "room_updated");
    assert_eq!(frames[0]["room"]["name"], "renamed");
    // The room is private now: the outsider no longer learns it exists.
    let e = f
        .core
        .membership
        .decide(ROOM, "id-outsider", Action::Read)
        .await
        .unwrap_err();
    assert_eq!(error_code(e), ErrorCode::NotFound);
}

fn mine(room_id: &str, body: &str) -> StoredMessage {
    StoredMessage {
        sender_id: "id-alice".into(),
        sender_name: "alice".into(),
        ..crate::testing::stream_message(room_id, body)
    }
}

#[tokio::test]
async fn unread_counts_are_exact_whatever_the_store_holds() {
    let f = fixture();
    f.rooms.create(ROOM, &user("alice"));
    for n in 0..6 {
        f.stream.post(ROOM, &format!("other {n}"));
        f.stream.post("elsewhere", "noise");
        if n % 2 == 0 {
            f.stream.append(mine(ROOM, "mine"));
        }
    }
    let last = f.stream.last_seq_now(ROOM);
    let stored_half = last / 2;
    let cases = [
        (u64::MAX, u64::MAX),       // the store holds everything
        (stored_half, stored_half), // the writer is behind
        (0, 0),                     // nothing stored yet
    ];
    for (stored, floor) in cases {
        f.history.stored_up_to.store(stored, Ordering::SeqCst);
        f.stream.writer_floor.store(floor, Ordering::SeqCst);
        let unread = f.core.unread(ROOM, "id-alice", 0, last).await.unwrap();
        assert_eq!(unread, 6, "store up to {stored}");
        let summaries = f.core.my_rooms(&user("alice")).await.unwrap();
        assert_eq!(summaries.rooms[0].unread, 6);
        assert_eq!(summaries.rooms[0].last_seq, last);
        assert_eq!(
            summaries.rooms[0].last_message.as_ref().map(|m| m.seq),
            Some(last)
        );
    }
    // Past the marker, only what follows it counts.
    assert_eq!(
        f.core.unread(ROOM, "id-alice", last, last).await.unwrap(),
        0
    );
}

#[tokio::test]
async fn rooms_a_socket_was_evicted_from_do_not_count_against_its_bound() {
    let f = fixture();
    let (socket, _rx) = SocketHandle::new(user("joiner").user_id, 1024);
    let mut rooms = SocketRooms::new(socket);
    let me = user("joiner");
    for n in 0..crate::core::join::MAX_ROOMS_PER_SOCKET {
        let room = format!("r{n}");
        f.rooms.create(&room, &user("owner"));
        rooms.join(&f.core, &me, &room, None, None).await.unwrap();
    }
    f.rooms.create("one-more", &user("owner"));
    assert!(rooms
        .join(&f.core, &me, "one-more", None, None)
        .await
        .is_err());
    f.core.evict(&Eviction {
        room_id: "r0".into(),
        ..kick("id-joiner", 5, false)
    });
    rooms
        .join(&f.core, &me, "one-more", None, None)
        .await
        .unwrap();
}
