//! The agent registry: every live agent keeps an entry (its id) in the agents bucket, refreshed
//! well within the bucket's TTL, and counts the entries of all, so the mesh-wide rate limits know
//! how many agents share a budget when they must limit on their own (Redis away).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::kv;
use dyschat_protocol::layout;
use tokio_util::sync::CancellationToken;

use super::live_keys;
use crate::ports::PortResult;

/// The most agents counted (one batch).
const MAX_AGENTS: usize = 1024;
/// How often the agents are counted (more often than entries are refreshed, so an agent that
/// just started is counted by the others within seconds).
const COUNT_EVERY: Duration = Duration::from_secs(2);
const COUNT_TIMEOUT: Duration = Duration::from_secs(5);

pub(crate) struct AgentRegistry {
    kv: kv::Store,
    client: async_nats::Client,
    agent_id: String,
}

impl AgentRegistry {
    pub(crate) fn new(kv: kv::Store, client: async_nats::Client, agent_id: String) -> Self {
        AgentRegistry {
            kv,
            client,
            agent_id,
        }
    }

    /// The live agents: entries whose last operation is a put (markers do not count).
    async fn count(&self) -> PortResult<usize> {
        let live = live_keys(
            &self.client,
            layout::AGENTS_BUCKET,
            "*",
            MAX_AGENTS,
            COUNT_TIMEOUT,
        )
        .await?;
        Ok(live.len())
    }

    /// Refreshes this agent's entry every [`layout::PRESENCE_REFRESH`] and counts the agents
    /// every [`COUNT_EVERY`] until `shutdown`, then removes the entry.
    pub(crate) async fn run(&self, agents: Arc<AtomicUsize>, shutdown: CancellationToken) {
        let mut tick = tokio::time::interval(COUNT_EVERY);
        let mut refreshed: Option<tokio::time::Instant> = None;
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tick.tick() => {}
            }
            if refreshed.is_none_or(|at| at.elapsed() >= layout::PRESENCE_REFRESH) {
                match self.kv.put(&self.agent_id, "1".into()).await {
                    Ok(_) => refreshed = Some(tokio::time::Instant::now()),
                    Err(e) => tracing::warn!(error = %e, "agent registry refresh failed"),
                }
            }
            match self.count().await {
                Ok(n) => agents.store(n.max(1), Ordering::Relaxed),
                Err(e) => tracing::debug!(error = %e, "counting agents failed"),
            }
        }
        let _ = self.kv.delete(&self.agent_id).await;
    }
}
