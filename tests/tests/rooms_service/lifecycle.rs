//! A room's life: invitations into a private room, updates (PATCH) and deletion, and the
//! events each sends.

use super::*;

use dyschat_protocol::layout::{membership_key, MEMBERSHIPS_BUCKET, MESSAGES_STREAM};
use dyschat_protocol::wire::{Role, RoomEvent, UpdateRoomBody};
use dyschat_tests::wait_until;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invitations_open_a_private_room_once() {
    let h = Harness::start(1).await;
    let owner = h.user("owner").await;
    let bob = h.user("bob").await;
    let room = h.create_private(&owner, "Secret").await;
    assert_eq!(room.visibility, Visibility::Private);
    let mut events = room_events(&h, &room.room_id).await;

    assert_eq!(
        code(h.get_as(&room.room_id, &bob).await),
        ErrorCode::NotFound
    );
    assert_eq!(code(h.join(&room.room_id, &bob).await), ErrorCode::NotFound);
    assert_eq!(
        code(h.invite(&room.room_id, &owner, "no-such-user").await),
        ErrorCode::NotFound
    );
    let invited = h.invite(&room.room_id, &owner, &bob).await.unwrap();
    assert!(invited.invited);
    match next_room_event(&mut events).await {
        RoomEvent::Standing {
            user_id,
            revision,
            standing,
            ..
        } => {
            assert_eq!(user_id, bob);
            assert!(standing.invited);
            assert_eq!(
                revision,
                h.access(&room.room_id, &bob).await.unwrap().revision
            );
        }
        other => panic!("{other:?}"),
    }
    h.get_as(&room.room_id, &bob).await.unwrap();
    assert!(h.join(&room.room_id, &bob).await.unwrap().changed);
    // The invitation is used up: after leaving, the room is hidden again.
    h.leave(&room.room_id, &bob).await.unwrap();
    assert_eq!(
        code(h.get_as(&room.room_id, &bob).await),
        ErrorCode::NotFound
    );
    // Taken back before use: hidden again too.
    h.invite(&room.room_id, &owner, &bob).await.unwrap();
    assert!(
        !h.uninvite(&room.room_id, &owner, &bob)
            .await
            .unwrap()
            .invited
    );
    assert_eq!(code(h.join(&room.room_id, &bob).await), ErrorCode::NotFound);
    // A banned invitee stays an outsider.
    h.invite(&room.room_id, &owner, &bob).await.unwrap();
    h.ban(&room.room_id, &owner, &bob, "").await.unwrap();
    assert_eq!(
        code(h.get_as(&room.room_id, &bob).await),
        ErrorCode::NotFound
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_patch_changes_the_room_and_announces_it() {
    let h = Harness::start(1).await;
    let room_id = h.create("owner", "General").await.unwrap().room_id;
    h.join(&room_id, "mod").await.unwrap();
    h.set_role(&room_id, "owner", "mod", Role::Moderator)
        .await
        .unwrap();
    let mut events = room_events(&h, &room_id).await;

    let changes = UpdateRoomBody {
        name: Some("Renamed".into()),
        topic: Some("a topic".into()),
        visibility: Some(Visibility::Private),
    };
    let room = h.update(&room_id, "mod", changes).await.unwrap();
    assert_eq!(
        (room.name.as_str(), room.topic.as_str(), room.visibility),
        ("Renamed", "a topic", Visibility::Private)
    );
    assert_eq!(h.get_as(&room_id, "owner").await.unwrap(), room);
    match next_room_event(&mut events).await {
        RoomEvent::RoomUpdated {
            room: announced, ..
        } => assert_eq!(announced, room),
        other => panic!("{other:?}"),
    }
    // Private now: outsiders no longer see it.
    assert_eq!(code(h.get(&room_id).await), ErrorCode::NotFound);
    for bad in [
        UpdateRoomBody {
            name: Some("".into()),
            ..Default::default()
        },
        UpdateRoomBody {
            name: Some("\u{200B}".into()),
            ..Default::default()
        },
        UpdateRoomBody {
            topic: Some("t".repeat(501)),
            ..Default::default()
        },
    ] {
        assert_eq!(
            code(h.update(&room_id, "owner", bad).await),
            ErrorCode::BadRequest
        );
    }
    // Nothing to change: the room as it is, no event.
    h.update(&room_id, "owner", UpdateRoomBody::default())
        .await
        .unwrap();
    let none = tokio::time::timeout(Duration::from_millis(300), events.next()).await;
    assert!(none.is_err(), "{none:?}");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_room_is_gone_everywhere() {
    let h = Harness::start(1).await;
    let room_id = h.create("owner", "Doomed").await.unwrap().room_id;
    let other = h.create("owner", "Stays").await.unwrap().room_id;
    h.join(&room_id, "bob").await.unwrap();
    h.ban(&room_id, "owner", "carol", "").await.unwrap_err(); // carol is not a user: 404
                                                              // Messages of both rooms in the stream.
    let js = async_nats::jetstream::new(h.client.clone());
    let stream = topology::ensure_messages_stream(&js, &Default::default())
        .await
        .unwrap();
    for room in [&room_id, &other, &room_id] {
        js.publish(subjects::room_messages(room), "{}".into())
            .await
            .unwrap()
            .await
            .unwrap();
    }
    let mut events = room_events(&h, &room_id).await;

    assert_eq!(code(h.delete(&room_id, "bob").await), ErrorCode::Forbidden);
    let deleted = h.delete(&room_id, "owner").await.unwrap();
    assert!(deleted.deleted);
    assert_eq!(code(h.get_as(&room_id, "owner").await), ErrorCode::NotFound);
    assert_eq!(code(h.join(&room_id, "bob").await), ErrorCode::NotFound);
    assert_eq!(code(h.access(&room_id, "bob").await), ErrorCode::NotFound);
    assert_eq!(code(h.members(&room_id).await), ErrorCode::NotFound);
    assert_eq!(code(h.delete(&room_id, "owner").await), ErrorCode::NotFound);
    assert!(
        matches!(next_room_event(&mut events).await, RoomEvent::RoomDeleted { room_id: r } if r == room_id)
    );
    let listed: Vec<String> = h
        .list(100, None)
        .await
        .unwrap()
        .rooms
        .into_iter()
        .map(|r| r.room_id)
        .collect();
    assert_eq!(listed, std::slice::from_ref(&other));
    assert!(h.my_rooms("bob").await.unwrap().rooms.is_empty());
    // Its messages are purged from the stream; the other room's stay.
    let mut stream = stream;
    let info = stream.info().await.unwrap();
    assert_eq!(info.state.messages, 1, "{:?}", info.state);
    let kept = stream
        .get_last_raw_message_by_subject(&subjects::room_messages(&other))
        .await;
    assert!(kept.is_ok());
    assert_eq!(MESSAGES_STREAM, stream.cached_info().config.name);
    // The clean-up removes the members' index entries.
    let index = js.get_key_value(MEMBERSHIPS_BUCKET).await.unwrap();
    wait_until(Duration::from_secs(10), "the clean-up", || async {
        index
            .get(membership_key("bob", &room_id))
            .await
            .unwrap()
            .is_none()
            && index
                .get(membership_key("owner", &room_id))
                .await
                .unwrap()
                .is_none()
    })
    .await
    .unwrap();
    h.stop().await;
}
