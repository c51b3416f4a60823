//! The eviction responder: every agent subscribes to `dyschat.evict.*` (not in a queue group,
//! so each one hears every eviction), applies each one with the handler it was given (the core's
//! `evict`, which never waits) and replies `EvictionAck {eviction_id, agent_id}` to the request's
//! reply subject, also when no socket of its was concerned. The rooms service answers the kick,
//! ban or deletion once every live agent replied (or its bound passed).

use async_nats::Subject;
use dyschat_protocol::subjects;
use dyschat_protocol::wire::{Eviction, EvictionAck};
use futures::StreamExt;
use tokio_util::sync::CancellationToken;

use super::bounded;
use crate::ports::PortResult;

/// A subscription to every eviction.
pub(crate) struct Evictions {
    client: async_nats::Client,
    subscriber: async_nats::Subscriber,
    agent_id: String,
}

impl Evictions {
    pub(crate) async fn subscribe(
        client: async_nats::Client,
        agent_id: String,
    ) -> PortResult<Self> {
        let subscriber = bounded(client.subscribe(subjects::EVICTION_WILDCARD.to_string())).await?;
        Ok(Evictions {
            client,
            subscriber,
            agent_id,
        })
    }

    /// Answers evictions until `shutdown`: `apply` each (it must not wait), then reply.
    pub(crate) async fn run(mut self, shutdown: CancellationToken, apply: impl Fn(&Eviction)) {
        loop {
            let message = tokio::select! {
                _ = shutdown.cancelled() => break,
                next = self.subscriber.next() => match next {
                    Some(m) => m,
                    None => break,
                },
            };
            let eviction = match serde_json::from_slice::<Eviction>(&message.payload) {
                Ok(e) if subjects::parse_eviction(&message.subject) == Some(e.room_id.as_str()) => {
                    e
                }
                Ok(_) => {
                    tracing::debug!(subject = %message.subject, "eviction for another room ignored");
                    continue;
                }
                Err(e) => {
                    tracing::debug!(subject = %message.subject, error = %e, "undecodable eviction ignored");
                    continue;
                }
            };
            apply(&eviction);
            if let Some(reply) = message.reply {
                self.ack(reply, eviction.eviction_id).await;
            }
        }
    }

    async fn ack(&self, reply: Subject, eviction_id: String) {
        let ack = EvictionAck {
            eviction_id,
            agent_id: self.agent_id.clone(),
        };
        let Ok(bytes) = serde_json::to_vec(&ack) else {
            return;
        };
        if let Err(e) = bounded(self.client.publish(reply, bytes.into())).await {
            tracing::warn!(error = %e, "eviction acknowledgement not sent");
        }
    }
}
