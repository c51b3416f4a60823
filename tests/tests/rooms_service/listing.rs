//! The room list: who sees which rooms, `q`, and the bounded scan behind a page.

use super::*;

/// Every room of the list as `user` sees it with `q`, page after page of `limit`.
async fn list_all(h: &Harness, user: &str, q: Option<&str>, limit: usize) -> (Vec<Room>, usize) {
    let mut rooms = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let page = h.list_as(user, limit, cursor.as_deref(), q).await.unwrap();
        pages += 1;
        assert!(page.rooms.len() <= limit);
        rooms.extend(page.rooms);
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
        assert!(pages < 1000, "paging does not end");
    }
    (rooms, pages)
}

fn names(rooms: &[Room]) -> Vec<&str> {
    rooms.iter().map(|r| r.name.as_str()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_rooms_are_listed_to_members_and_invitees_only() {
    let h = Harness::start(1).await;
    let owner = h.user("owner").await;
    let bob = h.user("bob").await;
    let carol = h.user("carol").await;
    let dave = h.user("dave").await;
    h.create(&owner, "public").await.unwrap();
    let secret = h.create_private(&owner, "secret").await.room_id;
    let invited = h.create_private(&owner, "invited").await.room_id;
    let gone = h.create(&owner, "gone").await.unwrap().room_id;
    h.invite(&secret, &owner, &bob).await.unwrap();
    h.join(&secret, &bob).await.unwrap();
    h.invite(&invited, &owner, &carol).await.unwrap();
    h.invite(&invited, &owner, &dave).await.unwrap();
    h.ban(&invited, &owner, &dave, "").await.unwrap();
    h.delete(&gone, &owner).await.unwrap();
    let peer = h.register("peer").await;
    h.open_dm(&peer, &owner).await.unwrap();

    let hr = &h;
    let seen =
        |user: String| async move { names(&list_all(hr, &user, None, 10).await.0).join(",") };
    assert_eq!(seen(owner.clone()).await, "public,secret,invited");
    assert_eq!(seen(bob).await, "public,secret", "a member");
    assert_eq!(seen(carol).await, "public,invited", "an invitee");
    assert_eq!(seen(dave).await, "public", "a banned invitee");
    assert_eq!(seen(OBSERVER.to_string()).await, "public");
    assert_eq!(
        code(h.list_as("", 10, None, None).await),
        ErrorCode::BadRequest
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn q_keeps_rooms_whose_name_holds_it_ignoring_case() {
    let h = Harness::start(1).await;
    for name in ["Rust Lovers", "rustaceans", "Go", "TRUST", "Été à Paris"] {
        h.create("owner", name).await.unwrap();
    }
    let hr = &h;
    let found = |q: &'static str| async move {
        names(&list_all(hr, OBSERVER, Some(q), 2).await.0).join(",")
    };
    assert_eq!(found("rust").await, "Rust Lovers,rustaceans,TRUST");
    assert_eq!(found("LOVER").await, "Rust Lovers");
    assert_eq!(found("été").await, "Été à Paris");
    assert_eq!(found("ÉTÉ").await, "Été à Paris");
    assert_eq!(found("nothing").await, "");
    assert_eq!(
        found("").await,
        "Rust Lovers,rustaceans,Go,TRUST,Été à Paris"
    );
    assert_eq!(
        code(h.list_as(OBSERVER, 10, None, Some(&"q".repeat(101))).await),
        ErrorCode::BadRequest
    );
    // A renamed room is found by its new name.
    let go = h
        .list_as(OBSERVER, 10, None, Some("go"))
        .await
        .unwrap()
        .rooms
        .remove(0);
    let changes = dyschat_protocol::wire::UpdateRoomBody {
        name: Some("Golang".into()),
        ..Default::default()
    };
    h.update(&go.room_id, "owner", changes).await.unwrap();
    assert_eq!(found("lang").await, "Golang");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_request_scans_a_bounded_stretch_and_the_cursor_goes_on() {
    let h = Harness::start_with(
        1,
        &[
            ("DYSCHAT_ROOMS_LIST_SCAN", "40"),
            ("DYSCHAT_MAX_ROOMS_PER_USER", "1000"),
        ],
    )
    .await;
    for i in 0..150 {
        let name = if i == 120 {
            "needle".to_string()
        } else {
            format!("hay {i}")
        };
        h.create("owner", &name).await.unwrap();
    }
    // The first requests find nothing within their stretch, but say where to go on.
    let first = h.list_as(OBSERVER, 10, None, Some("needle")).await.unwrap();
    assert!(first.rooms.is_empty());
    assert!(first.next_cursor.is_some(), "not the end yet");
    let (rooms, pages) = list_all(&h, OBSERVER, Some("needle"), 10).await;
    assert_eq!(names(&rooms), ["needle"]);
    assert!(pages >= 4, "{pages} pages for 150 rooms at 40 a request");
    // Without q, pages are full.
    let (all, pages) = list_all(&h, OBSERVER, None, 50).await;
    assert_eq!(all.len(), 150);
    assert_eq!(pages, 3);
    h.stop().await;
}
