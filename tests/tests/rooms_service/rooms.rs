//! Creating, reading and listing rooms, bad requests, and service discovery.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_get_and_list_in_pages() {
    let h = Harness::start(1).await;
    let mut events = h.membership_events().await;

    let first = h.create("owner1", "General").await.unwrap();
    assert_eq!(first.name, "General");
    assert_eq!(first.topic, "");
    assert_eq!(first.owner_id, "owner1");
    assert_eq!(first.member_count, 1);
    assert_eq!(first.created_at.len(), "2026-11-23T00:43:41.165Z".len());
    assert_eq!(h.get(&first.room_id).await.unwrap(), first);
    let event = next_event(&mut events).await;
    assert_eq!(
        event,
        MembershipEvent {
            room_id: first.room_id.clone(),
            user_id: "owner1".into(),
            username: "name-owner1".into(),
            joined: true,
            revision: event.revision,
            standing: event.standing,
        }
    );
    let standing = event.standing.expect("the event carries the standing");
    assert_eq!(standing.role, Some(dyschat_protocol::wire::Role::Owner));

    let with_topic: Room = h
        .call(
            subjects::rooms::CREATE,
            &CreateRoomRequest {
                owner_id: "owner2".into(),
                owner_name: "Owner2".into(),
                name: "Random".into(),
                topic: "anything goes".into(),
                visibility: Default::default(),
            },
        )
        .await
        .unwrap();
    assert_eq!(with_topic.topic, "anything goes");

    let mut created = vec![first.room_id, with_topic.room_id];
    for i in 0..5 {
        created.push(
            h.create("owner1", &format!("room {i}"))
                .await
                .unwrap()
                .room_id,
        );
    }

    // Pages of 3 walk all 7 rooms in creation order, each once.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let page = h.list(3, cursor.as_deref()).await.unwrap();
        pages += 1;
        assert!(page.rooms.len() <= 3);
        assert!(page.rooms.iter().all(|r| r.member_count == 1));
        seen.extend(page.rooms.into_iter().map(|r| r.room_id));
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, created);

    let all = h.list(100, None).await.unwrap();
    assert_eq!(all.rooms.len(), 7);
    assert_eq!(all.next_cursor, None);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_and_unknown_rooms() {
    let h = Harness::start(1).await;
    let room_id = h.create("owner", "General").await.unwrap().room_id;

    assert_eq!(code(h.list(0, None).await), ErrorCode::BadRequest);
    assert_eq!(code(h.list(101, None).await), ErrorCode::BadRequest);
    assert_eq!(code(h.list(10, Some("a.b")).await), ErrorCode::BadRequest);
    assert_eq!(code(h.create("owner", "").await), ErrorCode::BadRequest);
    assert_eq!(code(h.create("owner", "   ").await), ErrorCode::BadRequest);
    assert_eq!(
        code(h.create("owner", &"n".repeat(101)).await),
        ErrorCode::BadRequest
    );
    assert_eq!(
        code(h.create("bad id", "Room").await),
        ErrorCode::BadRequest
    );
    let long_topic: Result<Room, _> = h
        .call(
            subjects::rooms::CREATE,
            &CreateRoomRequest {
                owner_id: "owner".into(),
                owner_name: "Owner".into(),
                name: "Room".into(),
                topic: "t".repeat(501),
                visibility: Default::default(),
            },
        )
        .await;
    assert_eq!(code(long_topic), ErrorCode::BadRequest);
    assert_eq!(code(h.get("a.b").await), ErrorCode::BadRequest);
    assert_eq!(code(h.get("*").await), ErrorCode::BadRequest);
    assert_eq!(
        code(h.join(&room_id, "bad.user").await),
        ErrorCode::BadRequest
    );
    assert_eq!(code(h.join("a>b", "user").await), ErrorCode::BadRequest);

    let missing = dyschat_protocol::ids::new_id();
    let err = h.get(&missing).await.unwrap_err();
    assert_eq!(
        (err.code, err.message.as_str()),
        (ErrorCode::NotFound, "room not found")
    );
    assert_eq!(code(h.join(&missing, "user").await), ErrorCode::NotFound);
    assert_eq!(code(h.leave(&missing, "user").await), ErrorCode::NotFound);
    assert_eq!(code(h.members(&missing).await), ErrorCode::NotFound);
    // A body that is not a request at all.
    let raw = h
        .client
        .request(subjects::rooms::subject(subjects::rooms::GET), "[]".into())
        .await
        .unwrap();
    let raw: dyschat_protocol::wire::Reply<Room> = serde_json::from_slice(&raw.payload).unwrap();
    assert_eq!(code(Result::from(raw)), ErrorCode::BadRequest);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_service_is_discoverable() {
    let h = Harness::start(1).await;
    let endpoints = service_endpoints(&h.client, subjects::rooms::SERVICE)
        .await
        .unwrap();
    let seen: BTreeSet<&str> = endpoints.iter().map(String::as_str).collect();
    let expected: BTreeSet<String> = [
        subjects::rooms::CREATE,
        subjects::rooms::GET,
        subjects::rooms::LIST,
        subjects::rooms::JOIN,
        subjects::rooms::LEAVE,
        subjects::rooms::MEMBERS,
        subjects::rooms::ACCESS,
        subjects::rooms::UPDATE,
        subjects::rooms::DELETE,
        subjects::rooms::INVITE,
        subjects::rooms::UNINVITE,
        subjects::rooms::SET_ROLE,
        subjects::rooms::TRANSFER_OWNER,
        subjects::rooms::KICK,
        subjects::rooms::BAN,
        subjects::rooms::UNBAN,
        subjects::rooms::BANS,
        subjects::rooms::MY_ROOMS,
        subjects::rooms::OPEN_DM,
        subjects::rooms::BLOCK,
        subjects::rooms::UNBLOCK,
        subjects::rooms::BLOCKS,
        subjects::rooms::MENTIONS,
    ]
    .into_iter()
    .map(subjects::rooms::subject)
    .collect();
    assert_eq!(seen, expected.iter().map(String::as_str).collect());
    h.stop().await;
}
