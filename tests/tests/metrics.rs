//! Prometheus really scraping a running mesh: Debian's `prometheus` binary is started with a
//! generated configuration that scrapes both ws-agents on their ports and auth, rooms and
//! msg-writer on their own metrics addresses; after some chat traffic its query API must return
//! our series.
//!
//! The binary is `PROMETHEUS_BIN` if set, else `prometheus` on `PATH`
//! (`scripts/ensure-servers.sh` installs it with apt-get when root). The services run in-process
//! and share one recorder, so every endpoint shows every series; what this test proves is that
//! each endpoint serves the exposition format Prometheus accepts and that the series exist.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{bail, ensure, Context};
use dyschat_tests::child::OwnedChild;
use dyschat_tests::client::{Api, WsClient};
use dyschat_tests::free_port;
use dyschat_tests::mesh::Mesh;
use serde_json::{json, Value};

/// Series the traffic below must have produced (histograms by their `_bucket` series).
const EXPECTED: &[&str] = &[
    "dyschat_ws_sockets_open",
    "dyschat_ws_frames_in_total",
    "dyschat_ws_frames_out_total",
    "dyschat_messages_published_total",
    "dyschat_ws_messages_delivered_total",
    "dyschat_writer_messages_stored_total",
    "dyschat_publish_ack_seconds_bucket",
    "dyschat_delivery_latency_seconds_bucket",
    "dyschat_writer_consumer_pending",
    "dyschat_writer_batch_size_bucket",
    "dyschat_redis_seconds_bucket",
    "dyschat_requests_total",
    "dyschat_request_seconds_bucket",
    "dyschat_http_requests_total",
    "dyschat_errors_total",
];

fn prometheus_bin() -> PathBuf {
    std::env::var_os("PROMETHEUS_BIN")
        .filter(|v| !v.is_empty())
        .map_or_else(|| PathBuf::from("prometheus"), PathBuf::from)
}

/// The prometheus process; killed by its PID when dropped (before its directory is removed).
struct Prometheus {
    _child: OwnedChild,
    base: String,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    fn start(jobs: &[(&str, Vec<String>)]) -> anyhow::Result<Prometheus> {
        let dir = tempfile::tempdir()?;
        let mut config = String::from(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n",
        );
        for (job, targets) in jobs {
            let targets: Vec<String> = targets.iter().map(|t| format!("'{t}'")).collect();
            config.push_str(&format!(
                "  - job_name: {job}\n    static_configs:\n      - targets: [{}]\n",
                targets.join(", ")
            ));
        }
        let config_path = dir.path().join("prometheus.yml");
        std::fs::write(&config_path, config)?;
        let port = free_port();
        let log = std::fs::File::create(dir.path().join("prometheus.log"))?;
        let bin = prometheus_bin();
        let child = Command::new(&bin)
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| {
                format!(
                    "cannot run {} (install Debian's prometheus, or set PROMETHEUS_BIN)",
                    bin.display()
                )
            })?;
        Ok(Prometheus {
            _child: child.into(),
            base: format!("http://127.0.0.1:{port}"),
            _dir: dir,
        })
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self._dir.path().join("prometheus.log")).unwrap_or_default()
    }

    async fn wait_ready(&self, http: &reqwest::Client) -> anyhow::Result<()> {
        for _ in 0..300 {
            if let Ok(r) = http.get(format!("{}/-/ready", self.base)).send().await {
                if r.status().is_success() {
                    return Ok(());
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        bail!("prometheus never became ready:\n{}", self.log())
    }

    /// The instant-vector result of `query`.
    async fn query(&self, http: &reqwest::Client, query: &str) -> anyhow::Result<Vec<Value>> {
        let body: Value = http
            .get(format!("{}/api/v1/query", self.base))
            .query(&[("query", query)])
            .send()
            .await?
            .json()
            .await?;
        ensure!(body["status"] == "success", "query {query}: {body}");
        Ok(body["data"]["result"]
            .as_array()
            .cloned()
            .unwrap_or_default())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn prometheus_scrapes_every_service() -> anyhow::Result<()> {
    let addr = || format!("127.0.0.1:{}", free_port());
    let (auth, rooms, writer) = (addr(), addr(), addr());
    let mut mesh = Mesh::start_with(
        2,
        vec![
            ("DYSCHAT_AUTH_METRICS_ADDR".into(), auth.clone()),
            ("DYSCHAT_ROOMS_METRICS_ADDR".into(), rooms.clone()),
            ("DYSCHAT_MSG_WRITER_METRICS_ADDR".into(), writer.clone()),
        ],
    )
    .await?;
    let http = reqwest::Client::new();
    for target in [&auth, &rooms, &writer] {
        let r = http.get(format!("http://{target}/metrics")).send().await?;
        ensure!(r.status() == 200, "/metrics on {target}: {}", r.status());
    }
    let agents: Vec<String> = mesh.agents.iter().map(|a| a.addr.to_string()).collect();
    let prometheus = Prometheus::start(&[
        ("dyschat-ws-agent", agents),
        ("dyschat-auth", vec![auth]),
        ("dyschat-rooms", vec![rooms]),
        ("dyschat-msg-writer", vec![writer]),
    ])?;
    prometheus.wait_ready(&http).await?;

    // Traffic: users, a room, messages from one agent read on the other, history, an error.
    let api = Api::new(mesh.agent(0).http());
    let alice = api.register_and_login("alice").await?;
    let bob = api.register_and_login("bob").await?;
    let room = api.create_room(&alice.token, "scraped").await?;
    let (status, _) = api.join_room(&bob.token, &room).await?;
    ensure!(status == 200, "join: {status}");
    let mut sender = WsClient::connect(&mesh.agent(0).ws(), &alice.token).await?;
    sender.join(&room, None).await?;
    let mut reader = WsClient::connect(&mesh.agent(1).ws(), &bob.token).await?;
    reader.join(&room, None).await?;
    for n in 0..20 {
        sender
            .send(json!({"type": "send", "room_id": room, "body": format!("m{n}")}))
            .await?;
    }
    for _ in 0..20 {
        reader.recv_type("message").await?;
    }
    api.all_messages(&bob.token, &room).await?;
    let (status, _) = api
        .call("GET", "/api/v1/rooms/nosuchroom", Some(&bob.token), None)
        .await?;
    ensure!(status == 404, "unknown room: {status}");

    // Every expected series shows up within a few scrapes.
    let mut missing: Vec<&str> = EXPECTED.to_vec();
    for _ in 0..60 {
        let mut still = Vec::new();
        for name in missing {
            if prometheus.query(&http, name).await?.is_empty() {
                still.push(name);
            }
        }
        missing = still;
        if missing.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    ensure!(
        missing.is_empty(),
        "series never scraped: {missing:?}\n{}",
        prometheus.log()
    );
    let mut jobs = std::collections::BTreeSet::new();
    for _ in 0..20 {
        let up = prometheus.query(&http, "up == 1").await?;
        jobs = up
            .iter()
            .filter_map(|s| s["metric"]["job"].as_str().map(String::from))
            .collect();
        if jobs.len() == 4 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    if jobs.len() != 4 {
        let targets: Value = http
            .get(format!("{}/api/v1/targets", prometheus.base))
            .send()
            .await?
            .json()
            .await?;
        bail!("not every job is up: {jobs:?}; targets: {targets}");
    }
    let published = prometheus
        .query(&http, "sum(dyschat_messages_published_total)")
        .await?;
    let count: f64 = published
        .first()
        .and_then(|s| s["value"][1].as_str())
        .context("no sum of published")?
        .parse()?;
    ensure!(count >= 20.0, "published {count}");
    // Labels stay low-cardinality: no series is labelled with the room id.
    let labelled = prometheus
        .query(
            &http,
            &format!("{{__name__=~\"dyschat_.*\", room_id=\"{room}\"}}"),
        )
        .await?;
    ensure!(labelled.is_empty(), "room ids in labels: {labelled:?}");

    sender.close().await;
    reader.close().await;
    drop(prometheus);
    mesh.stop_all().await?;
    Ok(())
}
