//! Core NATS is at-most-once: an agent that misses live messages (here, its NATS connection is
//! cut for a moment) notices the `prev_seq` that does not follow on and fills the gap from
//! JetStream, so its sockets still get every message once, in order, without rejoining. And a
//! message the agent had acked itself reaches its sockets even when its live copy never comes
//! and nothing follows it.

use std::time::{Duration, Instant};

use anyhow::{ensure, Context};
use dyschat_protocol::permissions::{self, Service};
use dyschat_tests::client::{Api, WsClient};
use dyschat_tests::load::{run_receiver, run_sender, Report};
use dyschat_tests::mesh::Mesh;
use dyschat_tests::proxy::Proxy;
use dyschat_tests::NatsServer;
use serde_json::json;

async fn gap_fills(agent_http: &str) -> anyhow::Result<f64> {
    let text = reqwest::get(format!("{agent_http}/metrics"))
        .await?
        .text()
        .await?;
    Ok(text
        .lines()
        .find(|l| l.starts_with("dyschat_ws_gap_fills_total"))
        .and_then(|l| l.split_whitespace().last())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_agent_that_misses_live_messages_fills_the_gap() -> anyhow::Result<()> {
    let mut mesh = Mesh::start(1).await?;
    let proxy = Proxy::start(format!("127.0.0.1:{}", mesh.nats.port())).await?;
    let env = (mesh.env.clone()).with(
        "DYSCHAT_NATS_URL",
        format!("nats://127.0.0.1:{}", proxy.port()),
    );
    let cut_agent = mesh.start_agent_with(env).await?;

    let api = Api::new(mesh.agent(0).http());
    let sender = api.register_and_login("sender").await?;
    let receiver = api.register_and_login("receiver").await?;
    let room = api.create_room(&sender.token, "gappy").await?;
    api.join_room(&receiver.token, &room).await?;

    let deadline = Instant::now() + Duration::from_secs(120);
    let total = 1500;
    let rx = tokio::spawn(run_receiver(
        receiver.clone(),
        vec![mesh.agent(cut_agent).ws()],
        room.clone(),
        total,
        deadline,
    ));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let tx = tokio::spawn(run_sender(
        sender.clone(),
        vec![mesh.agent(0).ws()],
        room.clone(),
        total,
        Duration::from_millis(2),
        deadline,
    ));
    tokio::time::sleep(Duration::from_millis(1000)).await;
    ensure!(!tx.is_finished(), "load ended before the cut");
    proxy.cut_for(Duration::from_millis(700)).await;

    let senders = vec![tx.await??];
    let receivers = vec![rx.await??];
    let history = api
        .history_seqs(&sender.token, &room, total, Duration::from_secs(10))
        .await?;
    let report = Report::verified(senders, receivers, history)?;
    ensure!(
        report.receivers[0].rejoins == 0 && report.receivers[0].gaps_seen == 0,
        "the socket had to recover by itself: {}",
        report.summary()
    );
    let fills = gap_fills(&mesh.agent(cut_agent).http()).await?;
    ensure!(fills >= 1.0, "no gap was filled, so the cut proved nothing");
    Ok(())
}

/// A mesh whose services reach NATS as `svc`, plus one agent whose NATS user (`deaf`) may not
/// subscribe to the live subjects: the two tests below differ only in what they ask of it.
struct DeafMesh {
    mesh: Mesh,
    /// The index of the deaf agent in `mesh`.
    deaf: usize,
}

impl DeafMesh {
    /// `agents` agents that hear everything, then the deaf one: an agent's NATS user that may
    /// not subscribe to live copies.
    async fn start(agents: usize) -> anyhow::Result<DeafMesh> {
        let mut deaf = permissions::grant(Service::WsAgent);
        deaf.deny_subscribe.push("dyschat.live.>".into());
        let nats = NatsServer::start_secured_with(&[("deaf", "deaf-password", deaf)]).await?;
        let mut mesh = Mesh::start_on(nats, agents, Vec::new()).await?;
        let env = (mesh.env.clone())
            .with("DYSCHAT_NATS_USER", "deaf")
            .with("DYSCHAT_NATS_PASSWORD", "deaf-password");
        let deaf = mesh.start_agent_with(env).await?;
        Ok(DeafMesh { mesh, deaf })
    }
}

/// The agent's NATS user may not subscribe to the live subjects, so no live copy ever arrives
/// (the worst case of a cluster whose leader node has not yet heard of a fresh subscription).
/// Each message a socket sends is acked by this agent, which then reads it from JetStream for
/// the room's sockets: well before the periodic catch-up check (15 s apart) would notice it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_acked_message_whose_live_copy_never_comes_is_read_from_jetstream() -> anyhow::Result<()>
{
    let DeafMesh { mut mesh, deaf } = DeafMesh::start(0).await?;

    let api = Api::new(mesh.agent(deaf).http());
    let user = api.register_and_login("unheard").await?;
    let room = api.create_room(&user.token, "silent").await?;
    let mut ws = WsClient::connect(&mesh.agent(deaf).ws(), &user.token).await?;
    ws.join(&room, Some(0)).await?;
    // Past the subscription's first catch-up check: from here only the acks can help.
    tokio::time::sleep(Duration::from_secs(2)).await;

    for i in 1..=3u64 {
        ws.send(json!({"type": "send", "room_id": room, "body": format!("m{i}"), "client_msg_id": format!("c{i}")}))
            .await?;
        let deadline = Instant::now() + Duration::from_secs(8);
        let mut acked = false;
        loop {
            let frame = ws
                .recv_within(deadline.saturating_duration_since(Instant::now()))
                .await?
                .with_context(|| {
                    format!("message {i} never reached the socket (acked: {acked})")
                })?;
            match frame["type"].as_str() {
                Some("ack") => {
                    ensure!(frame["seq"] == i, "{frame}");
                    acked = true;
                }
                Some("message") => {
                    ensure!(frame["seq"] == i && frame["prev_seq"] == i - 1, "{frame}");
                    break;
                }
                _ => {}
            }
        }
    }
    let fills = gap_fills(&mesh.agent(deaf).http()).await?;
    ensure!(
        fills >= 3.0,
        "{fills} gap fills: the live copies were not really missing"
    );
    ws.close().await;
    mesh.stop_all().await?;
    Ok(())
}

/// The same deaf agent answers HTTP posts with the right `prev_seq`: the room task it subscribes
/// for the post reads the acked message from JetStream when its live copy never comes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_post_on_an_agent_that_hears_nothing_live_still_knows_its_prev_seq() -> anyhow::Result<()>
{
    let DeafMesh { mut mesh, deaf } = DeafMesh::start(1).await?;
    let api = Api::new(mesh.agent(0).http());
    let user = api.register_and_login("poster").await?;
    let room = api.create_room(&user.token, "quiet").await?;
    let deaf_api = Api::new(mesh.agent(deaf).http());
    let mut prev = 0u64;
    for n in 0..3 {
        let started = Instant::now();
        let (status, m) = deaf_api
            .call(
                "POST",
                &format!("/api/v1/rooms/{room}/messages"),
                Some(&user.token),
                Some(json!({"body": format!("m{n}")})),
            )
            .await?;
        ensure!(
            status == 201 && m["prev_seq"] == prev,
            "post {n}: {status} {m}"
        );
        ensure!(
            started.elapsed() < Duration::from_secs(5),
            "post {n} took {:?}",
            started.elapsed()
        );
        prev = m["seq"].as_u64().context("seq")?;
    }
    mesh.stop_all().await?;
    Ok(())
}
