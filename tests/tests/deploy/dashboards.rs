//! The Grafana dashboards name only metrics a running mesh really exports.

use super::*;

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

/// Whether a `"name"` string literal appears in the Rust sources of the services or crates/.
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
    ["services", "crates"]
        .iter()
        .any(|d| walk(&repo_root().join(d), &needle))
}

pub(crate) fn dashboard_paths() -> Vec<PathBuf> {
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
pub(crate) fn exprs(dashboard: &Value) -> Vec<String> {
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
pub(crate) fn metric_names(expr: &str) -> BTreeSet<String> {
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

/// Some of everything the dashboards show: logins, a room, sockets, sends and deliveries, a
/// history read, a malformed frame and a 404 (errors), and sends past the rate limit.
async fn traffic(mesh: &Mesh) -> anyhow::Result<()> {
    let api = Api::new(mesh.agent(0).http());
    let alice = api.register_and_login("dash_alice").await?;
    let bob = api.register_and_login("dash_bob").await?;
    let room = api.create_room(&alice.token, "dashboards").await?;
    let (status, body) = api.join_room(&bob.token, &room).await?;
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
                    "{file}: {name} (not emitted anywhere in services/ or crates/)"
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
