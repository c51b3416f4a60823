//! `GET /api/v1/me/rooms` (exact unread counts, also with the writer stopped; most recent
//! activity first; the peer of a direct room), direct rooms used like any room, the user
//! directory and the room list's `q`.

use std::time::Duration;

use super::*;

async fn my_rooms(api: &Api, user: &LoggedIn) -> anyhow::Result<Vec<Value>> {
    let body = expect(api, user, "GET", "/api/v1/me/rooms", None, 200).await?;
    Ok(body["rooms"].as_array().context("rooms")?.clone())
}

fn unread_of(rooms: &[Value], room: &str) -> Option<u64> {
    rooms
        .iter()
        .find(|r| r["room_id"] == room)
        .and_then(|r| r["unread"].as_u64())
}

async fn post(api: &Api, user: &LoggedIn, room: &str, body: &str) -> anyhow::Result<u64> {
    let path = format!("/api/v1/rooms/{room}/messages");
    let message = expect(api, user, "POST", &path, Some(json!({"body": body})), 201).await?;
    message["seq"].as_u64().context("seq")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn my_rooms_count_unread_exactly_even_with_the_writer_stopped() -> anyhow::Result<()> {
    let mut s = Setup::start(2).await?;
    let alice = s.user("u_alice").await?;
    let bob = s.user("u_bob").await?;
    let older = create(s.api(), &alice, "older", "public").await?;
    let newer = create(s.api(), &alice, "newer", "private").await?;
    s.api().join_room(&bob.token, &older).await?;
    for n in 0..3 {
        post(&s.apis[1], &bob, &older, &format!("bob {n}")).await?;
    }
    for n in 0..2 {
        post(s.api(), &alice, &older, &format!("alice {n}")).await?;
    }
    let dm = expect(
        s.api(),
        &bob,
        "POST",
        "/api/v1/dms",
        Some(json!({"user_id": alice.user_id})),
        200,
    )
    .await?;
    let dm_id = dm["room_id"].as_str().context("dm")?.to_string();
    let last = post(&s.apis[1], &bob, &dm_id, "hello alice").await?;
    // Once the writer stored everything, and also before (the stream fills in): exact.
    let rooms = my_rooms(s.api(), &alice).await?;
    ensure!(rooms.len() == 3, "{rooms:?}");
    ensure!(unread_of(&rooms, &older) == Some(3), "{rooms:?}");
    ensure!(unread_of(&rooms, &newer) == Some(0), "{rooms:?}");
    ensure!(unread_of(&rooms, &dm_id) == Some(1), "{rooms:?}");
    let first = &rooms[0];
    ensure!(
        first["room_id"] == dm_id,
        "most recent activity first: {rooms:?}"
    );
    ensure!(
        first["room"]["room_id"] == dm_id && first["kind"] == "direct",
        "{first}"
    );
    ensure!(
        first["last_seq"] == last && first["last_message"]["body"] == "hello alice",
        "{first}"
    );
    ensure!(
        first["peer"]["user_id"] == bob.user_id && first["peer"]["username"] == "u_bob",
        "{first}"
    );
    ensure!(
        first["last_read_seq"] == 0 && first["mentions"] == 0 && first["role"] == "member",
        "{first}"
    );
    ensure!(
        rooms[1]["room_id"] == older && rooms[2]["room_id"] == newer,
        "{rooms:?}"
    );
    let bobs = my_rooms(&s.apis[1], &bob).await?;
    ensure!(unread_of(&bobs, &older) == Some(2), "{bobs:?}");
    ensure!(unread_of(&bobs, &dm_id) == Some(0), "{bobs:?}");
    // The writer stops: what the store lacks is counted from the stream.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let writer = s
        .mesh
        .services
        .iter()
        .position(|r| r.name == "msg-writer")
        .context("a writer")?;
    s.mesh.services.remove(writer).stop().await?;
    for n in 0..4 {
        post(&s.apis[1], &bob, &older, &format!("unstored {n}")).await?;
    }
    post(s.api(), &alice, &older, "mine, unstored").await?;
    let rooms = my_rooms(s.api(), &alice).await?;
    ensure!(unread_of(&rooms, &older) == Some(7), "{rooms:?}");
    ensure!(
        rooms[0]["room_id"] == older,
        "the newest activity: {rooms:?}"
    );
    let bobs = my_rooms(&s.apis[1], &bob).await?;
    ensure!(unread_of(&bobs, &older) == Some(3), "{bobs:?}");
    s.mesh.start_writer()?;
    s.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_direct_room_is_used_like_any_room() -> anyhow::Result<()> {
    let s = Setup::start(2).await?;
    let alice = s.user("d_alice").await?;
    let bob = s.user("d_bob").await?;
    let carol = s.user("d_carol").await?;
    let body = |user: &LoggedIn| Some(json!({"user_id": user.user_id}));
    let dm = expect(s.api(), &alice, "POST", "/api/v1/dms", body(&bob), 200).await?;
    let again = expect(&s.apis[1], &bob, "POST", "/api/v1/dms", body(&alice), 200).await?;
    ensure!(
        dm["room_id"] == again["room_id"] && dm["kind"] == "direct",
        "{dm} {again}"
    );
    let room = dm["room_id"].as_str().context("room_id")?.to_string();
    expect(s.api(), &alice, "POST", "/api/v1/dms", body(&alice), 400).await?;
    expect(
        s.api(),
        &alice,
        "POST",
        "/api/v1/dms",
        Some(json!({"user_id": "nobody"})),
        404,
    )
    .await?;
    // Send, live delivery across agents, history, and since.
    let mut a = s.ws(0, &alice).await?;
    let mut b = s.ws(1, &bob).await?;
    a.join(&room, None).await?;
    b.join(&room, None).await?;
    a.send(json!({"type": "send", "room_id": room, "body": "hi bob"}))
        .await?;
    let ack = a.recv_type("ack").await?;
    let got = b.recv_type("message").await?;
    ensure!(got["body"] == "hi bob" && got["seq"] == ack["seq"], "{got}");
    let seq = ack["seq"].as_u64().context("seq")?;
    post(&s.apis[1], &bob, &room, "hi alice").await?;
    let history = expect(
        s.api(),
        &alice,
        "GET",
        &format!("/api/v1/rooms/{room}/messages"),
        None,
        200,
    )
    .await?;
    ensure!(
        history["messages"].as_array().map(Vec::len) == Some(2),
        "{history}"
    );
    let mut later = s.ws(1, &alice).await?;
    let joined = later.join(&room, Some(seq)).await?;
    ensure!(joined["recovered"] == true, "{joined}");
    let replayed = later.recv_type("message").await?;
    ensure!(
        replayed["body"] == "hi alice" && replayed["prev_seq"] == seq,
        "{replayed}"
    );
    // Nobody else reads it, and it cannot be left or managed.
    expect(
        s.api(),
        &carol,
        "GET",
        &format!("/api/v1/rooms/{room}/messages"),
        None,
        404,
    )
    .await?;
    expect(
        s.api(),
        &alice,
        "POST",
        &format!("/api/v1/rooms/{room}/leave"),
        None,
        403,
    )
    .await?;
    expect(
        s.api(),
        &alice,
        "DELETE",
        &format!("/api/v1/rooms/{room}"),
        None,
        403,
    )
    .await?;
    // While bob blocks alice, she reads but does not post.
    expect(
        s.api(),
        &bob,
        "PUT",
        &format!("/api/v1/me/blocks/{}", alice.user_id),
        None,
        200,
    )
    .await?;
    let blocks = expect(s.api(), &bob, "GET", "/api/v1/me/blocks", None, 200).await?;
    ensure!(blocks["users"][0]["user_id"] == alice.user_id, "{blocks}");
    let mut status = 0;
    for _ in 0..20 {
        let (got, _) = s.apis[1]
            .call(
                "POST",
                &format!("/api/v1/rooms/{room}/messages"),
                Some(&alice.token),
                Some(json!({"body": "blocked?"})),
            )
            .await?;
        status = got;
        if got == 403 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    ensure!(status == 403, "a blocked user posts: {status}");
    expect(
        s.api(),
        &alice,
        "GET",
        &format!("/api/v1/rooms/{room}/messages"),
        None,
        200,
    )
    .await?;
    s.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn users_are_found_by_name_and_rooms_by_q() -> anyhow::Result<()> {
    let s = Setup::start(1).await?;
    let alice = s.user("Searchalice").await?;
    s.user("searchalfred").await?;
    s.user("otherbob").await?;
    let found = expect(
        s.api(),
        &alice,
        "GET",
        "/api/v1/users?q=SEARCHAL",
        None,
        200,
    )
    .await?;
    let names: Vec<&str> = found["users"]
        .as_array()
        .context("users")?
        .iter()
        .filter_map(|u| u["username"].as_str())
        .collect();
    ensure!(
        names.len() == 2 && names.contains(&"searchalfred"),
        "{found}"
    );
    let one = expect(
        s.api(),
        &alice,
        "GET",
        "/api/v1/users?q=search&limit=1",
        None,
        200,
    )
    .await?;
    ensure!(one["users"].as_array().map(Vec::len) == Some(1), "{one}");
    for bad in [
        "/api/v1/users?q=al&limit=0",
        "/api/v1/users?q=al&limit=51",
        "/api/v1/users?q=",
    ] {
        expect(s.api(), &alice, "GET", bad, None, 400).await?;
    }
    let (status, _) = s
        .api()
        .call("GET", "/api/v1/users?q=al", None, None)
        .await?;
    ensure!(status == 401, "unauthenticated search: {status}");
    let bob = s.user("roomlister").await?;
    create(s.api(), &alice, "Rust Lovers", "public").await?;
    create(s.api(), &alice, "gophers", "public").await?;
    create(s.api(), &alice, "secret rust", "private").await?;
    let list = expect(s.api(), &bob, "GET", "/api/v1/rooms?q=RUST", None, 200).await?;
    let names: Vec<&str> = list["rooms"]
        .as_array()
        .context("rooms")?
        .iter()
        .filter_map(|r| r["name"].as_str())
        .collect();
    ensure!(names == ["Rust Lovers"], "{list}");
    let mine = expect(s.api(), &alice, "GET", "/api/v1/rooms?q=rust", None, 200).await?;
    ensure!(
        mine["rooms"].as_array().map(Vec::len) == Some(2),
        "members see private rooms: {mine}"
    );
    s.stop().await
}
