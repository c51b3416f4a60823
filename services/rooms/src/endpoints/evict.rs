//! "From the moment a kick, ban or deletion is answered, the user's sockets receive no further
//! frame of that room": the sockets are on the ws-agents, so before answering, rooms sends the
//! [`Eviction`] as a request to `dyschat.evict.<room>` (every agent subscribes, no queue group)
//! and waits for one [`EvictionAck`] per live agent (the entries of `dyschat_agents`), at most
//! the configured bound. An agent that does not answer in time (dead, partitioned, or not yet
//! built to answer) delays the answer by the bound and is logged; the request is answered
//! anyway, since the change is stored and the agents' caches follow from its events.

use std::collections::HashSet;

use dyschat_protocol::wire::{Eviction, EvictionAck};
use dyschat_protocol::{ids, subjects};
use futures::StreamExt;

use super::Rooms;
use crate::store::LiveAgents;

/// How an eviction went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Confirmed {
    /// Live agents that confirmed.
    pub agents: usize,
    /// Whether every live agent confirmed before the bound.
    pub all: bool,
}

impl Rooms {
    /// Sends `eviction` (its id is filled in here) and waits for the live agents' replies.
    pub(super) async fn evict(&self, mut eviction: Eviction) -> Confirmed {
        eviction.eviction_id = ids::new_id();
        let deadline = tokio::time::Instant::now() + self.limits.evict_timeout;
        let live = match self.store.live_agents().await {
            Ok(live) => Some(live),
            Err(e) => {
                tracing::warn!(error = %e, "could not list the live agents; waiting the whole bound");
                None
            }
        };
        if matches!(&live, Some(LiveAgents::Known(agents)) if agents.is_empty()) {
            // No agent, no socket: nothing to wait for (publish anyway, for an agent starting).
            self.send_eviction(&eviction, None).await;
            return Confirmed {
                agents: 0,
                all: true,
            };
        }
        let inbox = self.events.new_inbox();
        let mut replies = match self.events.subscribe(inbox.clone()).await {
            Ok(replies) => replies,
            Err(e) => {
                tracing::warn!(error = %e, "could not subscribe for eviction replies");
                self.send_eviction(&eviction, None).await;
                return Confirmed {
                    agents: 0,
                    all: false,
                };
            }
        };
        self.send_eviction(&eviction, Some(inbox)).await;
        let expected = match live {
            Some(LiveAgents::Known(agents)) => Some(agents),
            _ => None,
        };
        let mut confirmed: HashSet<String> = HashSet::new();
        loop {
            if let Some(expected) = &expected {
                if expected.iter().all(|a| confirmed.contains(a)) {
                    break;
                }
            }
            match tokio::time::timeout_at(deadline, replies.next()).await {
                Ok(Some(message)) => {
                    match serde_json::from_slice::<EvictionAck>(&message.payload) {
                        Ok(ack) if ack.eviction_id == eviction.eviction_id => {
                            confirmed.insert(ack.agent_id);
                        }
                        Ok(_) => {}
                        Err(e) => tracing::debug!(error = %e, "undecodable eviction reply ignored"),
                    }
                }
                Ok(None) | Err(_) => break,
            }
        }
        let all = expected
            .as_ref()
            .is_some_and(|expected| expected.iter().all(|a| confirmed.contains(a)));
        if !all {
            let missing: Vec<&String> = expected
                .iter()
                .flatten()
                .filter(|a| !confirmed.contains(*a))
                .collect();
            tracing::warn!(
                room_id = %eviction.room_id,
                cause = ?eviction.cause,
                confirmed = confirmed.len(),
                ?missing,
                bound_ms = self.limits.evict_timeout.as_millis() as u64,
                "not every live agent confirmed the eviction in time; answering anyway"
            );
        }
        Confirmed {
            agents: confirmed.len(),
            all,
        }
    }

    async fn send_eviction(&self, eviction: &Eviction, reply: Option<String>) {
        let subject = subjects::eviction(&eviction.room_id);
        let payload = match serde_json::to_vec(eviction) {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(error = %e, "could not encode an eviction");
                return;
            }
        };
        let headers = dyschat_runtime::telemetry::headers_with_context().unwrap_or_default();
        let sent = match reply {
            Some(reply) => {
                self.events
                    .publish_with_reply_and_headers(subject, reply, headers, payload.into())
                    .await
            }
            None => {
                self.events
                    .publish_with_headers(subject, headers, payload.into())
                    .await
            }
        };
        if let Err(e) = sent {
            tracing::warn!(error = %e, room_id = %eviction.room_id, "could not send an eviction");
        }
    }
}
