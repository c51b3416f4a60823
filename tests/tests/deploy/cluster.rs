//! `deploy/nats/nats-prod.conf` as a real three-node cluster, with the services on it.

use super::*;
use crate::dashboards::{dashboard_paths, exprs, metric_names};
use dyschat_protocol::permissions::Service;
use dyschat_tests::child::OwnedChild;
use dyschat_tests::nats_users::{self, service_env};

/// One nats-server of the test cluster, killed when dropped.
struct Node {
    _child: OwnedChild,
    client_port: u16,
    monitor_port: u16,
    log: PathBuf,
}

const OPERATOR_PASSWORD: &str = "deploy-test-operator";

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
            .envs(Service::ALL.map(|s| (s.password_var(), nats_users::password(s))))
            .env(nats_users::OPERATOR_PASSWORD_VAR, OPERATOR_PASSWORD)
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
            _child: child.into(),
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

/// Runs the four services in-process against the cluster; returns their tokens, tasks and the
/// agent's address.
struct Services {
    tokens: Vec<CancellationToken>,
    tasks: Vec<tokio::task::JoinHandle<Result<(), String>>>,
    agent: std::net::SocketAddr,
}

impl Services {
    async fn start(env: Env, nats: &async_nats::Client) -> anyhow::Result<Services> {
        let mut tokens = Vec::new();
        let mut tasks = Vec::new();
        let t = CancellationToken::new();
        let (c, tt) = (
            dyschat_auth::Config::from_env(&service_env(&env, Service::Auth))?,
            t.clone(),
        );
        tasks.push(tokio::spawn(async move {
            dyschat_auth::run(c, tt).await.map_err(|e| e.to_string())
        }));
        tokens.push(t);
        let t = CancellationToken::new();
        let (c, tt) = (
            dyschat_rooms::Config::from_env(&service_env(&env, Service::Rooms))?,
            t.clone(),
        );
        tasks.push(tokio::spawn(async move {
            dyschat_rooms::run(c, tt).await.map_err(|e| e.to_string())
        }));
        tokens.push(t);
        let t = CancellationToken::new();
        let (c, tt) = (
            dyschat_msg_writer::Config::from_env(&service_env(&env, Service::MsgWriter))?,
            t.clone(),
        );
        tasks.push(tokio::spawn(async move {
            dyschat_msg_writer::run(c, tt)
                .await
                .map_err(|e| e.to_string())
        }));
        tokens.push(t);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let agent = listener.local_addr()?;
        let t = CancellationToken::new();
        let (c, tt) = (
            dyschat_ws_agent::Config::from_env(&service_env(&env, Service::WsAgent))?,
            t.clone(),
        );
        tasks.push(tokio::spawn(async move {
            dyschat_ws_agent::serve(c, listener, tt)
                .await
                .map_err(|e| e.to_string())
        }));
        tokens.push(t);
        for service in ["dyschat-auth", "dyschat-rooms"] {
            let subject = dyschat_protocol::subjects::service_ping(service);
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

/// The four services on the cluster as docker-compose.prod.yml configures them (credentials, all
/// three URLs, R3; `extra` on top), with a Redis of their own and a client of the test's.
struct OnCluster {
    redis: RedisServer,
    client: async_nats::Client,
    services: Services,
}

impl OnCluster {
    async fn start(nodes: &[Node], extra: &[(&str, &str)]) -> anyhow::Result<OnCluster> {
        let urls: Vec<String> = nodes
            .iter()
            .map(|n| format!("nats://127.0.0.1:{}", n.client_port))
            .collect();
        let redis = RedisServer::start().await?;
        let mut config = Env::from_pairs(
            [
                ("DYSCHAT_NATS_URL", urls.join(",")),
                ("DYSCHAT_STREAM_REPLICAS", "3".to_string()),
                ("DYSCHAT_REDIS_ADDR", redis.addr()),
                ("DYSCHAT_AUTH_METRICS_ADDR", String::new()),
                ("DYSCHAT_ROOMS_METRICS_ADDR", String::new()),
                ("DYSCHAT_MSG_WRITER_METRICS_ADDR", String::new()),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v)),
        );
        for (key, value) in extra {
            config = config.with(key, *value);
        }
        let client = async_nats::ConnectOptions::with_user_and_password(
            nats_users::OPERATOR_USER.to_string(),
            OPERATOR_PASSWORD.to_string(),
        )
        .connect(urls.as_slice())
        .await?;
        let services = Services::start(config, &client).await?;
        Ok(OnCluster {
            redis,
            client,
            services,
        })
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

    // No credentials, no connection: the server asks for them and refuses a CONNECT without.
    let refusal = anonymous_connect(nodes[0].client_port).await?;
    assert!(
        refusal.contains("Authorization Violation"),
        "a client without credentials was not refused: {refusal:?}"
    );

    // The services on the cluster, as docker-compose.prod.yml configures them: credentials, all
    // three URLs, R3.
    let OnCluster {
        mut redis,
        client,
        services,
    } = OnCluster::start(
        &nodes,
        &[
            ("DYSCHAT_CONNECT_TIMEOUT_SECS", "20"),
            ("DYSCHAT_DRAIN_TIMEOUT_SECS", "5"),
        ],
    )
    .await?;
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
        .get_stream(dyschat_protocol::layout::MESSAGES_STREAM)
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
    let OnCluster {
        mut redis,
        client: _client,
        services,
    } = OnCluster::start(&nodes, &[]).await?;
    let api = Api::new(format!("http://{}", services.agent));
    let user = api.register_and_login("first_message").await?;
    let room = api.create_room(&user.token, "first").await?;
    let mut ws = WsClient::connect(&format!("ws://{}/ws", services.agent), &user.token).await?;
    ws.join(&room, Some(0)).await?;
    let mut seen = Vec::new();
    let mut others = Vec::new();
    for (i, body) in ["first", "second"].iter().enumerate() {
        ws.send(json!({"type": "send", "room_id": room, "body": body, "client_msg_id": format!("m{i}")}))
            .await?;
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            match ws.recv_within(Duration::from_millis(200)).await? {
                Some(f) if f["type"] == "message" => seen.push(f["seq"].as_u64().unwrap_or(0)),
                Some(f) => others.push(f),
                None => {}
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
    anyhow::ensure!(
        seen == vec![1, 2],
        "live message frames the joined socket received: {seen:?}; other frames: {others:?}"
    );
    Ok(())
}
