//! Bad frames and bad tokens get the contract's errors; the agent never crashes.

use anyhow::ensure;
use dyschat_runtime::{config::DEV_AUTH_SECRET, token};
use dyschat_tests::client::{Api, WsClient};
use dyschat_tests::mesh::Mesh;
use serde_json::json;

fn forged_tokens(user_id: &str) -> Vec<(&'static str, String)> {
    let now = chrono::Utc::now().timestamp();
    let (forged, _) = token::issue("not-the-secret", user_id, "mallory", now, 3600).unwrap();
    let (expired, _) = token::issue(DEV_AUTH_SECRET, user_id, "mallory", now - 7200, 3600).unwrap();
    let (valid, _) = token::issue(DEV_AUTH_SECRET, user_id, "mallory", now, 3600).unwrap();
    let payload = valid.split('.').nth(1).unwrap().to_string();
    let none = format!("eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.{payload}.");
    vec![
        ("forged", forged),
        ("expired", expired),
        ("alg none", none),
        ("garbage", "not.a.token".into()),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_frames_get_errors_and_the_socket_stays_open() -> anyhow::Result<()> {
    let mesh = Mesh::start(1).await?;
    let api = Api::new(mesh.agent(0).http());
    let user = api.register_and_login("frames").await?;
    let room = api.create_room(&user.token, "r").await?;
    let mut ws = WsClient::connect(&mesh.agent(0).ws(), &user.token).await?;
    ws.join(&room, None).await?;

    let long = "x".repeat(4001);
    let cases = [
        ("invalid json", "{not json".to_string()),
        ("not an object", "[1,2,3]".to_string()),
        (
            "unknown type",
            json!({"type": "dance", "ref": "k"}).to_string(),
        ),
        ("missing type", json!({"room_id": room}).to_string()),
        (
            "missing body",
            json!({"type": "send", "room_id": room, "ref": "k"}).to_string(),
        ),
        ("missing room", json!({"type": "join"}).to_string()),
        (
            "empty body",
            json!({"type": "send", "room_id": room, "body": "", "ref": "k"}).to_string(),
        ),
        (
            "blank body",
            json!({"type": "send", "room_id": room, "body": "  \n", "ref": "k"}).to_string(),
        ),
        (
            "long body",
            json!({"type": "send", "room_id": room, "body": long, "ref": "k"}).to_string(),
        ),
        (
            "bad room id",
            json!({"type": "send", "room_id": "a.b.>", "body": "x", "ref": "k"}).to_string(),
        ),
        (
            "bad client id",
            json!({"type": "send", "room_id": room, "body": "x", "client_msg_id": "no spaces"})
                .to_string(),
        ),
        (
            "wrong field type",
            json!({"type": "join", "room_id": 5}).to_string(),
        ),
        (
            "negative since",
            json!({"type": "join", "room_id": room, "since": -1}).to_string(),
        ),
        (
            "bad limit",
            json!({"type": "history", "room_id": room, "limit": 0}).to_string(),
        ),
    ];
    for (name, frame) in cases {
        ws.send_text(frame).await?;
        let answer = ws.recv_type("error").await?;
        ensure!(answer["code"] == "bad_request", "{name}: {answer}");
        ensure!(
            answer["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{name}: {answer}"
        );
        if name.contains("body") && name != "missing body" || name == "unknown type" {
            ensure!(answer["ref"] == "k", "{name}: ref not echoed: {answer}");
        }
        ws.send(json!({"type": "ping", "ref": "p"})).await?;
        let pong = ws.recv_type("pong").await?;
        ensure!(
            pong["ref"] == "p",
            "{name}: socket unusable after the error"
        );
    }
    // Frames before... an unknown room and a foreign one.
    ws.send(json!({"type": "join", "room_id": "nosuchroom", "ref": "n"}))
        .await?;
    let e = ws.recv_type("error").await?;
    ensure!(e["code"] == "not_found" && e["ref"] == "n", "{e}");

    // An oversized frame closes the socket with 1009.
    ws.send_text("x".repeat(64 * 1024 + 1)).await?;
    let code = ws.recv_close().await?;
    ensure!(code == 1009, "closed with {code}");

    // The agent is fine.
    let (status, _) = api.call("GET", "/readyz", None, None).await?;
    ensure!(status == 200);
    let mut again = WsClient::connect(&mesh.agent(0).ws(), &user.token).await?;
    again.send(json!({"type": "ping"})).await?;
    again.recv_type("pong").await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_tokens_are_refused_everywhere() -> anyhow::Result<()> {
    let mesh = Mesh::start(1).await?;
    let api = Api::new(mesh.agent(0).http());
    let user = api.register_and_login("victim").await?;
    for (name, bad) in forged_tokens(&user.user_id) {
        let (status, body) = api.call("GET", "/api/v1/me", Some(&bad), None).await?;
        ensure!(
            status == 401 && body["error"]["code"] == "unauthorized",
            "{name}: {status} {body}"
        );
        let refused = WsClient::connect_raw(&format!("{}?token={bad}", mesh.agent(0).ws())).await;
        ensure!(refused.is_err(), "{name}: upgrade accepted a bad token");
        let mut ws = WsClient::connect_raw(&mesh.agent(0).ws()).await?;
        ws.send(json!({"type": "auth", "token": bad, "ref": "a"}))
            .await?;
        let e = ws.recv().await?;
        ensure!(
            e["type"] == "error" && e["code"] == "unauthorized" && e["ref"] == "a",
            "{name}: {e}"
        );
        // Still open, and a good token works afterwards.
        ws.send(json!({"type": "join", "room_id": "x"})).await?;
        let e = ws.recv().await?;
        ensure!(
            e["code"] == "unauthorized",
            "{name}: unauthenticated join: {e}"
        );
        ws.send(json!({"type": "auth", "token": user.token}))
            .await?;
        let ready = ws.recv().await?;
        ensure!(
            ready["type"] == "ready" && ready["user_id"] == json!(user.user_id),
            "{ready}"
        );
    }
    let (status, body) = api.call("GET", "/api/v1/me", None, None).await?;
    ensure!(status == 401, "{status} {body}");
    let (status, body) = api
        .call("GET", "/api/v1/me", Some(&user.token), None)
        .await?;
    ensure!(
        status == 200 && body["username"] == "victim",
        "{status} {body}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_socket_whose_token_expires_is_told_and_closed() -> anyhow::Result<()> {
    let mesh = Mesh::start_with(1, vec![("DYSCHAT_TOKEN_TTL_SECS".into(), "2".into())]).await?;
    let api = Api::new(mesh.agent(0).http());
    let user = api.register_and_login("shortlived").await?;
    let mut ws = WsClient::connect(&mesh.agent(0).ws(), &user.token).await?;
    let e = ws.recv_type("error").await?;
    ensure!(e["code"] == "unauthorized", "{e}");
    let code = ws.recv_close().await?;
    ensure!(code == 1008, "closed with {code}");
    // The expired token is refused from then on.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let (status, _) = api
        .call("GET", "/api/v1/me", Some(&user.token), None)
        .await?;
    ensure!(status == 401, "expired token accepted: {status}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bodies_are_objects_and_text_must_be_visible() -> anyhow::Result<()> {
    let mesh = Mesh::start(1).await?;
    let api = Api::new(mesh.agent(0).http());
    let user = api.register_and_login("visible").await?;
    let room = api.create_room(&user.token, "texts").await?;
    // serde reads a struct from a sequence; the edge does not.
    for (path, body) in [
        ("/api/v1/auth/register", json!(["someone", "correct horse"])),
        ("/api/v1/auth/login", json!(["visible", "correct horse"])),
        ("/api/v1/rooms", json!(["a room"])),
        (&format!("/api/v1/rooms/{room}/messages")[..], json!(["hi"])),
        ("/api/v1/rooms", json!("a room")),
        ("/api/v1/rooms", json!(42)),
    ] {
        let (status, body) = api
            .call("POST", path, Some(&user.token), Some(body))
            .await?;
        ensure!(
            status == 400 && body["error"]["code"] == "bad_request",
            "{path}: {status} {body}"
        );
    }
    let blank_or_controlled = [
        "\u{200B}",
        "\u{2060}\u{2060}",
        "\u{3164}",
        " \u{FEFF}\u{00A0}\n",
        "nul\u{0}",
        "escape \u{1b}[2J",
    ];
    let messages = format!("/api/v1/rooms/{room}/messages");
    let mut ws = WsClient::connect(&mesh.agent(0).ws(), &user.token).await?;
    for text in blank_or_controlled {
        let (status, _) = api
            .call(
                "POST",
                &messages,
                Some(&user.token),
                Some(json!({"body": text})),
            )
            .await?;
        ensure!(status == 400, "post {text:?}: {status}");
        let (status, _) = api
            .call(
                "POST",
                "/api/v1/rooms",
                Some(&user.token),
                Some(json!({"name": text})),
            )
            .await?;
        ensure!(status == 400, "room name {text:?}: {status}");
        ws.send(json!({"type": "send", "room_id": room, "body": text, "ref": "r"}))
            .await?;
        let error = ws.recv_type("error").await?;
        ensure!(error["code"] == "bad_request", "send {text:?}: {error}");
    }
    let (status, _) = api
        .call(
            "POST",
            &messages,
            Some(&user.token),
            Some(json!({"body": "tab\tand\nlines"})),
        )
        .await?;
    ensure!(status == 201, "tabs and newlines are text: {status}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_unauthenticated_socket_cannot_make_the_agent_hold_a_big_frame() -> anyhow::Result<()> {
    let mesh = Mesh::start(1).await?;
    let mut ws = WsClient::connect_raw(&mesh.agent(0).ws()).await?;
    // Not authenticated, and a frame of 1 MiB: refused by the WebSocket layer at 64 KiB. The
    // agent stops reading there and closes with 1009; the rest of the frame, still on its way,
    // may make its kernel reset the connection, and then the close frame can be lost.
    ws.send_refused("x".repeat(1024 * 1024)).await?;
    if let Some(code) = ws.recv_close_or_reset().await? {
        ensure!(code == 1009, "closed with {code}");
    }
    // The agent goes on serving.
    let user = Api::new(mesh.agent(0).http())
        .register_and_login("after-big")
        .await?;
    let mut fresh = WsClient::connect(&mesh.agent(0).ws(), &user.token).await?;
    fresh.send(json!({"type": "ping"})).await?;
    ensure!(fresh.recv_type("pong").await?["type"] == "pong");
    Ok(())
}
