//! The whole mesh in one test process: auth, rooms, msg-writer and any number of ws-agents
//! (and, for the tests that search, dyschat-search instances), started in-process against the test's own nats-server and redis-server.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use dyschat_runtime::Env;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use dyschat_protocol::permissions::Service;

use crate::nats_users::service_env;
use crate::redis_cluster::RedisCluster;
use crate::{wait_for_service, NatsServer, RedisServer};

/// One running service and how to stop it.
pub struct Running {
    pub name: &'static str,
    token: CancellationToken,
    task: JoinHandle<Result<(), String>>,
}

impl Running {
    fn spawn<F>(name: &'static str, token: CancellationToken, fut: F) -> Self
    where
        F: std::future::Future<Output = Result<(), String>> + Send + 'static,
    {
        Running {
            name,
            token,
            task: tokio::spawn(fut),
        }
    }

    /// Cancels the service and waits for it to drain; a failure of the service fails the test.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.token.cancel();
        let outcome = tokio::time::timeout(Duration::from_secs(30), self.task)
            .await
            .with_context(|| format!("{} did not stop within 30 s", self.name))??;
        outcome.map_err(|e| anyhow::anyhow!("{} failed: {e}", self.name))
    }
}

pub struct Agent {
    pub addr: SocketAddr,
    pub running: Running,
}

impl Agent {
    pub fn http(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn ws(&self) -> String {
        format!("ws://{}/ws", self.addr)
    }
}

pub struct Mesh {
    pub nats: NatsServer,
    pub redis: RedisServer,
    /// The Redis Cluster the services use instead of `redis` when the mesh was started on one
    /// ([`Mesh::start_on_redis_cluster`]).
    pub redis_cluster: Option<RedisCluster>,
    /// The variables every service of the mesh reads its configuration from.
    pub env: Env,
    pub services: Vec<Running>,
    pub agents: Vec<Agent>,
}

impl Mesh {
    /// Starts both servers, the three back services and `agents` ws-agents, and waits until
    /// every one of them answers.
    pub async fn start(agents: usize) -> anyhow::Result<Mesh> {
        Self::start_with(agents, Vec::new()).await
    }

    /// Like [`start`](Self::start) with extra `DYSCHAT_*` variables.
    pub async fn start_with(agents: usize, extra: Vec<(String, String)>) -> anyhow::Result<Mesh> {
        Self::start_on(NatsServer::start_secured().await?, agents, extra).await
    }

    /// Like [`start_with`](Self::start_with) with the rooms spread over `partitions` message
    /// streams (`DYSCHAT_STREAM_PARTITIONS`), on a nats-server whose configuration maps each
    /// room's subjects to its partition.
    pub async fn start_partitioned(
        agents: usize,
        partitions: u16,
        mut extra: Vec<(String, String)>,
    ) -> anyhow::Result<Mesh> {
        extra.push((
            "DYSCHAT_STREAM_PARTITIONS".to_string(),
            partitions.to_string(),
        ));
        let nats = NatsServer::start_secured_partitioned(partitions).await?;
        Self::start_on(nats, agents, extra).await
    }

    /// Like [`start_with`](Self::start_with) on a nats-server the test started itself (with a
    /// configuration file, for example).
    pub async fn start_on(
        nats: NatsServer,
        agents: usize,
        extra: Vec<(String, String)>,
    ) -> anyhow::Result<Mesh> {
        Self::start_on_redis(nats, None, agents, extra).await
    }

    /// Like [`start_with`](Self::start_with), with history on the Redis Cluster `cluster`
    /// (`DYSCHAT_REDIS_CLUSTER_NODES`); `mesh.redis` still runs but no service uses it.
    pub async fn start_on_redis_cluster(
        cluster: RedisCluster,
        agents: usize,
        mut extra: Vec<(String, String)>,
    ) -> anyhow::Result<Mesh> {
        extra.push((
            "DYSCHAT_REDIS_CLUSTER_NODES".to_string(),
            cluster.nodes_var(),
        ));
        Self::start_on_redis(
            NatsServer::start_secured().await?,
            Some(cluster),
            agents,
            extra,
        )
        .await
    }

    async fn start_on_redis(
        nats: NatsServer,
        redis_cluster: Option<RedisCluster>,
        agents: usize,
        extra: Vec<(String, String)>,
    ) -> anyhow::Result<Mesh> {
        let redis = RedisServer::start().await?;
        let mut vars = vec![
            ("DYSCHAT_NATS_URL".to_string(), nats.url()),
            ("DYSCHAT_REDIS_ADDR".to_string(), redis.addr()),
            ("DYSCHAT_CONNECT_TIMEOUT_SECS".to_string(), "10".to_string()),
            ("DYSCHAT_DRAIN_TIMEOUT_SECS".to_string(), "5".to_string()),
            // Tests log many users in from one address and send fast; the limits have their own
            // tests, which pass lower values in `extra`.
            (
                "DYSCHAT_LOGIN_ATTEMPTS_PER_MIN".to_string(),
                "100000".to_string(),
            ),
            (
                "DYSCHAT_SEND_RATE_PER_SEC".to_string(),
                "100000".to_string(),
            ),
            ("DYSCHAT_SEND_BURST".to_string(), "100000".to_string()),
            (
                "DYSCHAT_REQUEST_RATE_PER_SEC".to_string(),
                "100000".to_string(),
            ),
            ("DYSCHAT_REQUEST_BURST".to_string(), "100000".to_string()),
            (
                "DYSCHAT_MAX_BYTES_PER_USER_PER_DAY".to_string(),
                "4000000000".to_string(),
            ),
            // In-process services share one metrics recorder (the agents' `/metrics` shows it
            // all); the services' own endpoints stay off unless a test asks for them.
            ("DYSCHAT_AUTH_METRICS_ADDR".to_string(), String::new()),
            ("DYSCHAT_ROOMS_METRICS_ADDR".to_string(), String::new()),
            ("DYSCHAT_MSG_WRITER_METRICS_ADDR".to_string(), String::new()),
        ];
        for (key, value) in extra {
            vars.retain(|(k, _)| *k != key);
            vars.push((key, value));
        }
        let env = Env::from_pairs(vars);
        // Fail here, with the variable's name, rather than in a service task.
        dyschat_ws_agent::Config::from_env(&env)?;
        let mut mesh = Mesh {
            nats,
            redis,
            redis_cluster,
            env,
            services: Vec::new(),
            agents: Vec::new(),
        };
        mesh.start_services().await?;
        for _ in 0..agents {
            mesh.start_agent().await?;
        }
        Ok(mesh)
    }

    /// Starts auth, rooms and msg-writer and waits until auth and rooms answer.
    pub async fn start_services(&mut self) -> anyhow::Result<()> {
        let c = dyschat_auth::Config::from_env(&service_env(&self.env, Service::Auth))?;
        let t = CancellationToken::new();
        self.services
            .push(Running::spawn("auth", t.clone(), async move {
                dyschat_auth::run(c, t).await.map_err(|e| e.to_string())
            }));
        let c = dyschat_rooms::Config::from_env(&service_env(&self.env, Service::Rooms))?;
        let t = CancellationToken::new();
        self.services
            .push(Running::spawn("rooms", t.clone(), async move {
                dyschat_rooms::run(c, t).await.map_err(|e| e.to_string())
            }));
        self.start_writer()?;
        let client = self.client().await?;
        for service in ["dyschat-auth", "dyschat-rooms"] {
            wait_for_service(&client, service).await?;
        }
        Ok(())
    }

    /// A NATS client of the test itself, connected like the services.
    pub async fn client(&self) -> anyhow::Result<async_nats::Client> {
        let common = self.env.common()?;
        let nats = self.env.section(&common)?;
        Ok(dyschat_runtime::connect::nats(&common, &nats, "dyschat-tests").await?)
    }

    /// The configuration the mesh's agents run with.
    pub fn agent_config(&self) -> dyschat_ws_agent::Config {
        dyschat_ws_agent::Config::from_env(&self.env).expect("checked when the mesh started")
    }

    /// Starts one more msg-writer.
    pub fn start_writer(&mut self) -> anyhow::Result<()> {
        let c = dyschat_msg_writer::Config::from_env(&service_env(&self.env, Service::MsgWriter))?;
        let t = CancellationToken::new();
        self.services
            .push(Running::spawn("msg-writer", t.clone(), async move {
                dyschat_msg_writer::run(c, t)
                    .await
                    .map_err(|e| e.to_string())
            }));
        Ok(())
    }

    /// Starts a search instance named `instance` on the index directory `dir` (kept by the
    /// caller, so a test can start an instance again on the same index or on an empty one) and
    /// waits until the search service answers (it joins once its index caught up).
    pub async fn start_search(
        &mut self,
        instance: &str,
        dir: &std::path::Path,
    ) -> anyhow::Result<()> {
        let env = service_env(&self.env, Service::Search)
            .with("DYSCHAT_SEARCH_INSTANCE", instance)
            .with("DYSCHAT_SEARCH_INDEX_DIR", dir.to_string_lossy().as_ref())
            .with("DYSCHAT_SEARCH_METRICS_ADDR", "");
        let c = dyschat_search::Config::from_env(&env)?;
        let t = CancellationToken::new();
        self.services
            .push(Running::spawn("search", t.clone(), async move {
                dyschat_search::run(c, t).await.map_err(|e| e.to_string())
            }));
        let client = self.client().await?;
        wait_for_service(&client, dyschat_protocol::subjects::search::SERVICE).await
    }

    /// Starts one more ws-agent on a free port and waits until it is ready.
    pub async fn start_agent(&mut self) -> anyhow::Result<usize> {
        self.start_agent_with(self.env.clone()).await
    }

    /// Starts one more ws-agent with its own variables (e.g. reaching NATS through a proxy:
    /// `mesh.env.clone().with("DYSCHAT_NATS_URL", ...)`).
    pub async fn start_agent_with(&mut self, env: Env) -> anyhow::Result<usize> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let c = dyschat_ws_agent::Config::from_env(&service_env(&env, Service::WsAgent))?;
        let t = CancellationToken::new();
        let running = Running::spawn("ws-agent", t.clone(), async move {
            dyschat_ws_agent::serve(c, listener, t)
                .await
                .map_err(|e| e.to_string())
        });
        let agent = Agent { addr, running };
        wait_ready(&agent.http()).await?;
        self.agents.push(agent);
        Ok(self.agents.len() - 1)
    }

    /// Stops every service and agent (servers keep running), then fails if NATS refused any of
    /// them something (a subject missing from its grant in `dyschat_protocol::permissions`).
    pub async fn stop_all(&mut self) -> anyhow::Result<()> {
        for agent in self.agents.drain(..) {
            agent.running.stop().await?;
        }
        for service in self.services.drain(..) {
            service.stop().await?;
        }
        let mut violations = self.nats.violations();
        violations.retain(|line| crate::nats_users::by_a_service(line));
        anyhow::ensure!(
            violations.is_empty(),
            "NATS refused the services:\n{}",
            violations.join("\n")
        );
        Ok(())
    }

    pub fn agent(&self, i: usize) -> &Agent {
        &self.agents[i]
    }
}

async fn wait_ready(base: &str) -> anyhow::Result<()> {
    let http = reqwest::Client::new();
    for _ in 0..200 {
        if let Ok(r) = http.get(format!("{base}/readyz")).send().await {
            if r.status().is_success() {
                return Ok(());
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    anyhow::bail!("agent at {base} never became ready")
}
