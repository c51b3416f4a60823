//! Who is online: a user is online while they have at least one open socket on any agent.
//!
//! Each agent keeps one entry `<user_id>.<agent_id>` in the presence bucket per user with a local
//! socket, and refreshes it well within the bucket's TTL; an agent that dies simply stops
//! refreshing, and its users go offline when their entries expire. The rooms service reads the
//! bucket to answer `online` in member lists; a presence event tells other agents to notify rooms.

use std::collections::HashMap;
use std::sync::Mutex;

use async_nats::jetstream::kv;
use dyschat_protocol::{layout, subjects, wire::PresenceEvent};
use futures::TryStreamExt;
use tokio_util::sync::CancellationToken;

pub struct Presence {
    kv: kv::Store,
    client: async_nats::Client,
    agent_id: String,
    sockets_per_user: Mutex<HashMap<String, usize>>,
}

impl Presence {
    pub fn new(kv: kv::Store, client: async_nats::Client, agent_id: String) -> Self {
        Presence {
            kv,
            client,
            agent_id,
            sockets_per_user: Mutex::new(HashMap::new()),
        }
    }

    fn key(&self, user_id: &str) -> String {
        format!("{user_id}.{}", self.agent_id)
    }

    fn counts(&self) -> std::sync::MutexGuard<'_, HashMap<String, usize>> {
        self.sockets_per_user
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// Number of sockets `user_id` has open on this agent.
    pub fn local_sockets(&self, user_id: &str) -> usize {
        self.counts().get(user_id).copied().unwrap_or(0)
    }

    /// A socket of `user_id` authenticated.
    pub async fn opened(&self, user_id: &str) {
        let first = {
            let mut counts = self.counts();
            let n = counts.entry(user_id.to_string()).or_insert(0);
            *n += 1;
            *n == 1
        };
        if first {
            if let Err(e) = self.kv.put(self.key(user_id), "1".into()).await {
                tracing::warn!(error = %e, "presence put failed");
            }
            self.announce(user_id, true).await;
        }
    }

    /// A socket of `user_id` closed.
    pub async fn closed(&self, user_id: &str) {
        let last = {
            let mut counts = self.counts();
            match counts.get_mut(user_id) {
                Some(n) if *n > 1 => {
                    *n -= 1;
                    false
                }
                Some(_) => {
                    counts.remove(user_id);
                    true
                }
                None => false,
            }
        };
        if last {
            if let Err(e) = self.kv.delete(self.key(user_id)).await {
                tracing::warn!(error = %e, "presence delete failed");
            }
            if !self.online_elsewhere(user_id).await {
                self.announce(user_id, false).await;
            }
        }
    }

    async fn online_elsewhere(&self, user_id: &str) -> bool {
        let prefix = format!("{user_id}.");
        match self.kv.keys().await {
            Ok(keys) => keys
                .try_filter(|k| futures::future::ready(k.starts_with(&prefix)))
                .try_next()
                .await
                .ok()
                .flatten()
                .is_some(),
            Err(_) => false,
        }
    }

    async fn announce(&self, user_id: &str, online: bool) {
        let event = PresenceEvent {
            user_id: user_id.to_string(),
            online,
        };
        if let Ok(bytes) = serde_json::to_vec(&event) {
            if let Err(e) = self
                .client
                .publish(subjects::presence(user_id), bytes.into())
                .await
            {
                tracing::warn!(error = %e, "presence publish failed");
            }
        }
    }

    /// Keeps this agent's entries alive until `shutdown`, then removes them.
    pub async fn refresh_until(&self, shutdown: CancellationToken) {
        let mut tick = tokio::time::interval(layout::PRESENCE_REFRESH);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tick.tick() => {}
            }
            let users: Vec<String> = self.counts().keys().cloned().collect();
            for user in users {
                if let Err(e) = self.kv.put(self.key(&user), "1".into()).await {
                    tracing::warn!(error = %e, "presence refresh failed");
                    break;
                }
            }
        }
        let users: Vec<String> = self.counts().drain().map(|(u, _)| u).collect();
        for user in users {
            let _ = self.kv.delete(self.key(&user)).await;
        }
    }
}
