//! msg-writer killed (SIGKILL, twice) while edits, reactions and deletions flow through two
//! agents (contract section 7's fault test): afterwards history equals what every socket saw, and
//! the text of every deleted message is in no store (Redis, the stream).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context};
use async_nats::jetstream::{self, consumer::pull::OrderedConfig};
use dyschat_protocol::layout::MESSAGES_STREAM;
use dyschat_tests::client::{Api, WsClient};
use dyschat_tests::procs::{mesh_env, ProcMesh};
use dyschat_tests::{NatsServer, RedisServer};
use futures::StreamExt;
use serde_json::{json, Value};

/// The state of each message as a socket saw it: frames applied in order, blindly.
fn apply(seen: &mut BTreeMap<u64, Value>, frame: &Value) {
    match frame["type"].as_str() {
        Some("message") => {
            if let Some(seq) = frame["seq"].as_u64() {
                seen.insert(seq, frame.clone());
            }
        }
        Some("message_updated") => {
            if let Some(seq) = frame["message"]["seq"].as_u64() {
                seen.insert(seq, frame["message"].clone());
            }
        }
        _ => {}
    }
}

/// What a test compares of a message.
fn state(m: &Value) -> Value {
    json!([
        m["seq"],
        m["body"],
        m["deleted"],
        m["reactions"],
        m["edited_at"]
    ])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn msg_writer_killed_while_messages_change() -> anyhow::Result<()> {
    let nats = NatsServer::start().await?;
    let redis = RedisServer::start().await?;
    let mut mesh = ProcMesh::start(mesh_env(&nats.url(), &redis.addr(), &[]), 1, 2).await?;
    let apis = [Api::new(mesh.http(0)), Api::new(mesh.http(1))];
    let alice = apis[0].register_and_login("f_alice").await?;
    let bob = apis[1].register_and_login("f_bob").await?;
    let room = apis[0].create_room(&alice.token, "faulty").await?;
    apis[1].join_room(&bob.token, &room).await?;
    let urls = mesh.ws_urls();
    let mut watchers = Vec::new();
    for (i, user) in [(0, &alice), (1, &bob)] {
        let mut ws = WsClient::connect(&urls[i], &user.token).await?;
        ws.join(&room, None).await?;
        watchers.push(ws);
    }

    let messages = format!("/api/v1/rooms/{room}/messages");
    let mut seqs = Vec::new();
    for n in 0..30 {
        let (status, m) = apis[n % 2]
            .call(
                "POST",
                &messages,
                Some(&alice.token),
                Some(json!({"body": format!("secret-{n:02} original")})),
            )
            .await?;
        ensure!(status == 201, "{status} {m}");
        seqs.push(m["seq"].as_u64().context("seq")?);
    }
    let mut deleted = Vec::new();
    for (i, seq) in seqs.iter().enumerate() {
        if i == 8 || i == 20 {
            mesh.writers[0].kill9();
        }
        if i == 12 || i == 24 {
            mesh.writers[0].restart()?;
        }
        let api = &apis[i % 2];
        let path = format!("{messages}/{seq}");
        let (status, body) = api
            .call(
                "PATCH",
                &path,
                Some(&alice.token),
                Some(json!({"body": format!("secret-{i:02} edited")})),
            )
            .await?;
        ensure!(status == 200, "edit {status} {body}");
        for emoji in ["%F0%9F%91%8D", "ok"] {
            let react = format!("{path}/reactions/{emoji}");
            let (status, body) = apis[(i + 1) % 2]
                .call("PUT", &react, Some(&bob.token), None)
                .await?;
            ensure!(status == 200, "react {status} {body}");
        }
        if i % 3 == 0 {
            let (status, body) = api.call("DELETE", &path, Some(&alice.token), None).await?;
            ensure!(status == 200, "delete {status} {body}");
            deleted.push(format!("secret-{i:02}"));
        }
    }

    // What each socket saw, until it is quiet.
    let mut seen: Vec<BTreeMap<u64, Value>> = vec![BTreeMap::new(), BTreeMap::new()];
    for (ws, seen) in watchers.iter_mut().zip(seen.iter_mut()) {
        while let Some(frame) = ws.recv_within(Duration::from_secs(2)).await? {
            apply(seen, &frame);
        }
    }
    ensure!(seen[0] == seen[1], "both agents' sockets saw the same");
    ensure!(
        seen[0].len() == seqs.len(),
        "{} messages seen",
        seen[0].len()
    );

    // History equals it (read through the agent: exact while the writer catches up) ...
    let history = apis[1].all_messages(&bob.token, &room).await?;
    let from_history: Vec<Value> = history.iter().map(state).collect();
    let from_sockets: Vec<Value> = seen[0].values().map(state).collect();
    ensure!(
        from_history == from_sockets,
        "history {from_history:?}\nsockets {from_sockets:?}"
    );

    // ... and once the writer has caught up, no store holds a deleted text.
    let js = jetstream::new(async_nats::connect(nats.url()).await?);
    let mut redis = redis::Client::open(redis.url())?
        .get_multiplexed_async_connection()
        .await?;
    let started = Instant::now();
    loop {
        let key = dyschat_protocol::layout::history::key(&room);
        let entries: Vec<String> = redis::cmd("ZRANGE")
            .arg(&key)
            .arg(0)
            .arg(-1)
            .query_async(&mut redis)
            .await?;
        let stream = stream_payloads(&js).await?;
        let in_redis = deleted
            .iter()
            .filter(|d| entries.iter().any(|e| e.contains(d.as_str())))
            .count();
        let in_stream = deleted
            .iter()
            .filter(|d| stream.iter().any(|e| e.contains(d.as_str())))
            .count();
        let complete = entries.len() == seqs.len();
        if in_redis == 0 && in_stream == 0 && complete {
            println!(
                "deleted texts gone from Redis and the stream {:?} after the last change",
                started.elapsed()
            );
            break;
        }
        ensure!(
            started.elapsed() < Duration::from_secs(60),
            "after 60 s: {in_redis} deleted texts in Redis, {in_stream} in the stream, {} of {} entries",
            entries.len(),
            seqs.len()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    drop(mesh);
    Ok(())
}

/// Every payload the messages stream holds, as text.
async fn stream_payloads(js: &jetstream::Context) -> anyhow::Result<Vec<String>> {
    let stream = js.get_stream(MESSAGES_STREAM).await?;
    let consumer = stream.create_consumer(OrderedConfig::default()).await?;
    let mut pending = consumer.cached_info().num_pending;
    let mut messages = consumer.messages().await?;
    let mut out = Vec::new();
    while pending > 0 {
        let next = tokio::time::timeout(Duration::from_secs(5), messages.next())
            .await?
            .context("the stream ended")??;
        pending = next.info().map_err(|e| anyhow::anyhow!("{e}"))?.pending;
        out.push(String::from_utf8_lossy(&next.payload).to_string());
    }
    Ok(out)
}
