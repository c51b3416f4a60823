//! Paged listings: a room's members (thousands, with leavers' markers in between), the page
//! limits and cursors, who is online on a page, and the room list.

use super::*;

use dyschat_protocol::wire::Member;

/// Every member of the room, page after page of `limit`, and how many pages it took.
async fn page_through(h: &Harness, room_id: &str, limit: usize) -> (Vec<Member>, usize) {
    let mut members = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let page = h
            .members_page(room_id, limit, cursor.as_deref())
            .await
            .unwrap();
        pages += 1;
        assert!(page.members.len() <= limit);
        members.extend(page.members);
        match page.next_cursor {
            Some(next) => {
                dyschat_protocol::ids::validate_id("cursor", &next).unwrap();
                cursor = Some(next);
            }
            None => break,
        }
        assert!(pages < 100, "paging does not end");
    }
    (members, pages)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_members_page_through_once_each() {
    let h = Harness::start(1).await;
    let room_id = h.create("owner", "Big").await.unwrap().room_id;
    h.join_many(&room_id, "m", 2599).await;
    // 100 leave, so their delete markers lie between the records the pages read.
    for i in (0..2599).step_by(26).take(100) {
        assert!(h.leave(&room_id, &format!("m{i}")).await.unwrap().changed);
    }
    assert_eq!(h.get(&room_id).await.unwrap().member_count, 2500);

    let (members, pages) = page_through(&h, &room_id, 1000).await;
    assert_eq!(members.len(), 2500);
    let ids: BTreeSet<&str> = members.iter().map(|m| m.user_id.as_str()).collect();
    assert_eq!(ids.len(), 2500, "a member listed twice");
    assert!(ids.contains("owner") && !ids.contains("m0") && ids.contains("m1"));
    assert!((3..=4).contains(&pages), "{pages} pages");
    // The owner joined first, so the first page starts with them.
    assert_eq!(members[0].user_id, "owner");
    assert_eq!(members[0].role, dyschat_protocol::wire::Role::Owner);
    assert!(members[1..]
        .iter()
        .all(|m| m.role == dyschat_protocol::wire::Role::Member && !m.online));

    // Smaller pages see the same members in the same order.
    let (small, _) = page_through(&h, &room_id, 333).await;
    let order = |ms: &[Member]| ms.iter().map(|m| m.user_id.clone()).collect::<Vec<_>>();
    assert_eq!(order(&small), order(&members));

    // A caller sending only {room_id} gets the first page of the default size.
    let first = h.members(&room_id).await.unwrap();
    assert_eq!(first.members.len(), 1000);
    assert!(first.next_cursor.is_some());
    assert_eq!(order(&first.members), order(&members[..1000]));
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_small_room_with_many_leavers_still_lists_its_members() {
    // Few members but more than a thousand leavers' markers: more keys than one snapshot read
    // may return, so the page is read from the stream instead.
    let h = Harness::start(1).await;
    let room_id = h.create("owner", "Churn").await.unwrap().room_id;
    h.join_many(&room_id, "gone", 1100).await;
    let leaves: Vec<_> = futures::stream::iter(0..1100)
        .map(|i| {
            let room_id = &room_id;
            let h = &h;
            async move { h.leave(room_id, &format!("gone{i}")).await }
        })
        .buffer_unordered(32)
        .collect()
        .await;
    assert!(leaves.into_iter().all(|r| r.unwrap().changed));
    h.join(&room_id, "stayer").await.unwrap();
    assert_eq!(h.get(&room_id).await.unwrap().member_count, 2);

    let (members, _) = page_through(&h, &room_id, 1000).await;
    let ids: Vec<&str> = members.iter().map(|m| m.user_id.as_str()).collect();
    assert_eq!(ids, ["owner", "stayer"]);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_and_cursors_are_checked() {
    let h = Harness::start(1).await;
    let room_id = h.create("owner", "General").await.unwrap().room_id;
    h.join_many(&room_id, "u", 4).await;

    assert_eq!(
        code(h.members_page(&room_id, 1001, None).await),
        ErrorCode::BadRequest
    );
    // 0, like a missing limit, is the default page.
    let all = h.members_page(&room_id, 0, None).await.unwrap();
    assert_eq!((all.members.len(), all.next_cursor), (5, None));
    let max = h.members_page(&room_id, 1000, None).await.unwrap();
    assert_eq!((max.members.len(), max.next_cursor), (5, None));

    let one = h.members_page(&room_id, 1, None).await.unwrap();
    assert_eq!(one.members.len(), 1);
    let cursor = one.next_cursor.expect("more follow");
    let rest = h.members_page(&room_id, 10, Some(&cursor)).await.unwrap();
    assert_eq!((rest.members.len(), rest.next_cursor), (4, None));
    // An exact fit has no next page.
    let four = h.members_page(&room_id, 4, Some(&cursor)).await.unwrap();
    assert_eq!((four.members.len(), four.next_cursor), (4, None));

    for bad in ["a.b", "not-a-cursor", "*"] {
        assert_eq!(
            code(h.members_page(&room_id, 10, Some(bad)).await),
            ErrorCode::BadRequest,
            "{bad}"
        );
    }
    // A cursor past the end is an empty last page.
    let past = h.members_page(&room_id, 10, Some("999999")).await.unwrap();
    assert_eq!((past.members.len(), past.next_cursor), (0, None));
    let missing = dyschat_protocol::ids::new_id();
    assert_eq!(
        code(h.members_page(&missing, 10, None).await),
        ErrorCode::NotFound
    );
    assert_eq!(
        code(h.members_page("a.b", 10, None).await),
        ErrorCode::BadRequest
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_page_shows_who_of_it_is_online() {
    let h = Harness::start(1).await;
    let room_id = h.create("u0", "General").await.unwrap().room_id;
    for i in 1..6 {
        h.join(&room_id, &format!("u{i}")).await.unwrap();
    }
    let js = async_nats::jetstream::new(h.client.clone());
    let presence = topology::ensure_bucket(&js, topology::presence_bucket(&Default::default()))
        .await
        .unwrap();
    // u1 on two agents, u3 on one, u4 closed its socket, someone outside the room is online.
    for key in [
        "u1.agent1",
        "u1.agent2",
        "u3.agent1",
        "u4.agent1",
        "x.agent1",
    ] {
        presence.put(key, "1".into()).await.unwrap();
    }
    presence.delete("u4.agent1").await.unwrap();
    presence.delete("u1.agent1").await.unwrap();

    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = h
            .members_page(&room_id, 2, cursor.as_deref())
            .await
            .unwrap();
        seen.extend(page.members.into_iter().map(|m| (m.user_id, m.online)));
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    let expected: Vec<(String, bool)> = [
        ("u0", false),
        ("u1", true),
        ("u2", false),
        ("u3", true),
        ("u4", false),
        ("u5", false),
    ]
    .into_iter()
    .map(|(u, o)| (u.to_string(), o))
    .collect();
    assert_eq!(seen, expected);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_room_list_pages_its_index_in_creation_order() {
    let h = Harness::start(1).await;
    let mut created = Vec::new();
    for i in 0..120 {
        created.push(
            h.create(&format!("o{}", i % 7), &format!("room {i}"))
                .await
                .unwrap()
                .room_id,
        );
    }
    // Joins rewrite nothing the list orders by.
    h.join(&created[0], "someone").await.unwrap();

    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let page = h.list(50, cursor.as_deref()).await.unwrap();
        pages += 1;
        assert!(page.rooms.len() <= 50);
        for room in &page.rooms {
            let expected = if room.room_id == created[0] { 2 } else { 1 };
            assert_eq!(room.member_count, expected, "{}", room.name);
        }
        seen.extend(page.rooms.into_iter().map(|r| r.room_id));
        match page.next_cursor {
            Some(next) => {
                dyschat_protocol::ids::validate_id("cursor", &next).unwrap();
                cursor = Some(next);
            }
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, created);
    assert_eq!(
        code(h.list(10, Some("not-a-cursor")).await),
        ErrorCode::BadRequest
    );
    let past = h.list(10, Some("999999")).await.unwrap();
    assert!(past.rooms.is_empty() && past.next_cursor.is_none());
    h.stop().await;
}
