//! After nats-server restarts, everything works again without restarting a service: the memory
//! buckets (presence, agents) are gone with the old server and are ensured again, and new rooms,
//! joins, sends, presence, member lists, logins and logouts all work.

use std::time::Duration;

use anyhow::{ensure, Context};
use dyschat_protocol::subjects;
use dyschat_tests::client::{Api, WsClient};
use dyschat_tests::mesh::Mesh;
use dyschat_tests::wait_until;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn everything_works_after_nats_server_restarts() -> anyhow::Result<()> {
    let mut mesh = Mesh::start(1).await?;
    let api = Api::new(mesh.agent(0).http());
    let alice = api.register_and_login("alice").await?;
    let old_room = api.create_room(&alice.token, "before").await?;
    let mut alice_ws = WsClient::connect(&mesh.agent(0).ws(), &alice.token).await?;
    alice_ws.join(&old_room, None).await?;

    mesh.nats.restart().await?;
    // The memory-storage presence bucket did not survive; the services ensure it again.
    let js = async_nats::jetstream::new(async_nats::connect(mesh.nats.url()).await?);
    wait_until(Duration::from_secs(30), "the presence bucket again", || {
        let js = js.clone();
        async move { js.get_key_value("dyschat_presence").await.is_ok() }
    })
    .await?;

    // A new user, a new room, a join, a send: all through the restarted server.
    let bob = wait_for_ok(|| api.register_and_login("bobby")).await?;
    let room = wait_for_ok(|| api.create_room(&bob.token, "after")).await?;
    let (status, body) = api
        .call(
            "POST",
            &format!("/api/v1/rooms/{room}/join"),
            Some(&alice.token),
            None,
        )
        .await?;
    ensure!(status == 200, "join: {status} {body}");
    let mut bob_ws = WsClient::connect(&mesh.agent(0).ws(), &bob.token).await?;
    bob_ws.join(&room, None).await?;
    bob_ws
        .send(json!({"type": "send", "room_id": room, "body": "after the restart"}))
        .await?;
    bob_ws.recv_type("ack").await?;
    // Presence: both are online again (their entries are written back within a refresh).
    wait_until(Duration::from_secs(30), "both members online", || {
        let (api, token, room) = (api.clone(), bob.token.clone(), room.clone());
        async move {
            let Ok((status, body)) = api
                .call(
                    "GET",
                    &format!("/api/v1/rooms/{room}/members"),
                    Some(&token),
                    None,
                )
                .await
            else {
                return false;
            };
            let members = body["members"].as_array().cloned().unwrap_or_default();
            status == 200 && members.len() == 2 && members.iter().all(|m| m["online"] == true)
        }
    })
    .await?;
    // The room joined before the restart still delivers live.
    let (status, _) = api
        .call(
            "POST",
            &format!("/api/v1/rooms/{old_room}/messages"),
            Some(&alice.token),
            Some(json!({"body": "old room, new server"})),
        )
        .await?;
    ensure!(status == 201);
    let m = alice_ws.recv_type("message").await?;
    ensure!(m["body"] == "old room, new server", "{m}");
    let login = api
        .call(
            "POST",
            "/api/v1/auth/login",
            None,
            Some(json!({"username": "alice", "password": "correct horse"})),
        )
        .await?;
    ensure!(login.0 == 200, "login after the restart: {login:?}");
    let _ = login.1.get("token").context("token")?;
    Ok(())
}

/// Retries `f` for a while: right after the restart a request may still find the server
/// electing its stream leaders.
async fn wait_for_ok<T, F, Fut>(mut f: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<T>>,
{
    let mut last = None;
    for _ in 0..60 {
        match f().await {
            Ok(v) => return Ok(v),
            Err(e) => last = Some(e),
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Err(last.unwrap_or_else(|| anyhow::anyhow!("never succeeded")))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ready_means_the_services_behind_the_agent_answer() -> anyhow::Result<()> {
    let mut mesh = Mesh::start(1).await?;
    let api = Api::new(mesh.agent(0).http());
    let (status, body) = api.call("GET", "/readyz", None, None).await?;
    ensure!(status == 200 && body["services"] == true, "{status} {body}");
    let rooms = mesh
        .services
        .iter()
        .position(|s| s.name == "rooms")
        .context("rooms")?;
    mesh.services.remove(rooms).stop().await?;
    let (status, body) = api.call("GET", "/readyz", None, None).await?;
    ensure!(
        status == 503 && body["services"] == false && body["nats"] == true,
        "without rooms: {status} {body}"
    );
    Ok(())
}

/// A nats-server replaced by an empty one (its store lost): every service sets up its streams,
/// buckets and consumers again after reconnecting, and a newcomer can register, log in, create a
/// room, send and read history, without restarting any service.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_nats_server_replaced_by_an_empty_one_is_set_up_again() -> anyhow::Result<()> {
    let mut mesh = Mesh::start(1).await?;
    let api = Api::new(mesh.agent(0).http());
    let before = api.register_and_login("before").await?;
    // A revocation on the old server: the agent's watch has seen stream sequence 1 there.
    let (status, _) = api
        .call("POST", "/api/v1/auth/logout", Some(&before.token), None)
        .await?;
    ensure!(status == 204, "logout before: {status}");

    mesh.nats.stop().await;
    std::fs::remove_dir_all(mesh.nats.store_dir()).context("emptying the store")?;
    mesh.nats.start_again().await?;

    let carol = wait_for_ok(|| api.register_and_login("carol")).await?;
    let room = wait_for_ok(|| api.create_room(&carol.token, "fresh")).await?;
    let mut ws = WsClient::connect(&mesh.agent(0).ws(), &carol.token).await?;
    ws.join(&room, None).await?;
    ws.send(json!({"type": "send", "room_id": room, "body": "on the new server"}))
        .await?;
    let seq = ws.recv_type("ack").await?["seq"].as_u64().context("seq")?;
    let seqs = api
        .history_seqs(&carol.token, &room, 1, Duration::from_secs(30))
        .await?;
    ensure!(seqs == vec![seq], "history {seqs:?}, sent {seq}");

    // The feed works on the new server: rooms made its stream and consumer again.
    let dave = wait_for_ok(|| api.register_and_login("dave")).await?;
    let mut daves = WsClient::connect(&mesh.agent(0).ws(), &dave.token).await?;
    let (status, dm) = api
        .call(
            "POST",
            "/api/v1/dms",
            Some(&carol.token),
            Some(json!({"user_id": dave.user_id})),
        )
        .await?;
    ensure!(status == 200, "open dm: {status} {dm}");
    let path = format!(
        "/api/v1/rooms/{}/messages",
        dm["room_id"].as_str().context("room")?
    );
    let (status, _) = api
        .call(
            "POST",
            &path,
            Some(&carol.token),
            Some(json!({"body": "hello"})),
        )
        .await?;
    ensure!(status == 201, "dm post: {status}");
    let note = tokio::time::timeout(Duration::from_secs(10), daves.recv_type("notification"))
        .await
        .context("a notification on the new server")??;
    ensure!(note["notification"]["kind"] == "dm", "{note}");
    daves.close().await;

    // Logouts work on the new server: auth ensured the revoked bucket again, and the agent
    // watches it afresh (a token revoked straight through auth, which only the watch tells the
    // agent about, is refused within moments, although its entry is sequence 1 of the new
    // bucket, not after the old server's last one). The agent still refuses the token revoked on
    // the old server: it held it.
    let second = wait_for_ok(|| async {
        let (status, body) = api
            .call(
                "POST",
                "/api/v1/auth/login",
                None,
                Some(json!({"username": "carol", "password": "correct horse"})),
            )
            .await?;
        ensure!(status == 200, "login: {status} {body}");
        Ok(body["token"].as_str().context("token")?.to_string())
    })
    .await?;
    let client = mesh.client().await?;
    let request = serde_json::to_vec(&json!({ "token": second }))?;
    let reply = tokio::time::timeout(
        Duration::from_secs(10),
        client.request(subjects::auth::LOGOUT_SUBJECT, request.into()),
    )
    .await??;
    let reply: serde_json::Value = serde_json::from_slice(&reply.payload)?;
    ensure!(
        reply["ok"]["token_id"].is_string(),
        "logout through auth: {reply}"
    );
    wait_until(
        Duration::from_secs(5),
        "the agent to refuse the token",
        || {
            let (api, second) = (&api, &second);
            async move {
                matches!(
                    api.call("GET", "/api/v1/me", Some(second), None).await,
                    Ok((401, _))
                )
            }
        },
    )
    .await?;
    ensure!(
        api.call("GET", "/api/v1/me", Some(&before.token), None)
            .await?
            .0
            == 401
    );
    let (status, _) = api
        .call("POST", "/api/v1/auth/logout", Some(&carol.token), None)
        .await?;
    ensure!(status == 204, "logout over HTTP: {status}");
    let error = ws.recv_type("error").await?;
    ensure!(error["message"] == "token revoked", "{error}");
    ensure!(ws.recv_close().await? == 1008);
    mesh.stop_all().await
}
