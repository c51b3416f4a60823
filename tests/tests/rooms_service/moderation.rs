//! Running a room's people: roles, ownership, kicks and bans, and the events each sends.

use super::*;

use dyschat_protocol::wire::{Role, RoomEvent};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roles_are_set_by_the_owner_on_members_only() {
    let h = Harness::start(1).await;
    let room_id = h.create("owner", "General").await.unwrap().room_id;
    h.join(&room_id, "mod").await.unwrap();
    h.join(&room_id, "bob").await.unwrap();
    let mut events = room_events(&h, &room_id).await;

    let set = h
        .set_role(&room_id, "owner", "mod", Role::Moderator)
        .await
        .unwrap();
    assert_eq!((set.user_id.as_str(), set.role), ("mod", Role::Moderator));
    let access = h.access(&room_id, "mod").await.unwrap();
    assert_eq!(access.role, Some(Role::Moderator));
    match next_room_event(&mut events).await {
        RoomEvent::MemberRole {
            user_id,
            username,
            role,
            revision,
            standing,
            ..
        } => {
            assert_eq!(
                (user_id.as_str(), username.as_str(), role),
                ("mod", "name-mod", Role::Moderator)
            );
            assert_eq!(revision, access.revision);
            assert_eq!(standing, access.standing);
        }
        other => panic!("{other:?}"),
    }
    // The member list shows roles.
    let roles: Vec<(String, Role)> = h
        .members(&room_id)
        .await
        .unwrap()
        .members
        .into_iter()
        .map(|m| (m.user_id, m.role))
        .collect();
    assert!(
        roles.contains(&("mod".to_string(), Role::Moderator)),
        "{roles:?}"
    );
    assert!(roles.contains(&("owner".to_string(), Role::Owner)));

    assert_eq!(
        code(h.set_role(&room_id, "owner", "bob", Role::Owner).await),
        ErrorCode::BadRequest
    );
    assert_eq!(
        code(
            h.set_role(&room_id, "owner", "nobody", Role::Moderator)
                .await
        ),
        ErrorCode::BadRequest
    );
    assert_eq!(
        code(h.set_role(&room_id, "owner", "owner", Role::Member).await),
        ErrorCode::Forbidden
    );
    assert_eq!(
        code(h.set_role(&room_id, "mod", "bob", Role::Moderator).await),
        ErrorCode::Forbidden
    );
    // The same role again changes nothing and sends nothing.
    h.set_role(&room_id, "owner", "mod", Role::Moderator)
        .await
        .unwrap();
    h.set_role(&room_id, "owner", "mod", Role::Member)
        .await
        .unwrap();
    match next_room_event(&mut events).await {
        RoomEvent::MemberRole { user_id, role, .. } => {
            assert_eq!((user_id.as_str(), role), ("mod", Role::Member))
        }
        other => panic!("{other:?}"),
    }
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ownership_passes_to_a_member_and_the_old_owner_becomes_a_moderator() {
    let h = Harness::start(1).await;
    let room_id = h.create("alice", "General").await.unwrap().room_id;
    h.join(&room_id, "bob").await.unwrap();
    let mut events = room_events(&h, &room_id).await;

    assert_eq!(
        code(h.transfer(&room_id, "alice", "carol").await),
        ErrorCode::BadRequest
    );
    assert_eq!(
        code(h.transfer(&room_id, "bob", "bob").await),
        ErrorCode::Forbidden
    );
    let room = h.transfer(&room_id, "alice", "bob").await.unwrap();
    assert_eq!(room.owner_id, "bob");
    assert_eq!(h.get(&room_id).await.unwrap().owner_id, "bob");
    assert_eq!(
        h.access(&room_id, "bob").await.unwrap().role,
        Some(Role::Owner)
    );
    assert_eq!(
        h.access(&room_id, "alice").await.unwrap().role,
        Some(Role::Moderator)
    );
    // Two member_role events (the new owner's, the old owner's), then the updated room.
    let mut roles = Vec::new();
    for _ in 0..3 {
        match next_room_event(&mut events).await {
            RoomEvent::MemberRole { user_id, role, .. } => roles.push((user_id, role)),
            RoomEvent::RoomUpdated {
                room,
                room_revision,
            } => {
                assert_eq!(room.owner_id, "bob");
                assert_eq!(
                    room_revision,
                    h.access(&room_id, "bob").await.unwrap().room_revision
                );
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(
        roles,
        [
            ("bob".to_string(), Role::Owner),
            ("alice".to_string(), Role::Moderator)
        ]
    );
    // Now alice may leave and bob may not.
    assert_eq!(code(h.leave(&room_id, "bob").await), ErrorCode::Conflict);
    assert!(h.leave(&room_id, "alice").await.unwrap().changed);
    // The old owner, a moderator now, cannot act as owner.
    h.join(&room_id, "alice").await.unwrap();
    assert_eq!(
        code(h.delete(&room_id, "alice").await),
        ErrorCode::Forbidden
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kicks_need_a_higher_role_and_a_kicked_user_may_come_back() {
    let h = Harness::start(1).await;
    let room_id = h.create("owner", "General").await.unwrap().room_id;
    for user in ["mod1", "mod2", "bob"] {
        h.join(&room_id, user).await.unwrap();
    }
    for m in ["mod1", "mod2"] {
        h.set_role(&room_id, "owner", m, Role::Moderator)
            .await
            .unwrap();
    }
    let mut membership = h
        .client
        .subscribe(subjects::membership(&room_id))
        .await
        .unwrap();
    h.client.flush().await.unwrap();

    assert_eq!(
        code(h.kick(&room_id, "mod1", "mod2", "").await),
        ErrorCode::Forbidden
    );
    assert_eq!(
        code(h.kick(&room_id, "mod1", "owner", "").await),
        ErrorCode::Forbidden
    );
    assert_eq!(
        code(h.kick(&room_id, "bob", "mod1", "").await),
        ErrorCode::Forbidden
    );
    assert_eq!(
        code(h.kick(&room_id, "mod1", "bob", &"r".repeat(501)).await),
        ErrorCode::BadRequest
    );
    let kicked = h.kick(&room_id, "mod1", "bob", "calm down").await.unwrap();
    assert!(!kicked.joined);
    assert_eq!(h.access(&room_id, "bob").await.unwrap().role, None);
    assert_eq!(h.get(&room_id).await.unwrap().member_count, 3);
    let event = next_event(&mut membership).await;
    assert_eq!((event.user_id.as_str(), event.joined), ("bob", false));
    assert_eq!(
        event.revision,
        h.access(&room_id, "bob").await.unwrap().revision
    );
    // The owner outranks moderators.
    h.kick(&room_id, "owner", "mod2", "").await.unwrap();
    // Kicking someone who is not a member changes nothing.
    assert!(!h.kick(&room_id, "owner", "mod2", "").await.unwrap().joined);
    // A kicked user may join a public room again.
    assert!(h.join(&room_id, "bob").await.unwrap().changed);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ban_kicks_refuses_until_lifted_and_is_listed() {
    let h = Harness::start(1).await;
    let owner = h.user("owner").await;
    let bob = h.user("bob").await;
    let carol = h.user("carol").await;
    let room_id = h.create(&owner, "General").await.unwrap().room_id;
    h.join(&room_id, &bob).await.unwrap();

    let banned = h.ban(&room_id, &owner, &bob, "spam").await.unwrap();
    assert!(banned.banned);
    let s = h.standing(&room_id, &bob).await;
    assert!(s.banned && s.role.is_none());
    assert_eq!(code(h.join(&room_id, &bob).await), ErrorCode::Forbidden);
    let req = MembersRequest {
        room_id: room_id.clone(),
        limit: 0,
        cursor: None,
        user_id: bob.clone(),
    };
    assert_eq!(
        code(
            h.call::<_, MemberList>(subjects::rooms::MEMBERS, &req)
                .await
        ),
        ErrorCode::Forbidden
    );
    // Still sees the public room.
    h.get_as(&room_id, &bob).await.unwrap();
    // Someone who never joined can be banned too; an unknown user cannot.
    h.ban(&room_id, &owner, &carol, "").await.unwrap();
    assert_eq!(
        code(h.ban(&room_id, &owner, "no-such-user", "").await),
        ErrorCode::NotFound
    );

    let bans = h.bans(&room_id, &owner).await.unwrap();
    let listed: Vec<(&str, &str, &str, &str)> = bans
        .bans
        .iter()
        .map(|b| {
            (
                b.user_id.as_str(),
                b.username.as_str(),
                b.by.as_str(),
                b.reason.as_str(),
            )
        })
        .collect();
    // A member's name is the one they joined with; anyone else's is looked up.
    let bob_name = format!("name-{bob}");
    assert_eq!(
        listed,
        [
            (bob.as_str(), bob_name.as_str(), owner.as_str(), "spam"),
            (carol.as_str(), "carol", owner.as_str(), "")
        ]
    );
    assert!(bans
        .bans
        .iter()
        .all(|b| b.at.len() == "2026-11-23T00:43:41.165Z".len()));
    assert_eq!(bans.next_cursor, None);

    assert!(!h.unban(&room_id, &owner, &bob).await.unwrap().banned);
    assert!(
        !h.unban(&room_id, &owner, &bob).await.unwrap().banned,
        "idempotent"
    );
    assert!(!h.standing(&room_id, &bob).await.banned);
    assert!(h.join(&room_id, &bob).await.unwrap().changed);
    assert_eq!(h.bans(&room_id, &owner).await.unwrap().bans.len(), 1);
    h.stop().await;
}
