//! Mesh events over fakes: routed by parsed subject, applied by revision.

use std::sync::atomic::Ordering;

use bytes::Bytes;
use dyschat_protocol::policy::{Action, Standing};
use dyschat_protocol::subjects;
use dyschat_protocol::wire::{MembershipEvent, PresenceEvent, Role, TypingEvent};
use serde::Serialize;

use crate::core::events::handle;
use crate::ports::EventMessage;
use crate::socket::{OutFrame, SocketHandle};
use crate::testing::{fixture, json, user, Fixture};

const ROOM: &str = "room1";

fn event(subject: String, payload: &impl Serialize) -> EventMessage {
    EventMessage {
        subject,
        payload: Bytes::from(serde_json::to_vec(payload).unwrap()),
        headers: None,
    }
}

fn membership(user_id: &str, joined: bool, revision: u64) -> EventMessage {
    let payload = MembershipEvent {
        room_id: ROOM.into(),
        user_id: user_id.into(),
        username: user_id.into(),
        joined,
        revision,
        standing: Some(Standing {
            role: joined.then_some(Role::Member),
            ..Default::default()
        }),
    };
    event(subjects::membership(ROOM), &payload)
}

async fn joined_socket(
    f: &Fixture,
    name: &str,
) -> (SocketHandle, tokio::sync::mpsc::Receiver<OutFrame>) {
    let (socket, rx) = SocketHandle::new(user(name).user_id, 64);
    f.core.hub.attach(ROOM, &socket).await.unwrap();
    f.core.hub.note_position(ROOM, 0);
    f.core.hub.activate(ROOM, socket.id(), 0);
    (socket, rx)
}

#[tokio::test]
async fn a_leave_event_tells_the_room_and_detaches_the_users_sockets() {
    let f = fixture();
    let (_watcher, mut watcher_rx) = joined_socket(&f, "watcher").await;
    let (leaver, _leaver_rx) = joined_socket(&f, "leaver").await;
    handle(&f.core, &membership(leaver.user_id(), false, 0)).await;
    let frame = json(&watcher_rx.recv().await.unwrap());
    assert_eq!(frame["type"], "member_left");
    assert_eq!(frame["user_id"], leaver.user_id());
    assert!(f.core.hub.sockets_of(ROOM, leaver.user_id()).is_empty());
    assert_eq!(
        f.core.hub.room_ids(),
        vec![ROOM.to_string()],
        "the watcher stays"
    );
}

#[tokio::test]
async fn a_stale_event_changes_nothing() {
    let f = fixture();
    let (_watcher, mut watcher_rx) = joined_socket(&f, "watcher").await;
    let (member, _member_rx) = joined_socket(&f, "member").await;
    handle(&f.core, &membership(member.user_id(), true, 9)).await;
    assert_eq!(
        json(&watcher_rx.recv().await.unwrap())["type"],
        "member_joined"
    );
    // A leave from before the join at 9: no frame, no detach, still a member.
    handle(&f.core, &membership(member.user_id(), false, 8)).await;
    assert!(watcher_rx.try_recv().is_err());
    assert_eq!(f.core.hub.sockets_of(ROOM, member.user_id()).len(), 1);
    f.core
        .membership
        .decide(ROOM, member.user_id(), Action::Post)
        .await
        .unwrap();
    assert_eq!(
        f.rooms.access_calls.load(Ordering::SeqCst),
        0,
        "answered from the events"
    );
}

#[tokio::test]
async fn typing_goes_to_the_others_and_presence_to_rooms_the_user_is_in() {
    let f = fixture();
    let (typist, mut typist_rx) = joined_socket(&f, "typist").await;
    let (_other, mut other_rx) = joined_socket(&f, "other").await;
    let typing = TypingEvent {
        room_id: ROOM.into(),
        user_id: typist.user_id().into(),
        username: "typist".into(),
    };
    handle(&f.core, &event(subjects::typing(ROOM), &typing)).await;
    assert_eq!(json(&other_rx.recv().await.unwrap())["type"], "typing");
    assert!(typist_rx.try_recv().is_err(), "typing echoed to the typist");
    // Presence of a user this agent does not know as a member goes nowhere; of a known one, to
    // the room.
    let online = |user_id: &str| PresenceEvent {
        user_id: user_id.into(),
        online: true,
    };
    handle(
        &f.core,
        &event(subjects::presence("stranger"), &online("stranger")),
    )
    .await;
    assert!(other_rx.try_recv().is_err());
    handle(&f.core, &membership(typist.user_id(), true, 0)).await;
    other_rx.recv().await.unwrap();
    handle(
        &f.core,
        &event(
            subjects::presence(typist.user_id()),
            &online(typist.user_id()),
        ),
    )
    .await;
    let frame = json(&other_rx.recv().await.unwrap());
    assert_eq!(
        (frame["type"].as_str(), frame["online"].as_bool()),
        (Some("presence"), Some(true))
    );
}

#[tokio::test]
async fn events_are_routed_by_their_parsed_subject_only() {
    let f = fixture();
    let (_socket, mut rx) = joined_socket(&f, "watcher").await;
    let typing = TypingEvent {
        room_id: ROOM.into(),
        user_id: "someone".into(),
        username: "someone".into(),
    };
    for subject in [
        // Unknown kinds, a bad id, and a subject naming another room than the payload.
        "dyschat.events.typingx.room1".to_string(),
        "dyschat.events.typing.room1.extra".to_string(),
        "dyschat.events.typing.a*".to_string(),
        subjects::typing("room2"),
        subjects::membership(ROOM),
    ] {
        handle(&f.core, &event(subject, &typing)).await;
    }
    assert!(rx.try_recv().is_err(), "a misrouted event reached the room");
    handle(&f.core, &event(subjects::typing(ROOM), &typing)).await;
    assert_eq!(json(&rx.recv().await.unwrap())["type"], "typing");
}
