//! History is complete whatever the history store's state: msg-writer stopped for a while, Redis
//! away. Pages (both directions, every page size) equal what a complete store gives, `prev_seq`s
//! included, and a `since` join replays everything.

use std::time::Duration;

use anyhow::{ensure, Context};
use dyschat_tests::client::{Api, LoggedIn, WsClient};
use dyschat_tests::mesh::Mesh;
use serde_json::{json, Value};

/// `(seq, prev_seq)` of every message, paging forward with `after` 7 at a time, and the same
/// paging backward with `before`, which must agree.
async fn walk(api: &Api, user: &LoggedIn, room: &str) -> anyhow::Result<Vec<(u64, u64)>> {
    let mut forward = Vec::new();
    let mut after = 0;
    loop {
        let (status, page) = api
            .call(
                "GET",
                &format!("/api/v1/rooms/{room}/messages?after={after}&limit=7"),
                Some(&user.token),
                None,
            )
            .await?;
        ensure!(status == 200, "after={after}: {status} {page}");
        let messages = page["messages"].as_array().context("messages")?;
        for m in messages {
            forward.push((
                m["seq"].as_u64().context("seq")?,
                m["prev_seq"].as_u64().context("prev")?,
            ));
        }
        if page["has_more"] != true {
            break;
        }
        after = forward.last().map_or(0, |(s, _)| *s);
    }
    let mut backward = Vec::new();
    let mut before: Option<u64> = None;
    loop {
        let path = match before {
            None => format!("/api/v1/rooms/{room}/messages?limit=7"),
            Some(b) => format!("/api/v1/rooms/{room}/messages?before={b}&limit=7"),
        };
        let (status, page) = api.call("GET", &path, Some(&user.token), None).await?;
        ensure!(status == 200, "{path}: {status} {page}");
        let messages = page["messages"].as_array().context("messages")?;
        let mut chunk: Vec<(u64, u64)> = messages
            .iter()
            .map(|m| {
                (
                    m["seq"].as_u64().unwrap_or(0),
                    m["prev_seq"].as_u64().unwrap_or(0),
                )
            })
            .collect();
        chunk.append(&mut backward);
        backward = chunk;
        if page["has_more"] != true {
            break;
        }
        before = backward.first().map(|(s, _)| *s);
    }
    ensure!(forward == backward, "forward and backward paging differ");
    // The chain links every message to the one before it.
    let mut prev = 0;
    for (seq, p) in &forward {
        ensure!(*p == prev, "prev_seq of {seq} is {p}, not {prev}");
        prev = *seq;
    }
    Ok(forward)
}

async fn send_acked(
    ws: &mut WsClient,
    room: &str,
    from: usize,
    count: usize,
) -> anyhow::Result<()> {
    for n in from..from + count {
        ws.send(json!({"type": "send", "room_id": room, "body": format!("m{n}")}))
            .await?;
        ws.recv_type("ack").await?;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stopped_writer_hides_nothing() -> anyhow::Result<()> {
    let mut mesh = Mesh::start(1).await?;
    let api = Api::new(mesh.agent(0).http());
    let user = api.register_and_login("reader").await?;
    let room = api.create_room(&user.token, "behind").await?;
    let mut ws = WsClient::connect(&mesh.agent(0).ws(), &user.token).await?;
    send_acked(&mut ws, &room, 0, 20).await?;
    ensure!(
        api.history_seqs(&user.token, &room, 20, Duration::from_secs(10))
            .await?
            .len()
            == 20
    );

    // The writer stops; 25 more messages are acknowledged meanwhile.
    let writer = mesh
        .services
        .iter()
        .position(|s| s.name == "msg-writer")
        .context("a writer")?;
    mesh.services.remove(writer).stop().await?;
    send_acked(&mut ws, &room, 20, 25).await?;
    let during = walk(&api, &user, &room).await?;
    ensure!(
        during.len() == 45,
        "{} messages while the writer is stopped",
        during.len()
    );

    // A client that saw the first 20 rejoins with since and gets the other 25, chained.
    let mut late = WsClient::connect(&mesh.agent(0).ws(), &user.token).await?;
    let since = during[19].0;
    late.send(json!({"type": "join", "room_id": room, "since": since}))
        .await?;
    let joined = late.recv_type("joined").await?;
    ensure!(joined["recovered"] == true, "{joined}");
    let mut prev = since;
    for _ in 0..25 {
        let m: Value = late.recv_type("message").await?;
        ensure!(m["prev_seq"].as_u64() == Some(prev), "{m} after {prev}");
        prev = m["seq"].as_u64().context("seq")?;
    }

    // The writer comes back and catches up; the pages are the same.
    mesh.start_writer()?;
    ensure!(
        api.history_seqs(&user.token, &room, 45, Duration::from_secs(20))
            .await?
            .len()
            == 45
    );
    ensure!(
        walk(&api, &user, &room).await? == during,
        "pages changed once the writer caught up"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn history_is_served_while_redis_is_away() -> anyhow::Result<()> {
    let mut mesh = Mesh::start(1).await?;
    let api = Api::new(mesh.agent(0).http());
    let user = api.register_and_login("reader").await?;
    let room = api.create_room(&user.token, "redisless").await?;
    let mut ws = WsClient::connect(&mesh.agent(0).ws(), &user.token).await?;
    send_acked(&mut ws, &room, 0, 15).await?;
    ensure!(
        api.history_seqs(&user.token, &room, 15, Duration::from_secs(10))
            .await?
            .len()
            == 15
    );
    let before = walk(&api, &user, &room).await?;

    mesh.redis.stop().await;
    // Sends are still acknowledged (the stream holds them) and history is still complete.
    send_acked(&mut ws, &room, 15, 10).await?;
    let during = walk(&api, &user, &room).await?;
    ensure!(
        during.len() == 25 && during[..15] == before[..],
        "history while Redis is away"
    );

    mesh.redis.start_again().await?;
    ensure!(
        api.history_seqs(&user.token, &room, 25, Duration::from_secs(30))
            .await?
            .len()
            == 25
    );
    ensure!(walk(&api, &user, &room).await? == during);
    Ok(())
}
