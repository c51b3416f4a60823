//! `make run_dev` (scripts/run-dev.sh) as a developer uses it: piped through `tee` and stopped with
//! Ctrl-C (SIGINT to the whole foreground process group, which kills `tee` too), or killed
//! outright. Either way nothing it started may outlive it.
//!
//! The script runs the debug binaries `make test` built, on free ports, with its data in a
//! temporary directory.

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{ensure, Context};
use dyschat_tests::{free_port, nats_server_bin, redis_server_bin, repo_root};

struct Run {
    child: Child,
    dir: tempfile::TempDir,
    nats_monitor_port: u16,
}

impl Run {
    /// Starts `scripts/run-dev.sh | tee <dir>/tee.log` in a process group of its own, like a
    /// shell's foreground job, and waits until the script says the mesh is ready.
    fn start() -> anyhow::Result<Run> {
        let dir = tempfile::tempdir()?;
        let root = repo_root();
        let nats_monitor_port = free_port();
        let child = Command::new("bash")
            .arg("-c")
            .arg(r#"scripts/run-dev.sh 2>&1 | tee "$RUN_DEV_DIR/tee.log" >/dev/null"#)
            .current_dir(&root)
            .env_remove("DYSCHAT_NATS_URL")
            .env_remove("DYSCHAT_REDIS_ADDR")
            .env("RUN_DEV_SKIP_BUILD", "1")
            .env("RUN_DEV_BIN_DIR", root.join("target/debug"))
            .env("RUN_DEV_DIR", dir.path())
            .env("RUN_DEV_NATS_PORT", free_port().to_string())
            .env("RUN_DEV_NATS_MONITOR_PORT", nats_monitor_port.to_string())
            .env("RUN_DEV_REDIS_PORT", free_port().to_string())
            .env(
                "DYSCHAT_WS_AGENT_PORT",
                format!("127.0.0.1:{}", free_port()),
            )
            .env("NATS_SERVER_BIN", nats_server_bin())
            .env("REDIS_SERVER_BIN", redis_server_bin())
            .stdin(Stdio::null())
            .process_group(0)
            .spawn()?;
        let run = Run {
            child,
            dir,
            nats_monitor_port,
        };
        let deadline = Instant::now() + Duration::from_secs(90);
        while !run.log().contains("DYSCHAT is ready") {
            ensure!(
                Instant::now() < deadline,
                "run-dev never became ready:\n{}",
                run.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        Ok(run)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("tee.log")).unwrap_or_default()
    }

    /// Every PID the script recorded: the servers and the five services.
    fn pids(&self) -> anyhow::Result<Vec<u32>> {
        let text = std::fs::read_to_string(self.dir.path().join("run-dev.pids"))
            .context("run-dev.pids")?;
        Ok(text.lines().filter_map(|l| l.trim().parse().ok()).collect())
    }

    fn signal(&self, signal: &str, target: &str) -> anyhow::Result<()> {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg("--")
            .arg(target)
            .status()?;
        ensure!(status.success(), "kill -{signal} {target} failed");
        Ok(())
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg("-KILL")
            .arg("--")
            .arg(format!("-{}", self.child.id()))
            .status();
        let _ = self.child.wait();
    }
}

fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
        && std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| !s.contains(") Z "))
            .unwrap_or(false)
}

fn wait_all_gone(pids: &[u32], within: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + within;
    loop {
        let left: Vec<u32> = pids.iter().copied().filter(|p| alive(*p)).collect();
        if left.is_empty() {
            return Ok(());
        }
        ensure!(
            Instant::now() < deadline,
            "still running after {within:?}: {left:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn ctrl_c_through_tee_stops_everything_it_started() -> anyhow::Result<()> {
    let mut run = Run::start()?;
    let pids = run.pids()?;
    ensure!(
        pids.len() == 7,
        "expected 2 servers and 5 services: {pids:?}"
    );
    // The terminal's Ctrl-C: SIGINT to the foreground group (bash, run-dev.sh and tee alike).
    run.signal("INT", &format!("-{}", run.child.id()))?;
    wait_all_gone(&pids, Duration::from_secs(40))?;
    let _ = run.child.wait();
    ensure!(
        !run.dir.path().join("run-dev.pids").exists(),
        "the PID file outlived a clean stop"
    );
    Ok(())
}

#[test]
fn a_killed_script_takes_what_it_started_with_it() -> anyhow::Result<()> {
    let run = Run::start()?;
    let pids = run.pids()?;
    let script = Command::new("pgrep")
        .arg("-g")
        .arg(run.child.id().to_string())
        .arg("-f")
        .arg("scripts/run-dev.sh")
        .output()?;
    let script_pids: Vec<String> = String::from_utf8_lossy(&script.stdout)
        .lines()
        .map(String::from)
        .filter(|p| *p != run.child.id().to_string())
        .collect();
    ensure!(!script_pids.is_empty(), "run-dev.sh not found");
    for pid in &script_pids {
        run.signal("KILL", pid)?;
    }
    wait_all_gone(&pids, Duration::from_secs(40))
}

/// The nats-server's `/connz?auth=1`: every client connection with the user it logged in as.
fn connections(monitor_port: u16) -> anyhow::Result<serde_json::Value> {
    use std::io::{Read, Write};
    let mut tcp = std::net::TcpStream::connect(("127.0.0.1", monitor_port))?;
    tcp.set_read_timeout(Some(Duration::from_secs(5)))?;
    tcp.write_all(b"GET /connz?auth=1 HTTP/1.0\r\nHost: nats\r\n\r\n")?;
    let mut response = String::new();
    tcp.read_to_string(&mut response)?;
    let (_, body) = response
        .split_once("\r\n\r\n")
        .context("a response without a body")?;
    Ok(serde_json::from_str(body)?)
}

#[test]
fn each_service_logs_in_to_nats_as_itself() -> anyhow::Result<()> {
    let mut run = Run::start()?;
    let connz = connections(run.nats_monitor_port)?;
    let users: std::collections::BTreeSet<String> = connz["connections"]
        .as_array()
        .context("connections")?
        .iter()
        .filter_map(|c| c["authorized_user"].as_str())
        .map(String::from)
        .collect();
    run.signal("INT", &format!("-{}", run.child.id()))?;
    let _ = run.child.wait();
    let expected: std::collections::BTreeSet<String> = dyschat_protocol::permissions::Service::ALL
        .iter()
        .map(|s| s.user().to_string())
        .collect();
    ensure!(users == expected, "NATS users of the dev mesh: {users:?}");
    let nats_log = std::fs::read_to_string(run.dir.path().join("logs/nats.log"))?;
    ensure!(
        !nats_log.contains("Violation"),
        "the dev NATS refused a service:\n{nats_log}"
    );
    Ok(())
}
