//! Direct rooms (contract section 6), blocks, and each user's own rooms.

use super::*;

use dyschat_protocol::policy::{decide, Action, Denied, RoomKind};
use dyschat_protocol::wire::{Role, RoomEvent, UpdateRoomBody};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_users_have_one_direct_room_whoever_opens_it_and_however_often() {
    let h = Harness::start(2).await;
    let alice = h.register("alice").await;
    let bob = h.register("bob").await;

    // Both at once, in both orders, several times over, across two services.
    let opens: Vec<Result<Room, ApiError>> = futures::future::join_all((0..12).map(|i| {
        let (me, peer) = if i % 2 == 0 {
            (&alice, &bob)
        } else {
            (&bob, &alice)
        };
        h.open_dm(me, &peer.user_id)
    }))
    .await;
    let rooms: BTreeSet<String> = opens.into_iter().map(|r| r.unwrap().room_id).collect();
    assert_eq!(rooms.len(), 1, "{rooms:?}");
    let room_id = rooms.into_iter().next().unwrap();

    let room = h.open_dm(&bob, &alice.user_id).await.unwrap();
    assert_eq!(room.room_id, room_id);
    assert_eq!(
        (room.kind, room.visibility),
        (RoomKind::Direct, Visibility::Private)
    );
    assert_eq!((room.owner_id.as_str(), room.member_count), ("", 2));
    let members: Vec<(String, Role)> = h
        .call::<_, MemberList>(subjects::rooms::MEMBERS, &room_as(&room_id, &alice.user_id))
        .await
        .unwrap()
        .members
        .into_iter()
        .map(|m| (m.user_id, m.role))
        .collect();
    assert_eq!(members.len(), 2);
    assert!(members.iter().all(|(_, role)| *role == Role::Member));
    // Exactly those two: anyone else is an outsider, and nobody can join.
    let carol = h.register("carol").await;
    assert_eq!(
        code(h.get_as(&room_id, &carol.user_id).await),
        ErrorCode::NotFound
    );
    assert_eq!(
        code(h.join(&room_id, &carol.user_id).await),
        ErrorCode::NotFound
    );
    // A different pair, a different room.
    let other = h.open_dm(&alice, &carol.user_id).await.unwrap();
    assert_ne!(other.room_id, room_id);
    // Never in the room list.
    assert!(h
        .list_as(&alice.user_id, 100, None, None)
        .await
        .unwrap()
        .rooms
        .is_empty());
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_direct_room_needs_someone_else_who_exists() {
    let h = Harness::start(1).await;
    let alice = h.register("alice").await;
    assert_eq!(
        code(h.open_dm(&alice, &alice.user_id).await),
        ErrorCode::BadRequest
    );
    assert_eq!(
        code(h.open_dm(&alice, "no-such-user").await),
        ErrorCode::NotFound
    );
    assert_eq!(
        code(h.open_dm(&alice, "bad.id").await),
        ErrorCode::BadRequest
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_direct_room_is_used_but_not_managed() {
    let h = Harness::start(1).await;
    let alice = h.register("alice").await;
    let bob = h.register("bob").await;
    let carol = h.register("carol").await;
    let room_id = h.open_dm(&alice, &bob.user_id).await.unwrap().room_id;
    let (a, b, c) = (
        alice.user_id.as_str(),
        bob.user_id.as_str(),
        carol.user_id.as_str(),
    );

    // Used like any room.
    assert!(!h.join(&room_id, a).await.unwrap().changed);
    let s = h.standing(&room_id, a).await;
    assert_eq!((s.kind, s.role), (RoomKind::Direct, Some(Role::Member)));
    assert_eq!(decide(&s, Action::Post), Ok(()));
    // Never managed: every management route is 403 for its members.
    let forbidden = ErrorCode::Forbidden;
    assert_eq!(code(h.invite(&room_id, a, c).await), forbidden);
    assert_eq!(code(h.uninvite(&room_id, a, c).await), forbidden);
    assert_eq!(code(h.kick(&room_id, a, b, "").await), forbidden);
    assert_eq!(code(h.ban(&room_id, a, b, "").await), forbidden);
    assert_eq!(code(h.unban(&room_id, a, b).await), forbidden);
    assert_eq!(
        code(h.set_role(&room_id, a, b, Role::Moderator).await),
        forbidden
    );
    assert_eq!(code(h.transfer(&room_id, a, b).await), forbidden);
    assert_eq!(code(h.set_topic(&room_id, a, "x").await), forbidden);
    assert_eq!(
        code(h.update(&room_id, a, UpdateRoomBody::default()).await),
        forbidden
    );
    assert_eq!(code(h.delete(&room_id, a).await), forbidden);
    assert_eq!(code(h.leave(&room_id, a).await), forbidden);
    assert_eq!(code(h.bans(&room_id, a).await), forbidden);
    assert_eq!(h.get_as(&room_id, b).await.unwrap().member_count, 2);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_a_blocks_b_b_neither_opens_nor_posts_into_their_room() {
    let h = Harness::start(1).await;
    let alice = h.register("alice").await;
    let bob = h.register("bob").await;
    let (a, b) = (alice.user_id.as_str(), bob.user_id.as_str());
    let room_id = h.open_dm(&alice, b).await.unwrap().room_id;
    let mut events = h
        .client
        .subscribe(subjects::room_events(&room_id))
        .await
        .unwrap();
    h.client.flush().await.unwrap();
    let before = h.access(&room_id, b).await.unwrap();

    let blocked = h.block(a, b).await.unwrap();
    assert_eq!((blocked.user_id.as_str(), blocked.blocked), (b, true));
    assert!(h.block(a, b).await.unwrap().blocked, "idempotent");
    // B may not open the room, nor post (the agent decides sends from this standing).
    assert_eq!(code(h.open_dm(&bob, a).await), ErrorCode::Forbidden);
    let after = h.access(&room_id, b).await.unwrap();
    assert!(after.standing.blocked && after.revision > before.revision);
    assert_eq!(
        decide(&after.standing, Action::Post),
        Err(Denied::Forbidden)
    );
    assert_eq!(
        decide(&after.standing, Action::Read),
        Ok(()),
        "B still reads it"
    );
    // The agents learn it from the event, at that revision.
    let message = tokio::time::timeout(Duration::from_secs(5), events.next())
        .await
        .unwrap()
        .unwrap();
    match serde_json::from_slice::<RoomEvent>(&message.payload).unwrap() {
        RoomEvent::Standing {
            user_id,
            revision,
            standing,
            ..
        } => {
            assert_eq!(user_id, b);
            assert!(standing.blocked);
            assert!(revision > before.revision);
        }
        other => panic!("{other:?}"),
    }
    // A, who blocks, is not blocked.
    h.open_dm(&alice, b).await.unwrap();
    assert!(!h.standing(&room_id, a).await.blocked);

    let listed = h.blocks(a).await.unwrap();
    assert_eq!(listed.users, std::slice::from_ref(&bob));
    assert!(h.blocks(b).await.unwrap().users.is_empty());

    assert!(!h.unblock(a, b).await.unwrap().blocked);
    assert!(!h.unblock(a, b).await.unwrap().blocked, "idempotent");
    assert!(!h.standing(&room_id, b).await.blocked);
    h.open_dm(&bob, a).await.unwrap();
    assert!(h.blocks(a).await.unwrap().users.is_empty());

    assert_eq!(code(h.block(a, a).await), ErrorCode::BadRequest);
    assert_eq!(code(h.block(a, "no-such-user").await), ErrorCode::NotFound);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_block_before_any_direct_room_stops_it_being_opened() {
    let h = Harness::start(1).await;
    let alice = h.register("alice").await;
    let bob = h.register("bob").await;
    h.block(&alice.user_id, &bob.user_id).await.unwrap();
    assert_eq!(
        code(h.open_dm(&bob, &alice.user_id).await),
        ErrorCode::Forbidden
    );
    let room = h.open_dm(&alice, &bob.user_id).await.unwrap();
    assert!(h.standing(&room.room_id, &bob.user_id).await.blocked);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn my_rooms_lists_every_room_of_the_user_with_role_and_peer() {
    let h = Harness::start(1).await;
    let alice = h.register("alice").await;
    let bob = h.register("bob").await;
    let a = alice.user_id.as_str();
    let owned = h.create(a, "Mine").await.unwrap().room_id;
    let joined = h.create(&bob.user_id, "Bob's").await.unwrap().room_id;
    h.join(&joined, a).await.unwrap();
    let left = h.create(&bob.user_id, "Left").await.unwrap().room_id;
    h.join(&left, a).await.unwrap();
    h.leave(&left, a).await.unwrap();
    let dm = h.open_dm(&alice, &bob.user_id).await.unwrap().room_id;

    let mine = h.my_rooms(a).await.unwrap();
    assert_eq!(mine.next_cursor, None);
    let got: Vec<(&str, Role, Option<&str>)> = mine
        .rooms
        .iter()
        .map(|r| {
            (
                r.room.room_id.as_str(),
                r.role,
                r.peer.as_ref().map(|p| p.username.as_str()),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (owned.as_str(), Role::Owner, None),
            (joined.as_str(), Role::Member, None),
            (dm.as_str(), Role::Member, Some("bob")),
        ]
    );
    assert!(mine
        .rooms
        .iter()
        .all(|r| r.joined_at.len() == "2026-11-23T00:43:41.165Z".len()));
    assert_eq!(mine.rooms[1].room.member_count, 2);
    assert_eq!(mine.rooms[2].peer, Some(bob.clone()));

    // Paged.
    let first = h.my_rooms_page(a, 2, None).await.unwrap();
    assert_eq!(first.rooms.len(), 2);
    let rest = h
        .my_rooms_page(a, 2, first.next_cursor.as_deref())
        .await
        .unwrap();
    assert_eq!(rest.rooms.len(), 1);
    assert_eq!(rest.next_cursor, None);
    assert_eq!(
        code(h.my_rooms_page(a, 1001, None).await),
        ErrorCode::BadRequest
    );
    assert!(h.my_rooms("nobody").await.unwrap().rooms.is_empty());
    h.stop().await;
}
