//! Child processes the harness starts, each owned by one value that kills and reaps it when
//! dropped, and stopped the one way every caller wants it: SIGTERM, a bounded wait, SIGKILL.
//!
//! One copy of that for the servers ([`crate::NatsServer`], [`crate::RedisServer`]), the service
//! binaries ([`crate::procs::ServiceProcess`], which dyschat-bench runs its mesh with too) and the
//! tests' own processes, so a fix to how a process is stopped reaches all of them.

use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// How often a stopping child is asked whether it has exited.
const POLL: Duration = Duration::from_millis(20);

/// How [`OwnedChild::stop`] ended.
#[derive(Debug)]
pub enum Stopped {
    /// There was no child to stop.
    NotRunning,
    /// The child exited with this status: by itself before, or after SIGTERM within the timeout.
    Exited(ExitStatus),
    /// SIGTERM could not be sent; the child was killed with SIGKILL and reaped.
    NotSignalled,
    /// The child was still running when the timeout passed (or its state could not be read); it
    /// was killed with SIGKILL and reaped.
    TimedOut,
}

/// At most one child process, killed with SIGKILL and reaped when it is replaced or dropped, so
/// a failing test or bench leaves nothing running behind it.
#[derive(Debug, Default)]
pub struct OwnedChild(Option<Child>);

impl OwnedChild {
    /// Owns `child`, killing the one owned before (if any).
    pub fn set(&mut self, child: Child) {
        self.kill();
        self.0 = Some(child);
    }

    /// The child's process id while one is owned.
    pub fn pid(&self) -> Option<u32> {
        self.0.as_ref().map(Child::id)
    }

    /// Whether the child is alive.
    pub fn is_running(&mut self) -> bool {
        matches!(self.0.as_mut().map(Child::try_wait), Some(Ok(None)))
    }

    /// The exit status if the child has exited by itself; it is then no longer owned.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        let status = self.0.as_mut().and_then(|c| c.try_wait().ok().flatten());
        if status.is_some() {
            self.0 = None;
        }
        status
    }

    /// SIGKILL and reap: a crash, as far as the process and its clients can tell.
    pub fn kill(&mut self) {
        if let Some(child) = self.0.take() {
            kill_and_reap(child);
        }
    }

    /// SIGTERM, then up to `timeout` for the child to exit, then SIGKILL; always reaps it. A
    /// child that has already exited is not signalled (its pid may belong to another process).
    pub async fn stop(&mut self, timeout: Duration) -> Stopped {
        let Some(mut child) = self.0.take() else {
            return Stopped::NotRunning;
        };
        if let Ok(Some(status)) = child.try_wait() {
            return Stopped::Exited(status);
        }
        if !sigterm(&child) {
            kill_and_reap(child);
            return Stopped::NotSignalled;
        }
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            match child.try_wait() {
                Ok(Some(status)) => return Stopped::Exited(status),
                Ok(None) => tokio::time::sleep(POLL).await,
                Err(_) => break,
            }
        }
        kill_and_reap(child);
        Stopped::TimedOut
    }
}

impl From<Child> for OwnedChild {
    fn from(child: Child) -> Self {
        OwnedChild(Some(child))
    }
}

impl Drop for OwnedChild {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Sends SIGTERM through `kill(1)` (the standard library only sends SIGKILL, and the harness
/// forbids unsafe code); whether it was delivered.
fn sigterm(child: &Child) -> bool {
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Sends `signal` (a name `kill(1)` knows, e.g. `STOP`) to the process `pid`.
pub(crate) fn signal(pid: u32, signal: &str) -> anyhow::Result<()> {
    let status = Command::new("kill")
        .args([&format!("-{signal}"), &pid.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()?;
    anyhow::ensure!(status.success(), "kill -{signal} {pid} failed: {status}");
    Ok(())
}

fn kill_and_reap(mut child: Child) {
    let _ = child.kill();
    let _ = child.wait();
}
