//! A retried send is the first message for the whole dedupe window, long after the stream itself
//! has forgotten its id: answered from msg-writer's retried-send index in Redis, and from the
//! stream when Redis is away. Nothing is published twice.

use std::time::Duration;

use anyhow::{ensure, Context};
use dyschat_protocol::{layout, subjects, wire::StoredMessage};
use dyschat_tests::client::{Api, WsClient};
use dyschat_tests::mesh::Mesh;
use serde_json::{json, Value};

async fn send(ws: &mut WsClient, room: &str, body: &str, id: &str) -> anyhow::Result<Value> {
    ws.send(json!({"type": "send", "room_id": room, "body": body, "client_msg_id": id}))
        .await?;
    ws.recv_type("ack").await
}

/// Shortens the stream's own de-duplication window to a second and waits it out, as if the
/// retry came hours later.
async fn stream_forgets_ids(mesh: &Mesh) -> anyhow::Result<()> {
    let js = async_nats::jetstream::new(mesh.client().await?);
    let mut stream = js.get_stream(layout::MESSAGES_STREAM).await?;
    let mut config = stream.info().await?.config.clone();
    config.duplicate_window = Duration::from_secs(1);
    js.update_stream(config).await?;
    let info = stream.info().await?;
    ensure!(info.config.duplicate_window == Duration::from_secs(1));
    tokio::time::sleep(Duration::from_secs(3)).await;
    // Proof the stream forgets: one id published twice, three seconds apart, is stored twice.
    let probe = StoredMessage::sent(
        "probe".into(),
        "probe".into(),
        "probe".into(),
        "probe".into(),
        "probe".into(),
        "probe".into(),
        "2026-01-01T00:00:00Z".into(),
    );
    let payload = serde_json::to_vec(&probe)?;
    let mut acks = Vec::new();
    for _ in 0..2 {
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("Nats-Msg-Id", "probe");
        let ack = js
            .publish_with_headers(
                subjects::room_messages("probe"),
                headers,
                payload.clone().into(),
            )
            .await?
            .await?;
        acks.push(ack.duplicate);
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
    ensure!(
        acks == [false, false],
        "the stream still remembers ids: {acks:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_retry_after_the_stream_window_is_still_the_first_message() -> anyhow::Result<()> {
    let mut mesh = Mesh::start(1).await?;
    let api = Api::new(mesh.agent(0).http());
    let user = api.register_and_login("retrier").await?;
    let room = api.create_room(&user.token, "retries").await?;
    let mut ws = WsClient::connect(&mesh.agent(0).ws(), &user.token).await?;

    let first = send(&mut ws, &room, "once only", "retry-1").await?;
    ensure!(first["duplicate"] == false, "{first}");
    let seq = first["seq"].as_u64().context("seq")?;
    for n in 0..5 {
        send(&mut ws, &room, &format!("other {n}"), &format!("other-{n}")).await?;
    }
    // The writer has stored (and indexed) everything.
    api.history_seqs(&user.token, &room, 6, Duration::from_secs(10))
        .await?;
    stream_forgets_ids(&mesh).await?;

    let retry = send(&mut ws, &room, "once only", "retry-1").await?;
    ensure!(
        retry["duplicate"] == true && retry["seq"].as_u64() == Some(seq),
        "from the index: {retry}"
    );
    ensure!(retry["message_id"] == first["message_id"], "{retry}");

    // An HTTP retry answers the first message as well.
    let (status, posted) = api
        .call(
            "POST",
            &format!("/api/v1/rooms/{room}/messages"),
            Some(&user.token),
            Some(json!({"body": "once only", "client_msg_id": "retry-1"})),
        )
        .await?;
    ensure!((200..300).contains(&status), "{status} {posted}");
    ensure!(posted["seq"].as_u64() == Some(seq), "{posted}");

    // Redis away: the index cannot answer, so the stream is read.
    mesh.redis.stop().await;
    let retry = send(&mut ws, &room, "once only", "retry-1").await?;
    ensure!(
        retry["duplicate"] == true && retry["seq"].as_u64() == Some(seq),
        "from the stream: {retry}"
    );
    let fresh = send(&mut ws, &room, "new", "retry-2").await?;
    ensure!(fresh["duplicate"] == false, "{fresh}");

    // Redis back empty (its data lost): the index is untrusted until rebuilt, and still nothing
    // is sent twice.
    std::fs::remove_dir_all(mesh.redis.data_dir()).ok();
    std::fs::create_dir_all(mesh.redis.data_dir())?;
    mesh.redis.start_again().await?;
    for id in ["retry-1", "retry-2"] {
        let retry = send(&mut ws, &room, "again", id).await?;
        ensure!(
            retry["duplicate"] == true,
            "{id} after an empty restart: {retry}"
        );
    }
    let messages = api.all_messages(&user.token, &room).await?;
    ensure!(
        messages.len() == 7,
        "{} messages in history, not 7",
        messages.len()
    );
    ws.close().await;
    mesh.stop_all().await
}
