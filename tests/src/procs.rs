//! The real service binaries as child processes, for tests that kill, signal and restart them,
//! and for dyschat-bench, which runs its mesh with the same [`ServiceProcess`].
//!
//! The tests' binaries are the ones `cargo test` built next to the test executables
//! (`target/debug`); `make test` builds them first.

use std::fs::OpenOptions;
use std::path::PathBuf;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use dyschat_protocol::permissions::Service;

use crate::child::{OwnedChild, Stopped};

/// The directory holding the workspace's binaries for this test build.
pub fn bin_dir() -> anyhow::Result<PathBuf> {
    // target/<profile>/deps/<test binary>
    let exe = std::env::current_exe()?;
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .context("test executable has no target directory")?;
    Ok(dir.to_path_buf())
}

pub fn bin(name: &str) -> anyhow::Result<PathBuf> {
    let path = bin_dir()?.join(name);
    if !path.exists() {
        bail!(
            "{} is not built; run `cargo build --bins` (make test does) before the tests",
            path.display()
        );
    }
    Ok(path)
}

/// One service process and how it was started, so it can be started again the same way. The
/// tests start the binaries of their own build ([`ServiceProcess::start`]); dyschat-bench those
/// of its profile, with logs it keeps ([`ServiceProcess::start_logged`]).
pub struct ServiceProcess {
    pub name: String,
    bin: PathBuf,
    env: Vec<(String, String)>,
    child: OwnedChild,
    /// Where the process's stdout and stderr go (appended to, across restarts).
    log: PathBuf,
    /// Owns `log` when it is a temporary file; declared after `child`, so the process is
    /// killed before its log is removed.
    _temp_log: Option<tempfile::NamedTempFile>,
}

impl ServiceProcess {
    /// Starts `binary` (e.g. `dyschat-msg-writer`) of this test build with exactly these
    /// `DYSCHAT_*` variables, logging to a temporary file.
    pub fn start(binary: &str, env: Vec<(String, String)>) -> anyhow::Result<Self> {
        let temp = tempfile::NamedTempFile::new()?;
        let log = temp.path().to_path_buf();
        Self::spawned(binary, bin(binary)?, env, log, Some(temp))
    }

    /// Starts the binary at `bin` as `name` with exactly these variables, appending its output
    /// to `log`, which outlives the process.
    pub fn start_logged(
        name: &str,
        bin: PathBuf,
        env: Vec<(String, String)>,
        log: PathBuf,
    ) -> anyhow::Result<Self> {
        Self::spawned(name, bin, env, log, None)
    }

    /// A service binary (`name` is its NATS user too) logs in to NATS as itself unless `env`
    /// names a user.
    fn spawned(
        name: &str,
        bin: PathBuf,
        mut env: Vec<(String, String)>,
        log: PathBuf,
        temp_log: Option<tempfile::NamedTempFile>,
    ) -> anyhow::Result<Self> {
        let service = Service::ALL.into_iter().find(|s| s.user() == name);
        if let Some(service) = service {
            if !env.iter().any(|(k, _)| k == "DYSCHAT_NATS_USER") {
                env.push(("DYSCHAT_NATS_USER".into(), service.user().into()));
                env.push((
                    "DYSCHAT_NATS_PASSWORD".into(),
                    crate::nats_users::password(service),
                ));
            }
        }
        let mut p = ServiceProcess {
            name: name.to_string(),
            bin,
            env,
            child: OwnedChild::default(),
            log,
            _temp_log: temp_log,
        };
        p.spawn()?;
        Ok(p)
    }

    fn spawn(&mut self) -> anyhow::Result<()> {
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)?;
        let mut cmd = Command::new(&self.bin);
        cmd.env_clear()
            .envs(self.env.iter().cloned())
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        self.child.set(
            cmd.spawn()
                .with_context(|| format!("spawning {} ({})", self.name, self.bin.display()))?,
        );
        Ok(())
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.pid()
    }

    /// SIGKILL: no chance to drain.
    pub fn kill9(&mut self) {
        self.child.kill()
    }

    /// SIGTERM, then waits up to `timeout` for the exit status; an error if it was not running,
    /// could not be signalled or did not exit in time (it is then killed).
    pub async fn terminate(&mut self, timeout: Duration) -> anyhow::Result<ExitStatus> {
        match self.child.stop(timeout).await {
            Stopped::Exited(status) => Ok(status),
            Stopped::NotRunning => bail!("{} is not running", self.name),
            Stopped::NotSignalled => bail!("could not signal {}", self.name),
            Stopped::TimedOut => bail!(
                "{} did not exit within {timeout:?} of SIGTERM; log:\n{}",
                self.name,
                self.log()
            ),
        }
    }

    /// SIGTERM, then SIGKILL after `timeout`; always reaps, never fails (for shutting down).
    pub async fn stop(&mut self, timeout: Duration) {
        self.child.stop(timeout).await;
    }

    /// Starts the process again with the same environment (killing it first if it runs).
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.kill9();
        self.spawn()
    }

    pub fn is_running(&mut self) -> bool {
        self.child.is_running()
    }

    /// Everything the process printed so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The last `lines` lines of [`ServiceProcess::log`], for error messages.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = self.log();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

/// The `DYSCHAT_*` environment of a test mesh, as pairs for [`ServiceProcess::start`].
pub fn mesh_env(nats_url: &str, redis_addr: &str, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = vec![
        ("DYSCHAT_NATS_URL".into(), nats_url.into()),
        ("DYSCHAT_REDIS_ADDR".into(), redis_addr.into()),
        ("DYSCHAT_CONNECT_TIMEOUT_SECS".into(), "20".into()),
        ("DYSCHAT_DRAIN_TIMEOUT_SECS".into(), "5".into()),
        ("DYSCHAT_RECOVERY_LIMIT".into(), "1000000".into()),
        // Load tests log many users in from one address and send fast.
        ("DYSCHAT_LOGIN_ATTEMPTS_PER_MIN".into(), "100000".into()),
        (
            "DYSCHAT_LOGIN_ATTEMPTS_PER_ADDR_PER_MIN".into(),
            "100000".into(),
        ),
        ("DYSCHAT_SEND_RATE_PER_SEC".into(), "100000".into()),
        ("DYSCHAT_SEND_BURST".into(), "100000".into()),
        ("DYSCHAT_REQUEST_RATE_PER_SEC".into(), "100000".into()),
        ("DYSCHAT_REQUEST_BURST".into(), "100000".into()),
        (
            "DYSCHAT_MAX_BYTES_PER_USER_PER_DAY".into(),
            "4000000000".into(),
        ),
        // Several meshes run at once; the services' own /metrics ports would collide.
        ("DYSCHAT_AUTH_METRICS_ADDR".into(), String::new()),
        ("DYSCHAT_ROOMS_METRICS_ADDR".into(), String::new()),
        ("DYSCHAT_MSG_WRITER_METRICS_ADDR".into(), String::new()),
    ];
    for (k, v) in extra {
        env.retain(|(key, _)| key != k);
        env.push((k.to_string(), v.to_string()));
    }
    env
}

/// The mesh as processes: auth, rooms, `writers` msg-writers and `agents` ws-agents, against the
/// given servers.
pub struct ProcMesh {
    pub env: Vec<(String, String)>,
    pub auth: ServiceProcess,
    pub rooms: ServiceProcess,
    pub writers: Vec<ServiceProcess>,
    pub agents: Vec<(ServiceProcess, u16)>,
}

impl ProcMesh {
    pub async fn start(
        env: Vec<(String, String)>,
        writers: usize,
        agents: usize,
    ) -> anyhow::Result<Self> {
        let mut mesh = ProcMesh {
            auth: ServiceProcess::start("dyschat-auth", env.clone())?,
            rooms: ServiceProcess::start("dyschat-rooms", env.clone())?,
            writers: Vec::new(),
            agents: Vec::new(),
            env,
        };
        for _ in 0..writers {
            mesh.writers.push(ServiceProcess::start(
                "dyschat-msg-writer",
                mesh.env.clone(),
            )?);
        }
        mesh.wait_for_services().await?;
        for _ in 0..agents {
            mesh.add_agent().await?;
        }
        Ok(mesh)
    }

    /// Waits until the auth and rooms services answer `$SRV.PING` (each ensures its buckets
    /// first, which on a cluster takes a while), so a test's first request finds them.
    async fn wait_for_services(&self) -> anyhow::Result<()> {
        let url = self
            .env
            .iter()
            .find(|(k, _)| k == "DYSCHAT_NATS_URL")
            .and_then(|(_, v)| v.split(',').next())
            .context("the mesh environment has no DYSCHAT_NATS_URL")?;
        let client = async_nats::connect(url.trim()).await?;
        for service in [
            dyschat_protocol::subjects::auth::SERVICE,
            dyschat_protocol::subjects::rooms::SERVICE,
        ] {
            crate::wait_for_service(&client, service).await?;
        }
        Ok(())
    }

    /// Starts a search process named `instance` on the index directory `dir`; it answers once
    /// its index caught up (see [`crate::wait_for_service`]).
    pub fn start_search(
        &self,
        instance: &str,
        dir: &std::path::Path,
    ) -> anyhow::Result<ServiceProcess> {
        let mut env = self.env.clone();
        env.push(("DYSCHAT_SEARCH_INSTANCE".into(), instance.into()));
        env.push((
            "DYSCHAT_SEARCH_INDEX_DIR".into(),
            dir.to_string_lossy().into_owned(),
        ));
        ServiceProcess::start(dyschat_protocol::subjects::search::SERVICE, env)
    }

    pub async fn add_agent(&mut self) -> anyhow::Result<()> {
        let port = crate::free_port();
        let mut env = self.env.clone();
        env.push(("DYSCHAT_WS_AGENT_PORT".into(), format!("127.0.0.1:{port}")));
        let process = ServiceProcess::start("dyschat-ws-agent", env)?;
        self.agents.push((process, port));
        wait_ready(port).await
    }

    pub fn http(&self, i: usize) -> String {
        format!("http://127.0.0.1:{}", self.agents[i].1)
    }

    pub fn ws_urls(&self) -> Vec<String> {
        self.agents
            .iter()
            .map(|(_, port)| format!("ws://127.0.0.1:{port}/ws"))
            .collect()
    }
}

/// Waits until an agent on `port` answers `/readyz` with 200 (NATS and Redis reachable) and the
/// auth and rooms services answer through it.
pub async fn wait_ready(port: u16) -> anyhow::Result<()> {
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        let ready = http
            .get(format!("http://127.0.0.1:{port}/readyz"))
            .send()
            .await;
        if ready.is_ok_and(|r| r.status().is_success()) {
            // A login for nobody reaching auth proves the request path works.
            let probe = http
                .post(format!("http://127.0.0.1:{port}/api/v1/auth/login"))
                .json(&serde_json::json!({"username": "probe-user", "password": "probe-password"}))
                .send()
                .await;
            if probe.is_ok_and(|r| matches!(r.status().as_u16(), 401 | 429)) {
                return Ok(());
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("agent on port {port} never became ready")
}
