//! The bench environment: nats-server and redis-server (started here, or given by URL) and the
//! mesh of service binaries as child processes, each stopped by its PID when dropped. The
//! processes are the test harness's ([`ServiceProcess`]), so the bench starts and stops them the
//! way the tests do.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use dyschat_tests::procs::ServiceProcess;
use dyschat_tests::{NatsServer, RedisServer};

/// The `DYSCHAT_*` limits the bench raises so that it measures the mesh, not the abuse limits.
/// Printed with every run.
pub const RAISED_LIMITS: &[(&str, &str)] = &[
    ("DYSCHAT_SEND_RATE_PER_SEC", "1000000"),
    ("DYSCHAT_SEND_BURST", "1000000"),
    ("DYSCHAT_REQUEST_RATE_PER_SEC", "1000000"),
    ("DYSCHAT_REQUEST_BURST", "1000000"),
    ("DYSCHAT_MAX_BYTES_PER_USER_PER_DAY", "4000000000"),
    ("DYSCHAT_LOGIN_ATTEMPTS_PER_MIN", "1000000"),
    ("DYSCHAT_RECOVERY_LIMIT", "1000000"),
    ("DYSCHAT_SOCKET_QUEUE", "4096"),
    ("DYSCHAT_MAX_INFLIGHT_REQUESTS", "100000"),
    ("DYSCHAT_MAX_SOCKETS_PER_USER", "100"),
];

/// The directory holding this executable (`target/release` or `target/debug`), where cargo puts
/// the service binaries of the same profile.
pub fn default_bin_dir() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    Ok(exe
        .parent()
        .context("the bench executable has no directory")?
        .to_path_buf())
}

/// Starts the service binary `name` of `bin_dir` with `env`, its output appended to
/// `<log_dir>/<tag>.log` (kept with `DYSCHAT_BENCH_KEEP_LOGS`).
fn start_service(
    bin_dir: &Path,
    name: &str,
    env: Vec<(String, String)>,
    log_dir: &Path,
    tag: &str,
) -> anyhow::Result<ServiceProcess> {
    let bin = bin_dir.join(name);
    if !bin.is_file() {
        bail!(
            "{} is not built; run `cargo build --release --bins` (or pass --bin-dir)",
            bin.display()
        );
    }
    ServiceProcess::start_logged(name, bin, env, log_dir.join(format!("{tag}.log")))
}

/// Resident memory of a process in KiB (`VmRSS` of `/proc/<pid>/status`).
pub fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .context("no VmRSS in /proc/<pid>/status")
}

/// Servers plus the mesh: auth, rooms, one msg-writer and `agents` ws-agents.
pub struct Env {
    pub nats_url: String,
    pub redis_addr: String,
    _nats: Option<NatsServer>,
    _redis: Option<RedisServer>,
    pub bin_dir: PathBuf,
    pub log_dir: PathBuf,
    pub env: Vec<(String, String)>,
    pub auth: ServiceProcess,
    pub rooms: ServiceProcess,
    pub writer: ServiceProcess,
    pub agents: Vec<(ServiceProcess, u16)>,
    /// The processes whose CPU time the bench reports.
    started: Instant,
}

pub struct EnvOptions {
    pub bin_dir: PathBuf,
    pub nats_url: Option<String>,
    pub redis_addr: Option<String>,
    pub agents: usize,
    pub redis_fsync: String,
}

impl Env {
    pub async fn start(opts: &EnvOptions) -> anyhow::Result<Env> {
        let (nats, nats_url) = match &opts.nats_url {
            Some(url) => (None, url.clone()),
            None => {
                // The services' own users and permissions, as in production.
                let n = NatsServer::start_secured().await?;
                let url = n.url();
                (Some(n), url)
            }
        };
        let (redis, redis_addr) = match &opts.redis_addr {
            Some(addr) => (None, addr.clone()),
            None => {
                let r = RedisServer::start_with_args(&["--appendfsync", opts.redis_fsync.as_str()])
                    .await?;
                let addr = r.addr();
                (Some(r), addr)
            }
        };
        let log_dir = std::env::temp_dir().join(format!("dyschat-bench-{}", std::process::id()));
        std::fs::create_dir_all(&log_dir)?;
        let mut env: Vec<(String, String)> = vec![
            ("DYSCHAT_NATS_URL".into(), nats_url.clone()),
            ("DYSCHAT_REDIS_ADDR".into(), redis_addr.clone()),
            ("DYSCHAT_CONNECT_TIMEOUT_SECS".into(), "20".into()),
            ("DYSCHAT_DRAIN_TIMEOUT_SECS".into(), "5".into()),
            ("DYSCHAT_WS_AGENT_LOG_LEVEL".into(), "warn".into()),
            ("DYSCHAT_MSG_WRITER_LOG_LEVEL".into(), "warn".into()),
            ("DYSCHAT_AUTH_LOG_LEVEL".into(), "warn".into()),
            ("DYSCHAT_ROOMS_LOG_LEVEL".into(), "warn".into()),
        ];
        env.extend(
            RAISED_LIMITS
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string())),
        );
        let start =
            |name: &str, tag: &str| start_service(&opts.bin_dir, name, env.clone(), &log_dir, tag);
        let mut e = Env {
            auth: start("dyschat-auth", "auth")?,
            rooms: start("dyschat-rooms", "rooms")?,
            writer: start("dyschat-msg-writer", "msg-writer")?,
            nats_url,
            redis_addr,
            _nats: nats,
            _redis: redis,
            bin_dir: opts.bin_dir.clone(),
            log_dir,
            env,
            agents: Vec::new(),
            started: Instant::now(),
        };
        for _ in 0..opts.agents {
            e.add_agent().await?;
        }
        Ok(e)
    }

    /// Starts one more ws-agent on a free port and waits until it answers through auth.
    pub async fn add_agent(&mut self) -> anyhow::Result<usize> {
        let port = dyschat_tests::free_port();
        let mut env = self.env.clone();
        env.push(("DYSCHAT_WS_AGENT_PORT".into(), format!("127.0.0.1:{port}")));
        let i = self.agents.len();
        let mut p = start_service(
            &self.bin_dir,
            "dyschat-ws-agent",
            env,
            &self.log_dir,
            &format!("ws-agent-{i}"),
        )?;
        if let Err(e) = dyschat_tests::procs::wait_ready(port).await {
            let tail = p.log_tail(15);
            p.kill9();
            bail!("{e}; its log:\n{tail}");
        }
        self.agents.push((p, port));
        Ok(i)
    }

    /// Starts one more service process of the mesh's binaries with the mesh's variables and
    /// `extra`, its log as `<tag>.log`; the caller stops it.
    pub fn start_service(
        &self,
        name: &str,
        extra: Vec<(String, String)>,
        tag: &str,
    ) -> anyhow::Result<ServiceProcess> {
        let mut env = self.env.clone();
        env.extend(extra);
        start_service(&self.bin_dir, name, env, &self.log_dir, tag)
    }

    pub fn http(&self, agent: usize) -> String {
        format!("http://127.0.0.1:{}", self.agents[agent].1)
    }

    pub fn ws_addr(&self, agent: usize) -> std::net::SocketAddr {
        std::net::SocketAddr::from(([127, 0, 0, 1], self.agents[agent].1))
    }

    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Stops every service (SIGTERM, then SIGKILL); the servers stop when `self` drops.
    pub async fn stop(&mut self) {
        for (agent, _) in &mut self.agents {
            agent.stop(Duration::from_secs(10)).await;
        }
        self.writer.stop(Duration::from_secs(10)).await;
        self.rooms.stop(Duration::from_secs(10)).await;
        self.auth.stop(Duration::from_secs(10)).await;
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        // ServiceProcess and the servers kill their own children on drop; the logs are kept
        // only when asked for.
        if std::env::var_os("DYSCHAT_BENCH_KEEP_LOGS").is_none() {
            let _ = std::fs::remove_dir_all(&self.log_dir);
        }
    }
}
