//! A socket that never reads is closed with 1013 once its bounded queue is full, the others keep
//! receiving at their pace, and the slow one recovers everything by rejoining with `since`.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{ensure, Context};
use dyschat_tests::client::{Api, WsClient};
use dyschat_tests::mesh::Mesh;
use futures::StreamExt;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message as WsMessage;

const MESSAGES: usize = 4000;

fn now_micros() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros())
        .unwrap_or(0)
}

fn percentile(sorted: &[u128], p: f64) -> u128 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[((sorted.len() - 1) as f64 * p) as usize]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_socket_that_never_reads_is_closed_with_1013_and_recovers() -> anyhow::Result<()> {
    let mesh = Mesh::start_with(1, vec![("DYSCHAT_SOCKET_QUEUE".into(), "64".into())]).await?;
    let api = Api::new(mesh.agent(0).http());
    let sender = api.register_and_login("sender").await?;
    let fast = api.register_and_login("fast").await?;
    let slow = api.register_and_login("slow").await?;
    let room = api.create_room(&sender.token, "firehose").await?;
    for u in [&fast, &slow] {
        api.join_room(&u.token, &room).await?;
    }

    // Baseline: the same load with no stalled socket in the room.
    let baseline = phase(&mesh, &sender, &fast, &room, MESSAGES / 2).await?;

    // The slow client: a tiny receive buffer, joins, then never reads again.
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.set_recv_buffer_size(4096)?;
    let tcp = socket.connect(mesh.agent(0).addr).await?;
    let url = format!("{}?token={}", mesh.agent(0).ws(), slow.token);
    let (mut slow_ws, _) = tokio_tungstenite::client_async(url, tcp).await?;
    slow_ws.send_join(&room).await?;

    let stalled = phase(&mesh, &sender, &fast, &room, MESSAGES).await?;
    println!(
        "fast socket delivery latency, no stalled neighbour: {} | with a stalled neighbour: {}",
        describe(&baseline),
        describe(&stalled)
    );

    // The slow socket: whatever the kernel buffered, then the close with 1013.
    let mut last_read = 0u64;
    let code = loop {
        let next = tokio::time::timeout(Duration::from_secs(10), slow_ws.next())
            .await
            .context("no close")?;
        match next {
            Some(Ok(WsMessage::Text(t))) => {
                let v: serde_json::Value = serde_json::from_str(&t)?;
                if v["type"] == "message" {
                    last_read = v["seq"].as_u64().context("seq")?;
                }
            }
            Some(Ok(WsMessage::Close(Some(frame)))) => break u16::from(frame.code),
            Some(Ok(_)) => {}
            other => anyhow::bail!("slow socket ended without a close frame: {other:?}"),
        }
    };
    ensure!(code == 1013, "slow socket closed with {code}");

    // It recovers: rejoin with since and get exactly the rest.
    let mut again = WsClient::connect(&mesh.agent(0).ws(), &slow.token).await?;
    let joined = again.join(&room, Some(last_read)).await?;
    ensure!(joined["recovered"] == true, "{joined}");
    let mut prev = last_read;
    let mut got = 0;
    let history = api.all_messages(&slow.token, &room).await?;
    let remaining = history
        .iter()
        .filter(|m| m["seq"].as_u64() > Some(last_read))
        .count();
    while got < remaining {
        let m = again.recv_type("message").await?;
        ensure!(m["prev_seq"] == prev, "gap or duplicate after recovery");
        prev = m["seq"].as_u64().context("seq")?;
        got += 1;
    }
    println!("slow socket read {last_read} before 1013, recovered {got} by rejoining");
    Ok(())
}

fn describe(latencies: &[u128]) -> String {
    format!(
        "p50 {} us, p99 {} us, max {} us over {} messages",
        percentile(latencies, 0.5),
        percentile(latencies, 0.99),
        latencies.last().copied().unwrap_or(0),
        latencies.len()
    )
}

/// Sends `count` paced, time-stamped messages as `sender` and returns the sorted delivery
/// latencies seen by a fresh socket of `fast`.
async fn phase(
    mesh: &Mesh,
    sender: &dyschat_tests::client::LoggedIn,
    fast: &dyschat_tests::client::LoggedIn,
    room: &str,
    count: usize,
) -> anyhow::Result<Vec<u128>> {
    let mut fast_ws = WsClient::connect(&mesh.agent(0).ws(), &fast.token).await?;
    fast_ws.join(room, None).await?;
    let fast_task = tokio::spawn(async move {
        let mut latencies = Vec::with_capacity(count);
        let mut last = 0u64;
        while latencies.len() < count {
            let m = fast_ws.recv_type("message").await?;
            let seq = m["seq"].as_u64().context("seq")?;
            ensure!(
                last == 0 || (seq > last && m["prev_seq"] == last),
                "fast socket out of order"
            );
            last = seq;
            let sent: u128 = m["body"]
                .as_str()
                .and_then(|b| b.split('|').next())
                .and_then(|t| t.parse().ok())
                .context("stamp")?;
            latencies.push(now_micros().saturating_sub(sent));
        }
        fast_ws.close().await;
        anyhow::Ok(latencies)
    });
    let padding = "p".repeat(3900);
    let ws = WsClient::connect(&mesh.agent(0).ws(), &sender.token).await?;
    let (mut tx, mut rx) = ws.split();
    let acks = tokio::spawn(async move {
        let mut n = 0;
        while n < count {
            if rx.recv().await?["type"] == "ack" {
                n += 1;
            }
        }
        anyhow::Ok(())
    });
    let started = Instant::now();
    for n in 0..count {
        let due = started + Duration::from_micros(1500) * n as u32;
        tokio::time::sleep_until(due.into()).await;
        tx.send(
            json!({"type": "send", "room_id": room, "body": format!("{}|{padding}", now_micros())}),
        )
        .await?;
    }
    acks.await??;
    let mut latencies = fast_task.await??;
    latencies.sort_unstable();
    Ok(latencies)
}

trait JoinExt {
    async fn send_join(&mut self, room: &str) -> anyhow::Result<()>;
}

impl JoinExt for tokio_tungstenite::WebSocketStream<tokio::net::TcpStream> {
    async fn send_join(&mut self, room: &str) -> anyhow::Result<()> {
        use futures::SinkExt;
        self.send(WsMessage::Text(
            json!({"type": "join", "room_id": room}).to_string().into(),
        ))
        .await?;
        // Read the ready and joined frames, then stop reading for good.
        let mut seen = 0;
        while seen < 2 {
            if let Some(Ok(WsMessage::Text(_))) = self.next().await {
                seen += 1;
            }
        }
        Ok(())
    }
}

/// `dyschat_ws_sockets_open` as the agent exports it.
async fn open_sockets(mesh: &Mesh) -> anyhow::Result<f64> {
    let text = reqwest::get(format!("{}/metrics", mesh.agent(0).http()))
        .await?
        .text()
        .await?;
    Ok(text
        .lines()
        .find(|l| l.starts_with("dyschat_ws_sockets_open"))
        .and_then(|l| l.split_whitespace().last())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0))
}

async fn wait_open_sockets(mesh: &Mesh, want: f64, within: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + within;
    loop {
        let open = open_sockets(mesh).await?;
        if open == want {
            return Ok(());
        }
        ensure!(
            Instant::now() < deadline,
            "{open} sockets open after {within:?}, expected {want}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_socket_whose_writes_block_is_dropped_after_the_write_timeout() -> anyhow::Result<()> {
    // A queue so deep that it never fills: only the write deadline can end this socket.
    let mesh = Mesh::start_with(
        1,
        vec![
            ("DYSCHAT_SOCKET_QUEUE".into(), "1000000".into()),
            ("DYSCHAT_WRITE_TIMEOUT_SECS".into(), "2".into()),
        ],
    )
    .await?;
    let api = Api::new(mesh.agent(0).http());
    let sender = api.register_and_login("sender").await?;
    let stuck = api.register_and_login("stuck").await?;
    let room = api.create_room(&sender.token, "firehose").await?;
    api.join_room(&stuck.token, &room).await?;
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.set_recv_buffer_size(4096)?;
    let tcp = socket.connect(mesh.agent(0).addr).await?;
    let url = format!("{}?token={}", mesh.agent(0).ws(), stuck.token);
    let (mut stuck_ws, _) = tokio_tungstenite::client_async(url, tcp).await?;
    stuck_ws.send_join(&room).await?;
    wait_open_sockets(&mesh, 1.0, Duration::from_secs(10)).await?;

    // Enough bytes to fill every buffer between the agent and a client that reads nothing.
    let mut ws = WsClient::connect(&mesh.agent(0).ws(), &sender.token).await?;
    let body = "x".repeat(3900);
    let started = Instant::now();
    for _ in 0..3000 {
        ws.send(json!({"type": "send", "room_id": room, "body": body}))
            .await?;
    }
    // The sender's own socket reads; only the stuck one must go, within the deadline.
    wait_open_sockets(&mesh, 1.0, Duration::from_secs(60)).await?;
    println!(
        "stuck socket dropped {:?} after the flood began",
        started.elapsed()
    );
    drop(stuck_ws);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_silent_socket_is_pinged_and_closed_when_nothing_answers() -> anyhow::Result<()> {
    let mesh = Mesh::start_with(1, vec![("DYSCHAT_PING_IDLE_SECS".into(), "1".into())]).await?;
    let api = Api::new(mesh.agent(0).http());
    let quiet = api.register_and_login("quiet").await?;
    // A client that connects and then never reads: it cannot answer the server's ping.
    let url = format!("{}?token={}", mesh.agent(0).ws(), quiet.token);
    let (silent, _) = tokio_tungstenite::connect_async(url).await?;
    wait_open_sockets(&mesh, 1.0, Duration::from_secs(10)).await?;
    // A client that reads (tungstenite answers pings while reading) stays.
    let mut alive = WsClient::connect(&mesh.agent(0).ws(), &quiet.token).await?;
    let reader =
        tokio::spawn(
            async move { while alive.recv_within(Duration::from_secs(1)).await.is_ok() {} },
        );
    wait_open_sockets(&mesh, 2.0, Duration::from_secs(10)).await?;
    // Silent 1 s -> ping; 1 s more without an answer -> closed.
    wait_open_sockets(&mesh, 1.0, Duration::from_secs(10)).await?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    ensure!(
        open_sockets(&mesh).await? == 1.0,
        "the socket that answers pings was closed too"
    );
    reader.abort();
    drop(silent);
    Ok(())
}
