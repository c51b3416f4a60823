//! Resident memory per idle authenticated WebSocket on one agent.

use std::time::{Duration, Instant};

use anyhow::bail;
use futures::StreamExt;
use serde::Serialize;

use crate::client::{self, BenchUser};
use crate::env::{rss_kib, Env};

#[derive(Debug, Clone, Serialize)]
pub struct Idle {
    pub requested: usize,
    /// Fewer than requested when the open-file hard limit (which only a process with
    /// CAP_SYS_RESOURCE can raise) does not leave room for them.
    pub sockets: usize,
    pub nofile_hard_limit: u64,
    pub rss_before_kib: u64,
    pub rss_after_kib: u64,
    pub kib_per_socket: f64,
    pub open_secs: f64,
}

/// Starts a fresh agent, reads its VmRSS, opens `sockets` idle sockets (distinct users, token in
/// the URL, `ready` received), waits for the agent to settle, reads VmRSS again, then closes the
/// sockets and stops the agent.
pub async fn measure(env: &mut Env, tag: &str, requested: usize) -> anyhow::Result<Idle> {
    // The agent and the bench each hold one descriptor per socket plus a few dozen of their own.
    let (_, hard) = rlimit::Resource::NOFILE.get().unwrap_or((1024, 1024));
    let room = usize::try_from(hard.saturating_sub(200)).unwrap_or(usize::MAX);
    let sockets = requested.min(room);
    let i = env.add_agent().await?;
    let Some(pid) = env.agents[i].0.pid() else {
        bail!("the idle agent is not running");
    };
    let addr = env.ws_addr(i);
    let users: Vec<BenchUser> = (0..sockets)
        .map(|n| BenchUser::mint(format!("{tag}u{n}"), format!("{tag}{n}")))
        .collect::<Result<_, _>>()?;
    // Let start-up allocations settle.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = rss_kib(pid)?;
    let start = Instant::now();
    let opened: Vec<anyhow::Result<client::Ws>> = futures::stream::iter(users.iter())
        .map(|u| client::connect(addr, &u.token))
        .buffer_unordered(256)
        .collect()
        .await;
    let open_secs = start.elapsed().as_secs_f64();
    let mut open = Vec::with_capacity(sockets);
    let mut failed = 0usize;
    let mut first_error = None;
    for o in opened {
        match o {
            Ok(ws) => open.push(ws),
            Err(e) => {
                failed += 1;
                first_error.get_or_insert(e);
            }
        }
    }
    if let Some(e) = first_error {
        bail!("{failed} of {sockets} idle sockets failed to open; first: {e:#}");
    }
    // Presence announcements and their KV writes finish; the allocator settles.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = rss_kib(pid)?;
    // Dropping closes the TCP connections; the agent cleans up as for any vanished client.
    drop(open);
    let mut agent = env.agents.remove(i).0;
    agent.stop(Duration::from_secs(15)).await;
    Ok(Idle {
        requested,
        sockets,
        nofile_hard_limit: hard,
        rss_before_kib: before,
        rss_after_kib: after,
        kib_per_socket: after.saturating_sub(before) as f64 / sockets as f64,
        open_secs,
    })
}
