//! The deployment files against the real thing: what `make deploy_check` cannot see without
//! running something.
//!
//! * The Grafana dashboards name only metrics a running mesh really exports: a mesh with some
//!   traffic (sends, deliveries, errors, a rate limit), its live `/metrics` (ws-agent's port and
//!   the other services' metrics addresses), and every `dyschat_*` series a dashboard queries must
//!   be there; the NATS exporter's names must be ones prometheus-nats-exporter produces.
//! * `deploy/nats/nats-prod.conf` runs a real three-node cluster on loopback (ports overridden by
//!   flags, everything else as in production): credentials required, fsync always, and the
//!   services work on it with R3 streams.
//! * `deploy/nginx/nginx.conf` in front of two real agents: HTTP, WebSocket upgrade, messages
//!   across agents, the per-address login limit answering in the contract's error shape.
//! * `deploy/healthcheck.sh` (the image's HEALTHCHECK) against a live agent.
//!
//! A test needing a tool that is not installed (nginx) says so and passes, except under
//! `CI=true`, where `make test` has installed it (scripts/ensure-deploy-tools.sh).

use std::collections::{BTreeSet, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use dyschat_tests::client::{Api, WsClient};
use dyschat_tests::mesh::Mesh;
use dyschat_tests::{free_port, nats_server_bin, repo_root, wait_until, RedisServer};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

// ---- dashboards ---------------------------------------------------------------------------------

/// Series names of prometheus-nats-exporter (`-varz -connz -routez -jsz=all`) that the dashboards
/// may use. The exporter maps every numeric field of `/varz` to `gnatsd_varz_<field>`; the
/// `gnatsd_varz_*` ones are also checked against a live server's `/varz` in
/// `nats_prod_config_runs_a_three_node_cluster`.
const EXPORTER_SERIES: &[&str] = &[
    "gnatsd_routez_num_routes",
    "gnatsd_connz_num_connections",
    "jetstream_server_total_streams",
    "jetstream_server_total_consumers",
    "jetstream_server_total_messages",
    "jetstream_server_total_message_bytes",
    "jetstream_server_max_memory",
    "jetstream_server_max_storage",
    "jetstream_stream_total_messages",
    "jetstream_stream_total_bytes",
    "jetstream_stream_first_seq",
    "jetstream_stream_last_seq",
    "jetstream_stream_consumer_count",
    "jetstream_consumer_delivered_consumer_seq",
    "jetstream_consumer_delivered_stream_seq",
    "jetstream_consumer_num_ack_pending",
    "jetstream_consumer_num_redelivered",
    "jetstream_consumer_num_waiting",
    "jetstream_consumer_num_pending",
    "jetstream_consumer_ack_floor_stream_seq",
    "jetstream_consumer_ack_floor_consumer_seq",
];

/// Counters of rare events that a short test run does not provoke (a socket too slow to keep
/// up, a live message lost by core NATS, an agent shedding requests under overload). Their
/// series appear on the first event; for these the test checks that the services' source
/// really emits the name. Everything else must be in the live exposition.
const RARE_EVENT_COUNTERS: &[&str] = &[
    "dyschat_ws_slow_consumer_closed_total",
    "dyschat_ws_gap_fills_total",
    "dyschat_requests_shed_total",
];

/// Whether a `"name"` string literal appears in the Rust sources of the services or shared/.
fn emitted_in_source(name: &str) -> bool {
    fn walk(dir: &Path, needle: &str) -> bool {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return false;
        };
        entries.flatten().any(|e| {
            let path = e.path();
            if path.is_dir() {
                walk(&path, needle)
            } else {
                path.extension().is_some_and(|x| x == "rs")
                    && std::fs::read_to_string(&path).is_ok_and(|t| t.contains(needle))
            }
        })
    }
    let needle = format!("\"{name}\"");
    ["services", "shared/src"]
        .iter()
        .any(|d| walk(&repo_root().join(d), &needle))
}

fn dashboard_paths() -> Vec<PathBuf> {
    let dir = repo_root().join("deploy/grafana/dashboards");
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    paths.sort();
    paths
}

/// Every PromQL expression of a dashboard (panel targets, nested rows included).
fn exprs(dashboard: &Value) -> Vec<String> {
    fn walk(panels: &Value, out: &mut Vec<String>) {
        for panel in panels.as_array().into_iter().flatten() {
            for target in panel["targets"].as_array().into_iter().flatten() {
                if let Some(expr) = target["expr"].as_str() {
                    out.push(expr.to_string());
                }
            }
            walk(&panel["panels"], out);
        }
    }
    let mut out = Vec::new();
    walk(&dashboard["panels"], &mut out);
    for var in dashboard["templating"]["list"]
        .as_array()
        .into_iter()
        .flatten()
    {
        if let Some(q) = var["query"].as_str() {
            out.push(q.to_string());
        }
    }
    out
}

/// The metric names an expression selects: identifiers outside quoted strings and label
/// matchers, with a known metric prefix, or `up`.
fn metric_names(expr: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut chars = expr.chars().peekable();
    let mut braces = 0usize;
    let mut ident = String::new();
    let flush = |ident: &mut String, braces: usize, names: &mut BTreeSet<String>| {
        if braces == 0
            && (ident.starts_with("dyschat_")
                || ident.starts_with("jetstream_")
                || ident.starts_with("gnatsd_")
                || ident == "up")
        {
            names.insert(ident.clone());
        }
        ident.clear();
    };
    while let Some(c) = chars.next() {
        match c {
            '"' | '\'' | '`' => {
                flush(&mut ident, braces, &mut names);
                for q in chars.by_ref() {
                    if q == c {
                        break;
                    }
                }
            }
            '{' => {
                flush(&mut ident, braces, &mut names);
                braces += 1;
            }
            '}' => {
                flush(&mut ident, braces, &mut names);
                braces = braces.saturating_sub(1);
            }
            c if c.is_ascii_alphanumeric() || c == '_' || c == ':' => ident.push(c),
            _ => flush(&mut ident, braces, &mut names),
        }
    }
    flush(&mut ident, braces, &mut names);
    names
}

#[test]
fn metric_names_are_read_from_promql() {
    let names = metric_names(
        r#"histogram_quantile(0.99, sum by (le, op) (rate(dyschat_redis_seconds_bucket{op="x_y"}[$__rate_interval]))) + sum(jetstream_consumer_num_pending{consumer_name="msg-writer"}) or up{job="dyschat_fake"}"#,
    );
    let expected: BTreeSet<String> = [
        "dyschat_redis_seconds_bucket",
        "jetstream_consumer_num_pending",
        "up",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    assert_eq!(names, expected);
}

/// The series names of a Prometheus text exposition, and the names declared as histograms.
fn exposition(text: &str) -> (HashSet<String>, HashSet<String>) {
    let mut series = HashSet::new();
    let mut histograms = HashSet::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut parts = rest.split_whitespace();
            if let (Some(name), Some("histogram")) = (parts.next(), parts.next()) {
                histograms.insert(name.to_string());
            }
            continue;
        }
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let end = line.find(['{', ' ']).unwrap_or(line.len());
        series.insert(line[..end].to_string());
    }
    (series, histograms)
}

async fn get_text(url: &str) -> anyhow::Result<(u16, String)> {
    let resp = reqwest::Client::new()
        .get(url)
        .timeout(Duration::from_secs(5))
        .send()
        .await?;
    Ok((resp.status().as_u16(), resp.text().await?))
}

/// Some of everything the dashboards show: logins, a room, sockets, sends and deliveries, a
/// history read, a malformed frame and a 404 (errors), and sends past the rate limit.
async fn traffic(mesh: &Mesh) -> anyhow::Result<()> {
    let api = Api::new(mesh.agent(0).http());
    let alice = api.register_and_login("dash_alice").await?;
    let bob = api.register_and_login("dash_bob").await?;
    let room = api.create_room(&alice.token, "dashboards").await?;
    let (status, body) = api
        .call(
            "POST",
            &format!("/api/v1/rooms/{room}/join"),
            Some(&bob.token),
            None,
        )
        .await?;
    ensure!(status == 200, "join: {status} {body}");

    let mut a = WsClient::connect(&mesh.agent(0).ws(), &alice.token).await?;
    let mut b = WsClient::connect(&mesh.agent(0).ws(), &bob.token).await?;
    a.join(&room, Some(0)).await?;
    b.join(&room, Some(0)).await?;
    for i in 0..5 {
        a.send(json!({"type": "send", "room_id": room, "body": format!("hello {i}"), "client_msg_id": format!("d{i}")}))
            .await?;
        a.recv_type("ack").await?;
        b.recv_type("message").await?;
    }
    // A retried send: a duplicate.
    a.send(json!({"type": "send", "room_id": room, "body": "hello 0", "client_msg_id": "d0"}))
        .await?;
    a.recv_type("ack").await?;
    b.send(json!({"type": "history", "room_id": room, "limit": 10}))
        .await?;
    b.recv_type("history").await?;
    b.send(json!({"type": "ping"})).await?;
    b.recv_type("pong").await?;
    // Errors: a malformed frame (ws) and an unknown room (http).
    b.send_text("{not json".to_string()).await?;
    b.recv_type("error").await?;
    let (status, _) = api
        .call("GET", "/api/v1/rooms/no_such_room", Some(&bob.token), None)
        .await?;
    ensure!(status == 404, "unknown room: {status}");
    let _ = api.all_messages(&bob.token, &room).await?;
    // Past the send burst (DYSCHAT_SEND_BURST below): rate limited.
    let mut limited = false;
    for i in 0..40 {
        let (status, _) = api
            .call(
                "POST",
                &format!("/api/v1/rooms/{room}/messages"),
                Some(&alice.token),
                Some(json!({"body": format!("burst {i}")})),
            )
            .await?;
        if status == 429 {
            limited = true;
            break;
        }
    }
    ensure!(limited, "the send burst never hit the rate limit");
    a.close().await;
    b.close().await;

    // A message the writer can never store: dead-lettered at once.
    let nats = async_nats::connect(mesh.nats.url()).await?;
    let js = async_nats::jetstream::new(nats);
    js.publish(
        format!("dyschat.msg.room.{room}"),
        "not a stored message".into(),
    )
    .await?
    .await?;
    // Redis emptied: the writer notices the missing history marker and rebuilds.
    let redis = redis::Client::open(mesh.redis.url())?;
    let mut conn = redis.get_multiplexed_async_connection().await?;
    let _: () = redis::cmd("FLUSHALL").query_async(&mut conn).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboards_name_only_metrics_the_mesh_exports() -> anyhow::Result<()> {
    // Every metric name the dashboards use, by dashboard.
    let mut wanted: Vec<(String, String)> = Vec::new();
    for path in dashboard_paths() {
        let dashboard: Value = serde_json::from_str(&std::fs::read_to_string(&path)?)
            .with_context(|| format!("{} is not valid JSON", path.display()))?;
        let file = path.file_name().unwrap().to_string_lossy().to_string();
        let exprs = exprs(&dashboard);
        ensure!(!exprs.is_empty(), "{file} has no queries");
        for expr in exprs {
            for name in metric_names(&expr) {
                wanted.push((file.clone(), name));
            }
        }
    }
    ensure!(
        wanted.iter().any(|(_, n)| n.starts_with("dyschat_")),
        "the dashboards name no dyschat_ metric at all"
    );

    // The services without an HTTP port serve /metrics on their own addresses.
    let metrics_ports: Vec<(&str, u16)> = vec![
        ("DYSCHAT_AUTH_METRICS_ADDR", free_port()),
        ("DYSCHAT_ROOMS_METRICS_ADDR", free_port()),
        ("DYSCHAT_MSG_WRITER_METRICS_ADDR", free_port()),
    ];
    let mut extra: Vec<(String, String)> = metrics_ports
        .iter()
        .map(|(var, port)| (var.to_string(), format!("127.0.0.1:{port}")))
        .collect();
    extra.push(("DYSCHAT_SEND_BURST".into(), "10".into()));
    extra.push(("DYSCHAT_SEND_RATE_PER_SEC".into(), "1".into()));
    let mut mesh = Mesh::start_with(1, extra).await?;
    traffic(&mesh).await?;

    let agent_metrics = format!("{}/metrics", mesh.agent(0).http());
    let mut missing: Vec<String> = Vec::new();
    // Histograms are folded into their buckets by the exporter's upkeep (every few seconds), and
    // the writer stores asynchronously: wait for the names rather than sleeping.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut endpoints_seen = Vec::new();
    loop {
        let mut series = HashSet::new();
        let mut histograms = HashSet::new();
        endpoints_seen.clear();
        let mut urls = vec![agent_metrics.clone()];
        urls.extend(
            metrics_ports
                .iter()
                .map(|(_, port)| format!("http://127.0.0.1:{port}/metrics")),
        );
        for url in &urls {
            // A service that does not (yet) serve its own endpoint is not an error here: in
            // this in-process mesh every service records into the one process-wide recorder
            // that the agent's /metrics renders.
            if let Ok((200, text)) = get_text(url).await {
                let (s, h) = exposition(&text);
                series.extend(s);
                histograms.extend(h);
                endpoints_seen.push(url.clone());
            }
        }
        missing.clear();
        for (file, name) in &wanted {
            if !name.starts_with("dyschat_") || RARE_EVENT_COUNTERS.contains(&name.as_str()) {
                continue;
            }
            let present = series.contains(name);
            let histogram_ok = match name
                .strip_suffix("_bucket")
                .or_else(|| name.strip_suffix("_sum"))
                .or_else(|| name.strip_suffix("_count"))
            {
                Some(base) if name.ends_with("_bucket") => histograms.contains(base),
                _ => true,
            };
            if !present || !histogram_ok {
                missing.push(format!(
                    "{file}: {name}{}",
                    if present {
                        " (exported, but not as a histogram with buckets)"
                    } else {
                        ""
                    }
                ));
            }
        }
        missing.sort();
        missing.dedup();
        if missing.is_empty() || Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    println!("scraped: {}", endpoints_seen.join(", "));
    mesh.stop_all().await?;
    for (file, name) in &wanted {
        if RARE_EVENT_COUNTERS.contains(&name.as_str()) {
            if emitted_in_source(name) {
                println!("{file}: {name} (a rare event) is emitted by the services' source");
            } else {
                missing.push(format!(
                    "{file}: {name} (not emitted anywhere in services/ or shared/)"
                ));
            }
        }
    }
    missing.sort();
    missing.dedup();
    ensure!(
        missing.is_empty(),
        "dashboards query metrics that the running mesh does not export:\n  {}",
        missing.join("\n  ")
    );

    // The NATS exporter's names: known series of prometheus-nats-exporter (varz fields are
    // checked against a live /varz in the cluster test).
    let mut unknown: Vec<String> = wanted
        .iter()
        .filter(|(_, n)| {
            (n.starts_with("jetstream_") || n.starts_with("gnatsd_"))
                && !n.starts_with("gnatsd_varz_")
                && !EXPORTER_SERIES.contains(&n.as_str())
        })
        .map(|(f, n)| format!("{f}: {n}"))
        .collect();
    unknown.sort();
    unknown.dedup();
    ensure!(
        unknown.is_empty(),
        "dashboards query series prometheus-nats-exporter does not produce:\n  {}",
        unknown.join("\n  ")
    );
    Ok(())
}

// ---- the production NATS config as a real cluster ----------------------------------------------

/// One nats-server of the test cluster, killed when dropped.
struct Node {
    child: Child,
    client_port: u16,
    monitor_port: u16,
    log: PathBuf,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const NATS_USER: &str = "dyschat";
const NATS_PASSWORD: &str = "deploy-test-password";

fn prod_conf() -> PathBuf {
    repo_root().join("deploy/nats/nats-prod.conf")
}

/// Starts nodes n1..n3 from deploy/nats/nats-prod.conf with the variables the compose file
/// sets, on free loopback ports (the flags override only addresses and ports).
fn start_prod_cluster(dir: &Path) -> anyhow::Result<Vec<Node>> {
    let cluster_ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let mut nodes = Vec::new();
    for (i, cluster_port) in cluster_ports.iter().enumerate() {
        let name = format!("n{}", i + 1);
        let store = dir.join(&name);
        std::fs::create_dir_all(&store)?;
        let log = dir.join(format!("{name}.log"));
        let client_port = free_port();
        let monitor_port = free_port();
        let out = std::fs::File::create(&log)?;
        let child = Command::new(nats_server_bin())
            .args(["-c", &prod_conf().display().to_string()])
            .args(["-a", "127.0.0.1", "-p", &client_port.to_string()])
            .args(["-m", &monitor_port.to_string()])
            .args(["--cluster", &format!("nats://127.0.0.1:{cluster_port}")])
            .env_clear()
            .env("NATS_SERVER_NAME", &name)
            .env("NATS_STORE_DIR", &store)
            .env("NATS_USER", NATS_USER)
            .env("NATS_PASSWORD", NATS_PASSWORD)
            .env("NATS_CLUSTER_USER", "cluster")
            .env("NATS_CLUSTER_PASSWORD", "deploy-test-cluster")
            .env(
                "NATS_ROUTE_1",
                format!("nats://127.0.0.1:{}", cluster_ports[0]),
            )
            .env(
                "NATS_ROUTE_2",
                format!("nats://127.0.0.1:{}", cluster_ports[1]),
            )
            .env(
                "NATS_ROUTE_3",
                format!("nats://127.0.0.1:{}", cluster_ports[2]),
            )
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()
            .with_context(|| format!("cannot run {}", nats_server_bin().display()))?;
        nodes.push(Node {
            child,
            client_port,
            monitor_port,
            log,
        });
    }
    Ok(nodes)
}

/// Speaks the NATS protocol without credentials; returns what the server answered to CONNECT
/// and PING (after checking that its INFO asks for authentication).
async fn anonymous_connect(port: u16) -> anyhow::Result<String> {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read).lines();
    let info = tokio::time::timeout(Duration::from_secs(5), lines.next_line())
        .await??
        .context("no INFO")?;
    ensure!(
        info.starts_with("INFO ") && info.contains("\"auth_required\":true"),
        "the server does not require authentication: {info}"
    );
    write
        .write_all(b"CONNECT {\"verbose\":false,\"pedantic\":false}\r\nPING\r\n")
        .await?;
    let answer = tokio::time::timeout(Duration::from_secs(5), lines.next_line())
        .await??
        .unwrap_or_default();
    Ok(answer)
}

async fn get_json(url: &str) -> anyhow::Result<(u16, Value)> {
    let (status, text) = get_text(url).await?;
    Ok((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
}

/// Runs the four services in-process against the cluster; returns their tokens, tasks and the
/// agent's address.
struct Services {
    tokens: Vec<CancellationToken>,
    tasks: Vec<tokio::task::JoinHandle<Result<(), String>>>,
    agent: std::net::SocketAddr,
}

impl Services {
    async fn start(
        config: dyschat_shared::Config,
        nats: &async_nats::Client,
    ) -> anyhow::Result<Services> {
        let mut tokens = Vec::new();
        let mut tasks = Vec::new();
        let t = CancellationToken::new();
        let (c, tt) = (config.clone(), t.clone());
        tasks.push(tokio::spawn(async move {
            dyschat_auth::run(c, tt).await.map_err(|e| e.to_string())
        }));
        tokens.push(t);
        let t = CancellationToken::new();
        let (c, tt) = (config.clone(), t.clone());
        tasks.push(tokio::spawn(async move {
            dyschat_rooms::run(c, tt).await.map_err(|e| e.to_string())
        }));
        tokens.push(t);
        let t = CancellationToken::new();
        let (c, tt) = (config.clone(), t.clone());
        tasks.push(tokio::spawn(async move {
            dyschat_msg_writer::run(c, tt)
                .await
                .map_err(|e| e.to_string())
        }));
        tokens.push(t);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let agent = listener.local_addr()?;
        let t = CancellationToken::new();
        let (c, tt) = (config, t.clone());
        tasks.push(tokio::spawn(async move {
            dyschat_ws_agent::serve(c, listener, tt)
                .await
                .map_err(|e| e.to_string())
        }));
        tokens.push(t);
        for service in ["dyschat-auth", "dyschat-rooms"] {
            let subject = format!("$SRV.PING.{service}");
            let answered = wait_until(Duration::from_secs(60), service, || async {
                matches!(
                    tokio::time::timeout(
                        Duration::from_millis(500),
                        nats.request(subject.clone(), "".into())
                    )
                    .await,
                    Ok(Ok(_))
                )
            })
            .await;
            if let Err(e) = answered {
                for task in &tasks {
                    if task.is_finished() {
                        bail!("{e}; a service has already exited (see its log above)");
                    }
                }
                return Err(e);
            }
        }
        let ready = format!("http://{agent}/readyz");
        wait_until(Duration::from_secs(60), "the agent to be ready", || async {
            matches!(get_text(&ready).await, Ok((200, _)))
        })
        .await?;
        Ok(Services {
            tokens,
            tasks,
            agent,
        })
    }

    async fn stop(self) -> anyhow::Result<()> {
        // The agent first, then the back services.
        for (token, task) in self.tokens.into_iter().zip(self.tasks).rev() {
            token.cancel();
            tokio::time::timeout(Duration::from_secs(30), task)
                .await
                .context("a service did not stop within 30 s")??
                .map_err(|e| anyhow::anyhow!("a service failed: {e}"))?;
        }
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_prod_config_runs_a_three_node_cluster() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let nodes = start_prod_cluster(dir.path())?;
    let logs = || {
        nodes
            .iter()
            .map(|n| {
                format!(
                    "--- {}\n{}",
                    n.log.display(),
                    std::fs::read_to_string(&n.log).unwrap_or_default()
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    };

    // Healthy = JetStream current on every node (what the compose health check waits for).
    for node in &nodes {
        let url = format!("http://127.0.0.1:{}/healthz", node.monitor_port);
        if let Err(e) = wait_until(Duration::from_secs(45), "a healthy NATS node", || async {
            matches!(get_text(&url).await, Ok((200, _)))
        })
        .await
        {
            bail!("{e}\n{}", logs());
        }
    }

    // The production settings are in force.
    let (_, varz) = get_json(&format!("http://127.0.0.1:{}/varz", nodes[0].monitor_port)).await?;
    assert_eq!(varz["server_name"], "n1", "{varz}");
    assert_eq!(varz["cluster"]["name"], "dyschat", "{varz}");
    assert_eq!(
        varz["jetstream"]["config"]["sync_always"], true,
        "sync_interval: always is in force: {}",
        varz["jetstream"]["config"]
    );
    assert_eq!(varz["max_payload"], 1024 * 1024, "{varz}");
    // Every gnatsd_varz_* the dashboards use is a numeric /varz field (the exporter's source).
    let mut varz_fields = Vec::new();
    for path in dashboard_paths() {
        let dashboard: Value = serde_json::from_str(&std::fs::read_to_string(&path)?)?;
        for expr in exprs(&dashboard) {
            for name in metric_names(&expr) {
                if let Some(field) = name.strip_prefix("gnatsd_varz_") {
                    varz_fields.push(field.to_string());
                }
            }
        }
    }
    for field in &varz_fields {
        assert!(
            varz[field].is_number(),
            "the dashboards use gnatsd_varz_{field}, but /varz has no numeric `{field}`"
        );
    }
    // All routes up (NATS pools several route connections per peer).
    let (_, routez) = get_json(&format!(
        "http://127.0.0.1:{}/routez",
        nodes[0].monitor_port
    ))
    .await?;
    assert!(
        routez["num_routes"].as_u64().unwrap_or(0) >= 2,
        "n1 is routed to its two peers: {routez}"
    );

    let urls: Vec<String> = nodes
        .iter()
        .map(|n| format!("nats://127.0.0.1:{}", n.client_port))
        .collect();
    // No credentials, no connection: the server asks for them and refuses a CONNECT without.
    let refusal = anonymous_connect(nodes[0].client_port).await?;
    assert!(
        refusal.contains("Authorization Violation"),
        "a client without credentials was not refused: {refusal:?}"
    );

    // The services on the cluster, as docker-compose.prod.yml configures them: credentials, all
    // three URLs, R3.
    let mut redis = RedisServer::start().await?;
    let config = dyschat_shared::Config::from_iter(
        [
            ("DYSCHAT_NATS_URL", urls.join(",")),
            ("DYSCHAT_NATS_USER", NATS_USER.to_string()),
            ("DYSCHAT_NATS_PASSWORD", NATS_PASSWORD.to_string()),
            ("DYSCHAT_STREAM_REPLICAS", "3".to_string()),
            ("DYSCHAT_REDIS_ADDR", redis.addr()),
            ("DYSCHAT_CONNECT_TIMEOUT_SECS", "20".to_string()),
            ("DYSCHAT_DRAIN_TIMEOUT_SECS", "5".to_string()),
            ("DYSCHAT_AUTH_METRICS_ADDR", String::new()),
            ("DYSCHAT_ROOMS_METRICS_ADDR", String::new()),
            ("DYSCHAT_MSG_WRITER_METRICS_ADDR", String::new()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v)),
    )?;
    let client = async_nats::ConnectOptions::with_user_and_password(
        NATS_USER.to_string(),
        NATS_PASSWORD.to_string(),
    )
    .connect(urls.as_slice())
    .await?;
    let services = Services::start(config, &client).await?;
    let api = Api::new(format!("http://{}", services.agent));
    let user = api.register_and_login("cluster_user").await?;
    let room = api.create_room(&user.token, "cluster").await?;
    let mut ws = WsClient::connect(&format!("ws://{}/ws", services.agent), &user.token).await?;
    ws.send(json!({"type": "send", "room_id": room, "body": "stored on two of three disks", "client_msg_id": "c1"}))
        .await?;
    let ack = ws.recv_type("ack").await?;
    assert_eq!(ack["seq"].as_u64(), Some(1), "{ack}");
    wait_until(
        Duration::from_secs(15),
        "the message in history",
        || async {
            api.all_messages(&user.token, &room)
                .await
                .map(|m| m.len() == 1)
                .unwrap_or(false)
        },
    )
    .await?;
    ws.close().await;
    // Live delivery on the cluster is tested apart, in
    // `prod_cluster_delivers_a_new_rooms_first_message_live`.

    // The stream is replicated on all three nodes.
    let js = async_nats::jetstream::new(client.clone());
    let info = js
        .get_stream(dyschat_shared::topology::MESSAGES_STREAM)
        .await?
        .get_info()
        .await?;
    assert_eq!(info.config.num_replicas, 3, "R3 stream");
    let cluster = info.cluster.context("stream cluster info")?;
    assert!(cluster.leader.is_some(), "the stream has a leader");
    assert_eq!(cluster.replicas.len(), 2, "two followers: {cluster:?}");

    services.stop().await?;
    redis.stop().await;
    drop(nodes);
    Ok(())
}

/// A socket joined to a brand-new room on the production cluster must get the room's first
/// message live. On a cluster the agent's fresh room subscription may not yet be known to the
/// stream leader's node when the first message is re-published, so the agent must notice the
/// loss (an empty room is a known position, and a new subscription checks the room's newest
/// `seq` shortly after it starts) and fill it from JetStream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prod_cluster_delivers_a_new_rooms_first_message_live() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let nodes = start_prod_cluster(dir.path())?;
    for node in &nodes {
        let url = format!("http://127.0.0.1:{}/healthz", node.monitor_port);
        wait_until(Duration::from_secs(45), "a healthy NATS node", || async {
            matches!(get_text(&url).await, Ok((200, _)))
        })
        .await?;
    }
    let urls: Vec<String> = nodes
        .iter()
        .map(|n| format!("nats://127.0.0.1:{}", n.client_port))
        .collect();
    let mut redis = RedisServer::start().await?;
    let config = dyschat_shared::Config::from_iter(
        [
            ("DYSCHAT_NATS_URL", urls.join(",")),
            ("DYSCHAT_NATS_USER", NATS_USER.to_string()),
            ("DYSCHAT_NATS_PASSWORD", NATS_PASSWORD.to_string()),
            ("DYSCHAT_STREAM_REPLICAS", "3".to_string()),
            ("DYSCHAT_REDIS_ADDR", redis.addr()),
            ("DYSCHAT_AUTH_METRICS_ADDR", String::new()),
            ("DYSCHAT_ROOMS_METRICS_ADDR", String::new()),
            ("DYSCHAT_MSG_WRITER_METRICS_ADDR", String::new()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v)),
    )?;
    let client = async_nats::ConnectOptions::with_user_and_password(
        NATS_USER.to_string(),
        NATS_PASSWORD.to_string(),
    )
    .connect(urls.as_slice())
    .await?;
    let services = Services::start(config, &client).await?;
    let api = Api::new(format!("http://{}", services.agent));
    let user = api.register_and_login("first_message").await?;
    let room = api.create_room(&user.token, "first").await?;
    let mut ws = WsClient::connect(&format!("ws://{}/ws", services.agent), &user.token).await?;
    ws.join(&room, Some(0)).await?;
    let mut seen = Vec::new();
    for (i, body) in ["first", "second"].iter().enumerate() {
        ws.send(json!({"type": "send", "room_id": room, "body": body, "client_msg_id": format!("m{i}")}))
            .await?;
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            match ws.recv_within(Duration::from_millis(200)).await? {
                Some(f) if f["type"] == "message" => seen.push(f["seq"].as_u64().unwrap_or(0)),
                _ => {}
            }
            if seen.len() > i {
                break;
            }
        }
    }
    ws.close().await;
    services.stop().await?;
    redis.stop().await;
    drop(nodes);
    assert_eq!(
        seen,
        vec![1, 2],
        "live message frames the joined socket received"
    );
    Ok(())
}

// ---- nginx in front of two agents ---------------------------------------------------------------

fn nginx_bin() -> Option<PathBuf> {
    if let Some(bin) = std::env::var_os("NGINX_BIN").filter(|v| !v.is_empty()) {
        return Some(PathBuf::from(bin));
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin")])
        .map(|dir| dir.join("nginx"))
        .find(|p| p.is_file())
}

/// A tool that is missing: fine on a developer's machine (the test says so), a failure on CI.
fn missing_tool(what: &str) {
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{what} is not installed; on CI `make test` installs it (scripts/ensure-deploy-tools.sh)");
    }
    println!("SKIPPED: {what} is not installed (run scripts/ensure-deploy-tools.sh as root, or apt-get install nginx)");
}

struct Nginx {
    child: Child,
}

impl Drop for Nginx {
    /// SIGTERM first: an nginx master stops its workers before it exits (SIGKILL would leave
    /// them running). The test also runs it without a master process, so one process is all.
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_config_balances_http_and_websockets_over_the_agents() -> anyhow::Result<()> {
    let Some(nginx) = nginx_bin() else {
        missing_tool("nginx");
        return Ok(());
    };
    let mut mesh = Mesh::start(2).await?;
    let dir = tempfile::tempdir()?;
    let port = free_port();
    // deploy/nginx/nginx.conf with only the addresses changed: agents on loopback, nginx on a
    // free loopback port, its pid file in the temp dir.
    let conf = std::fs::read_to_string(repo_root().join("deploy/nginx/nginx.conf"))?;
    let mut replaced = 0;
    let conf: String = conf
        .lines()
        .map(|line| {
            let t = line.trim_start();
            let indent = &line[..line.len() - t.len()];
            if let Some(rest) = t.strip_prefix("server ws-agent-") {
                let i: usize = rest[..1].parse().unwrap_or(1);
                let opts = rest.split_once(' ').map(|(_, o)| o).unwrap_or(";");
                replaced += 1;
                format!("{indent}server {} {opts}", mesh.agent(i - 1).addr)
            } else if t == "listen 80;" {
                format!("{indent}listen 127.0.0.1:{port};")
            } else if t.starts_with("pid ") {
                format!("pid {}/nginx.pid;", dir.path().display())
            } else {
                line.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    assert_eq!(replaced, 2, "the upstream names ws-agent-1 and ws-agent-2");
    let conf_path = dir.path().join("nginx.conf");
    std::fs::write(&conf_path, conf)?;
    let log = std::fs::File::create(dir.path().join("nginx.log"))?;
    let prefix = format!("{}/", dir.path().display());
    let error_log = dir.path().join("error.log").display().to_string();
    let _nginx = Nginx {
        child: Command::new(&nginx)
            .args(["-p", &prefix, "-e", &error_log, "-c"])
            .arg(&conf_path)
            .args(["-g", "daemon off; master_process off;"])
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("cannot run {}", nginx.display()))?,
    };
    let base = format!("http://127.0.0.1:{port}");
    let health = format!("{base}/nginx-healthz");
    if let Err(e) = wait_until(Duration::from_secs(10), "nginx to answer", || async {
        matches!(get_text(&health).await, Ok((200, _)))
    })
    .await
    {
        bail!(
            "{e}\n{}\n{}",
            std::fs::read_to_string(dir.path().join("nginx.log")).unwrap_or_default(),
            std::fs::read_to_string(&error_log).unwrap_or_default()
        );
    }

    // HTTP through nginx; /metrics is not public.
    assert_eq!(get_text(&format!("{base}/healthz")).await?.0, 200);
    assert_eq!(get_text(&format!("{base}/metrics")).await?.0, 404);
    let api = Api::new(base.clone());
    let alice = api.register_and_login("edge_alice").await?;
    let bob = api.register_and_login("edge_bob").await?;
    let room = api.create_room(&alice.token, "edge").await?;
    let (status, _) = api
        .call(
            "POST",
            &format!("/api/v1/rooms/{room}/join"),
            Some(&bob.token),
            None,
        )
        .await?;
    assert_eq!(status, 200);

    // WebSockets through nginx (least_conn: the second socket lands on the other agent), a
    // message from one reaching the other.
    let ws_url = format!("ws://127.0.0.1:{port}/ws");
    let mut a = WsClient::connect(&ws_url, &alice.token).await?;
    let mut b = WsClient::connect(&ws_url, &bob.token).await?;
    a.join(&room, Some(0)).await?;
    b.join(&room, Some(0)).await?;
    a.send(
        json!({"type": "send", "room_id": room, "body": "through nginx", "client_msg_id": "n1"}),
    )
    .await?;
    let ack = a.recv_type("ack").await?;
    let got = b.recv_type("message").await?;
    assert_eq!(got["seq"], ack["seq"]);
    assert_eq!(got["body"], "through nginx");
    b.send(json!({"type": "ping"})).await?;
    b.recv_type("pong").await?;
    a.close().await;
    b.close().await;

    // The per-address login limit at the edge: past the burst, 429 in the contract's shape.
    let client = reqwest::Client::new();
    let mut limited = None;
    for _ in 0..40 {
        let resp = client
            .post(format!("{base}/api/v1/auth/login"))
            .json(&json!({"username": "edge_alice", "password": "wrong password"}))
            .send()
            .await?;
        if resp.status().as_u16() == 429 {
            let retry_after = resp
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .map(String::from);
            let body: Value = resp.json().await?;
            limited = Some((retry_after, body));
            break;
        }
    }
    let (retry_after, body) = limited.context("40 logins in a row were never rate limited")?;
    assert_eq!(body["error"]["code"], "rate_limited", "{body}");
    assert!(body["error"]["retry_after_ms"].is_number(), "{body}");
    assert!(retry_after.is_some(), "429 carries Retry-After");

    mesh.stop_all().await?;
    Ok(())
}

// ---- the image's health check script ------------------------------------------------------------

fn healthcheck(args: &[&str], env: &[(&str, String)]) -> anyhow::Result<bool> {
    let status = Command::new("bash")
        .arg(repo_root().join("deploy/healthcheck.sh"))
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env.iter().map(|(k, v)| (k.to_string(), v.clone())))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()?;
    Ok(status.success())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn image_healthcheck_script_checks_a_live_agent() -> anyhow::Result<()> {
    let mut mesh = Mesh::start(1).await?;
    let addr = mesh.agent(0).addr.to_string();
    let wildcard = format!("0.0.0.0:{}", mesh.agent(0).addr.port());
    assert!(healthcheck(&[&addr, "/healthz"], &[])?);
    // As the ws-agent image runs it: from its variables, a wildcard listen address.
    assert!(healthcheck(
        &[],
        &[
            ("DYSCHAT_SERVICE", "ws-agent".into()),
            ("DYSCHAT_WS_AGENT_PORT", wildcard)
        ]
    )?);
    // A path that is not 200, and a port nothing listens on: unhealthy.
    assert!(!healthcheck(&[&addr, "/no-such-page"], &[])?);
    let closed = format!("127.0.0.1:{}", free_port());
    assert!(!healthcheck(&[&closed, "/healthz"], &[])?);
    mesh.stop_all().await?;
    Ok(())
}
