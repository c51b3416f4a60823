//! The HTTP API of the contract: auth, rooms, messages, and their errors.

use std::collections::HashSet;

use anyhow::{ensure, Context};
use dyschat_tests::client::{Api, WsClient};
use dyschat_tests::mesh::Mesh;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn registration_login_and_their_errors() -> anyhow::Result<()> {
    let mesh = Mesh::start(1).await?;
    let api = Api::new(mesh.agent(0).http());
    let reg = |u: &str, p: &str| json!({"username": u, "password": p});

    let (status, body) = api
        .call(
            "POST",
            "/api/v1/auth/register",
            None,
            Some(reg("Alice", "password1")),
        )
        .await?;
    ensure!(
        status == 201 && body["username"] == "Alice" && body["user_id"].is_string(),
        "{status} {body}"
    );
    let user_id = body["user_id"].clone();

    for (case, body) in [
        ("short name", reg("al", "password1")),
        ("bad char", reg("al ice", "password1")),
        ("long name", reg(&"a".repeat(33), "password1")),
        ("short password", reg("bobby", "short")),
        ("long password", reg("bobby", &"p".repeat(129))),
        ("missing password", json!({"username": "bobby"})),
        ("not json", json!("text")),
    ] {
        let (status, b) = api
            .call("POST", "/api/v1/auth/register", None, Some(body))
            .await?;
        ensure!(
            status == 400 && b["error"]["code"] == "bad_request",
            "{case}: {status} {b}"
        );
        ensure!(b["error"]["message"].is_string(), "{case}: {b}");
    }
    let (status, b) = api
        .call(
            "POST",
            "/api/v1/auth/register",
            None,
            Some(reg("ALICE", "password2")),
        )
        .await?;
    ensure!(
        status == 409 && b["error"]["code"] == "username_taken",
        "{status} {b}"
    );

    let (status, b) = api
        .call(
            "POST",
            "/api/v1/auth/login",
            None,
            Some(reg("alice", "password1")),
        )
        .await?;
    ensure!(status == 200, "login ignoring case: {status} {b}");
    ensure!(
        b["token_type"] == "Bearer" && b["user_id"] == user_id && b["username"] == "Alice",
        "{b}"
    );
    let expires = b["expires_at"].as_str().context("expires_at")?;
    ensure!(expires.len() == 24 && expires.ends_with('Z'), "{expires}");
    let token = b["token"].as_str().context("token")?.to_string();

    for (case, body) in [
        ("wrong password", reg("Alice", "password2")),
        ("unknown user", reg("nobody", "password1")),
    ] {
        let (status, b) = api
            .call("POST", "/api/v1/auth/login", None, Some(body))
            .await?;
        ensure!(
            status == 401 && b["error"]["code"] == "unauthorized",
            "{case}: {status} {b}"
        );
    }
    let (status, b) = api
        .call(
            "POST",
            "/api/v1/auth/login",
            None,
            Some(json!({"username": 1})),
        )
        .await?;
    ensure!(status == 400, "{status} {b}");

    let (status, b) = api.call("GET", "/api/v1/me", Some(&token), None).await?;
    ensure!(
        status == 200 && b["user_id"] == user_id && b["username"] == "Alice",
        "{status} {b}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_concurrent_registrations_of_one_name_give_one_success() -> anyhow::Result<()> {
    let mesh = Mesh::start(2).await?;
    let mut tasks = Vec::new();
    for i in 0..20 {
        let api = Api::new(mesh.agent(i % 2).http());
        let name = if i % 2 == 0 { "Racer" } else { "racer" };
        tasks.push(tokio::spawn(async move {
            api.call(
                "POST",
                "/api/v1/auth/register",
                None,
                Some(json!({"username": name, "password": format!("password{i}")})),
            )
            .await
        }));
    }
    let mut created = 0;
    for t in tasks {
        let (status, body) = t.await??;
        match status {
            201 => created += 1,
            409 => ensure!(body["error"]["code"] == "username_taken", "{body}"),
            other => anyhow::bail!("unexpected {other} {body}"),
        }
    }
    ensure!(created == 1, "{created} registrations succeeded");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn room_lifecycle_and_authorization() -> anyhow::Result<()> {
    let mesh = Mesh::start(1).await?;
    let api = Api::new(mesh.agent(0).http());
    let owner = api.register_and_login("owner").await?;
    let other = api.register_and_login("other").await?;
    let t = Some(owner.token.as_str());
    let o = Some(other.token.as_str());

    let (status, room) = api
        .call(
            "POST",
            "/api/v1/rooms",
            t,
            Some(json!({"name": "lobby", "topic": "hi"})),
        )
        .await?;
    ensure!(status == 201, "{status} {room}");
    ensure!(
        room["name"] == "lobby"
            && room["topic"] == "hi"
            && room["owner_id"] == json!(owner.user_id),
        "{room}"
    );
    ensure!(
        room["member_count"] == 1
            && room["created_at"]
                .as_str()
                .is_some_and(|s| s.ends_with('Z')),
        "{room}"
    );
    let id = room["room_id"].as_str().context("room_id")?.to_string();
    let (_, r2) = api
        .call("POST", "/api/v1/rooms", t, Some(json!({"name": "second"})))
        .await?;
    ensure!(r2["topic"] == "", "{r2}");

    for (case, body) in [
        ("empty name", json!({"name": ""})),
        ("long name", json!({"name": "n".repeat(101)})),
        ("long topic", json!({"name": "x", "topic": "t".repeat(501)})),
        ("no name", json!({})),
    ] {
        let (status, b) = api.call("POST", "/api/v1/rooms", t, Some(body)).await?;
        ensure!(
            status == 400 && b["error"]["code"] == "bad_request",
            "{case}: {status} {b}"
        );
    }
    let (status, _) = api
        .call("POST", "/api/v1/rooms", None, Some(json!({"name": "x"})))
        .await?;
    ensure!(status == 401);

    // Listing with a cursor walks every room once.
    for n in 0..5 {
        api.create_room(&other.token, &format!("extra {n}")).await?;
    }
    let mut seen = HashSet::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/v1/rooms?limit=3&cursor={c}"),
            None => "/api/v1/rooms?limit=3".to_string(),
        };
        let (status, page) = api.call("GET", &path, o, None).await?;
        ensure!(status == 200, "{status} {page}");
        let rooms = page["rooms"].as_array().context("rooms")?;
        ensure!(rooms.len() <= 3);
        for r in rooms {
            ensure!(
                seen.insert(r["room_id"].as_str().context("id")?.to_string()),
                "room listed twice"
            );
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    ensure!(seen.len() == 7, "listed {} rooms", seen.len());
    let (status, _) = api.call("GET", "/api/v1/rooms?limit=0", o, None).await?;
    ensure!(status == 400);
    let (status, _) = api.call("GET", "/api/v1/rooms", None, None).await?;
    ensure!(status == 401);

    // Unknown rooms are 404 on every room route.
    for (method, path) in [
        ("GET", ""),
        ("POST", "/join"),
        ("POST", "/leave"),
        ("GET", "/members"),
        ("GET", "/messages"),
    ] {
        let (status, b) = api
            .call(method, &format!("/api/v1/rooms/NOSUCHROOM{path}"), o, None)
            .await?;
        ensure!(
            status == 404 && b["error"]["code"] == "not_found",
            "{method} {path}: {status} {b}"
        );
    }
    let (status, _) = api
        .call(
            "POST",
            "/api/v1/rooms/NOSUCHROOM/messages",
            o,
            Some(json!({"body": "x"})),
        )
        .await?;
    ensure!(status == 404);

    // Non-members: 403 over HTTP, forbidden over WebSocket.
    for (method, path, body) in [
        ("GET", "members", None),
        ("GET", "messages", None),
        ("POST", "messages", Some(json!({"body": "hi"}))),
    ] {
        let (status, b) = api
            .call(method, &format!("/api/v1/rooms/{id}/{path}"), o, body)
            .await?;
        ensure!(
            status == 403 && b["error"]["code"] == "forbidden",
            "{method} {path}: {status} {b}"
        );
    }
    let mut ws = WsClient::connect(&mesh.agent(0).ws(), &other.token).await?;
    for frame in [
        json!({"type": "send", "room_id": id, "body": "hi", "ref": "s"}),
        json!({"type": "history", "room_id": id, "ref": "s"}),
        json!({"type": "typing", "room_id": id, "ref": "s"}),
    ] {
        ws.send(frame.clone()).await?;
        let e = ws.recv_type("error").await?;
        ensure!(e["code"] == "forbidden" && e["ref"] == "s", "{frame}: {e}");
    }
    let (status, got) = api
        .call("GET", &format!("/api/v1/rooms/{id}"), o, None)
        .await?;
    ensure!(
        status == 200 && got["room_id"] == json!(id),
        "rooms are public: {got}"
    );

    // Join (idempotent), then member routes work, with presence.
    for _ in 0..2 {
        let (status, b) = api
            .call("POST", &format!("/api/v1/rooms/{id}/join"), o, None)
            .await?;
        ensure!(
            status == 200 && b == json!({"room_id": id, "joined": true}),
            "{status} {b}"
        );
    }
    let (_, got) = api
        .call("GET", &format!("/api/v1/rooms/{id}"), o, None)
        .await?;
    ensure!(got["member_count"] == 2, "{got}");
    let (status, b) = api
        .call("GET", &format!("/api/v1/rooms/{id}/members"), o, None)
        .await?;
    ensure!(status == 200, "{status} {b}");
    let members = b["members"].as_array().context("members")?;
    ensure!(members.len() == 2, "{b}");
    let other_entry = members
        .iter()
        .find(|m| m["user_id"] == json!(other.user_id))
        .context("other listed")?;
    ensure!(
        other_entry["username"] == "other" && other_entry["online"] == true,
        "ws open, so online: {b}"
    );
    let owner_entry = members
        .iter()
        .find(|m| m["user_id"] == json!(owner.user_id))
        .context("owner listed")?;
    ensure!(owner_entry["online"] == false, "owner has no socket: {b}");

    let (status, m) = api
        .call(
            "POST",
            &format!("/api/v1/rooms/{id}/messages"),
            o,
            Some(json!({"body": "hello"})),
        )
        .await?;
    ensure!(
        status == 201 && m["body"] == "hello" && m["prev_seq"] == 0 && m["sender_name"] == "other",
        "{status} {m}"
    );
    let (status, m2) = api
        .call(
            "POST",
            &format!("/api/v1/rooms/{id}/messages"),
            t,
            Some(json!({"body": "again"})),
        )
        .await?;
    ensure!(status == 201 && m2["prev_seq"] == m["seq"], "{status} {m2}");
    for (case, body) in [
        ("empty", json!({"body": ""})),
        ("long", json!({"body": "b".repeat(4001)})),
    ] {
        let (status, _) = api
            .call(
                "POST",
                &format!("/api/v1/rooms/{id}/messages"),
                t,
                Some(body),
            )
            .await?;
        ensure!(status == 400, "{case}");
    }
    for bad in ["limit=0", "limit=101", "before=1&after=1", "before=x"] {
        let (status, _) = api
            .call(
                "GET",
                &format!("/api/v1/rooms/{id}/messages?{bad}"),
                t,
                None,
            )
            .await?;
        ensure!(status == 400, "{bad}: {status}");
    }

    // Leave (idempotent): access is gone again.
    for _ in 0..2 {
        let (status, b) = api
            .call("POST", &format!("/api/v1/rooms/{id}/leave"), o, None)
            .await?;
        ensure!(
            status == 200 && b == json!({"room_id": id, "joined": false}),
            "{status} {b}"
        );
    }
    let (status, _) = api
        .call("GET", &format!("/api/v1/rooms/{id}/messages"), o, None)
        .await?;
    ensure!(status == 403, "left member still reads: {status}");
    Ok(())
}

/// An HTTP post's `prev_seq` is the previous message of its own room, even with other rooms'
/// messages in between (the stream's sequence is shared) and with no socket joined anywhere; a
/// retry answers the first message with its position, also after the room moved on.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn posted_messages_know_their_place_in_their_room() -> anyhow::Result<()> {
    let mesh = Mesh::start(2).await?;
    let apis = [
        Api::new(mesh.agent(0).http()),
        Api::new(mesh.agent(1).http()),
    ];
    let user = apis[0].register_and_login("poster").await?;
    let rooms = [
        apis[0].create_room(&user.token, "one").await?,
        apis[0].create_room(&user.token, "two").await?,
    ];
    let mut last = [0u64, 0u64];
    let mut first = serde_json::Value::Null;
    for n in 0..12usize {
        let (r, api) = (n % 2, &apis[(n / 2) % 2]);
        let (status, m) = api
            .call(
                "POST",
                &format!("/api/v1/rooms/{}/messages", rooms[r]),
                Some(&user.token),
                Some(json!({"body": format!("m{n}"), "client_msg_id": format!("c{n}")})),
            )
            .await?;
        ensure!(status == 201, "{status} {m}");
        ensure!(
            m["prev_seq"] == last[r],
            "post {n}: prev_seq {} not {}",
            m["prev_seq"],
            last[r]
        );
        last[r] = m["seq"].as_u64().context("seq")?;
        if n == 0 {
            first = m;
        }
    }
    for api in &apis {
        let (status, again) = api
            .call(
                "POST",
                &format!("/api/v1/rooms/{}/messages", rooms[0]),
                Some(&user.token),
                Some(json!({"body": "m0", "client_msg_id": "c0"})),
            )
            .await?;
        ensure!(
            status == 201 && again == first,
            "retry: {status} {again} vs {first}"
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn member_lists_are_paged() -> anyhow::Result<()> {
    let mesh = Mesh::start(1).await?;
    let api = Api::new(mesh.agent(0).http());
    let owner = api.register_and_login("owner").await?;
    let other = api.register_and_login("other").await?;
    let outsider = api.register_and_login("outsider").await?;
    let room = api.create_room(&owner.token, "paged").await?;
    let path = format!("/api/v1/rooms/{room}/members");
    api.join_room(&other.token, &room).await?;
    for query in ["", "?limit=1000", "?limit=2"] {
        let (status, b) = api
            .call("GET", &format!("{path}{query}"), Some(&owner.token), None)
            .await?;
        ensure!(status == 200, "{query}: {status} {b}");
        ensure!(
            b["members"].as_array().map(Vec::len) == Some(2),
            "{query}: {b}"
        );
        ensure!(b["next_cursor"].is_null(), "{query}: one page only: {b}");
    }
    for bad in ["?limit=0", "?limit=1001", "?limit=x", "?cursor=a.b"] {
        let (status, b) = api
            .call("GET", &format!("{path}{bad}"), Some(&owner.token), None)
            .await?;
        ensure!(
            status == 400 && b["error"]["code"] == "bad_request",
            "{bad}: {status} {b}"
        );
    }
    let (status, b) = api.call("GET", &path, Some(&outsider.token), None).await?;
    ensure!(
        status == 403 && b["error"]["code"] == "forbidden",
        "{status} {b}"
    );
    let (status, b) = api
        .call(
            "GET",
            "/api/v1/rooms/NOSUCHROOM/members?limit=5",
            Some(&owner.token),
            None,
        )
        .await?;
    ensure!(
        status == 404 && b["error"]["code"] == "not_found",
        "{status} {b}"
    );
    Ok(())
}
