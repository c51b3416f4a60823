//! Who is online: a user is online while they have at least one open socket on any agent.
//!
//! Each agent keeps one entry per user with a local socket in the presence bucket and refreshes
//! it well within the bucket's TTL; an agent that dies simply stops refreshing, and its users go
//! offline when their entries expire. The rooms service reads the bucket to answer `online` in
//! member lists; a presence event tells the agents to notify the rooms concerned. Only the first
//! socket of a user on this agent and the last one to close touch the store.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use dyschat_protocol::{layout, wire::PresenceEvent};
use tokio_util::sync::CancellationToken;

use crate::ports::PresenceStore;

pub(crate) struct Presence {
    store: Arc<dyn PresenceStore>,
    sockets_per_user: Mutex<HashMap<String, usize>>,
}

impl Presence {
    pub(crate) fn new(store: Arc<dyn PresenceStore>) -> Self {
        Presence {
            store,
            sockets_per_user: Mutex::new(HashMap::new()),
        }
    }

    fn counts(&self) -> MutexGuard<'_, HashMap<String, usize>> {
        self.sockets_per_user
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// Whether `user_id` has a socket open here or on another agent (a direct room's peer).
    pub(crate) async fn online(&self, user_id: &str) -> bool {
        if self.counts().get(user_id).is_some_and(|n| *n > 0) {
            return true;
        }
        self.store.online_elsewhere(user_id).await.unwrap_or(false)
    }

    /// A socket of `user_id` authenticated.
    pub(crate) async fn opened(&self, user_id: &str) {
        let first = {
            let mut counts = self.counts();
            let n = counts.entry(user_id.to_string()).or_insert(0);
            *n += 1;
            *n == 1
        };
        if first {
            if let Err(e) = self.store.set_local(user_id, true).await {
                tracing::warn!(error = %e, "presence put failed");
            }
            self.announce(user_id, true).await;
        }
    }

    /// A socket of `user_id` closed.
    pub(crate) async fn closed(&self, user_id: &str) {
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
            if let Err(e) = self.store.set_local(user_id, false).await {
                tracing::warn!(error = %e, "presence delete failed");
            }
            match self.store.online_elsewhere(user_id).await {
                Ok(true) => {}
                Ok(false) => self.announce(user_id, false).await,
                // Unknown: member lists (read from the bucket) already say offline; say so too.
                Err(e) => {
                    tracing::warn!(error = %e, "presence lookup failed");
                    self.announce(user_id, false).await;
                }
            }
        }
    }

    async fn announce(&self, user_id: &str, online: bool) {
        let event = PresenceEvent {
            user_id: user_id.to_string(),
            online,
        };
        if let Err(e) = self.store.announce(&event).await {
            tracing::warn!(error = %e, "presence publish failed");
        }
    }

    /// Keeps this agent's entries alive until `shutdown`, then removes them.
    pub(crate) async fn refresh_until(&self, shutdown: CancellationToken) {
        let mut tick = tokio::time::interval(layout::PRESENCE_REFRESH);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tick.tick() => {}
            }
            let users: Vec<String> = self.counts().keys().cloned().collect();
            for user in users {
                if let Err(e) = self.store.set_local(&user, true).await {
                    tracing::warn!(error = %e, "presence refresh failed");
                    break;
                }
            }
        }
        let users: Vec<String> = self.counts().drain().map(|(u, _)| u).collect();
        for user in users {
            let _ = self.store.set_local(&user, false).await;
        }
    }
}
