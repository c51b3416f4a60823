//! Core NATS is at-most-once: an agent that misses live messages (here, its NATS connection is
//! cut for a moment) notices the `prev_seq` that does not follow on and fills the gap from
//! JetStream, so its sockets still get every message once, in order, without rejoining.

use std::time::{Duration, Instant};

use anyhow::ensure;
use dyschat_tests::client::Api;
use dyschat_tests::load::{run_receiver, run_sender, Report};
use dyschat_tests::mesh::Mesh;
use dyschat_tests::proxy::Proxy;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_agent_that_misses_live_messages_fills_the_gap() -> anyhow::Result<()> {
    let mut mesh = Mesh::start(1).await?;
    let proxy = Proxy::start(format!("127.0.0.1:{}", mesh.nats.port())).await?;
    let mut config = mesh.config.clone();
    config.nats_url = format!("nats://127.0.0.1:{}", proxy.port());
    let cut_agent = mesh.start_agent_with(config).await?;

    let api = Api::new(mesh.agent(0).http());
    let sender = api.register_and_login("sender").await?;
    let receiver = api.register_and_login("receiver").await?;
    let room = api.create_room(&sender.token, "gappy").await?;
    api.call(
        "POST",
        &format!("/api/v1/rooms/{room}/join"),
        Some(&receiver.token),
        None,
    )
    .await?;

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
    let report = Report {
        senders,
        receivers,
        history,
    };
    report.verify()?;
    println!("{}", report.summary());
    ensure!(
        report.receivers[0].rejoins == 0 && report.receivers[0].gaps_seen == 0,
        "the socket had to recover by itself: {}",
        report.summary()
    );
    let text = reqwest::get(format!("{}/metrics", mesh.agent(cut_agent).http()))
        .await?
        .text()
        .await?;
    let fills: f64 = text
        .lines()
        .find(|l| l.starts_with("dyschat_ws_gap_fills_total"))
        .and_then(|l| l.split_whitespace().last())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    ensure!(fills >= 1.0, "no gap was filled, so the cut proved nothing");
    Ok(())
}
