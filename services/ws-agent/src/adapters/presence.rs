//! [`PresenceStore`] over the presence bucket: this agent's entry `<user_id>.<agent_id>` per user
//! with a local socket, and presence events on `dyschat.events.presence.<user_id>`.
//!
//! "Online elsewhere" is one batched direct get of the last entry of every key
//! `<user_id>.*` (one per agent the user has a socket on), not a listing of the bucket: its cost
//! does not grow with the number of users online.

use std::time::Duration;

use async_nats::jetstream::kv;
use dyschat_protocol::{layout, subjects, wire::PresenceEvent};
use futures::future::BoxFuture;
use futures::FutureExt;

use super::{live_keys, publish_json};
use crate::ports::{PortError, PortResult, PresenceStore};

/// How long the "online elsewhere" lookup may take.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(5);
/// The most entries (agents) of one user looked at.
const MAX_AGENTS_PER_USER: usize = 256;

pub(crate) struct KvPresence {
    kv: kv::Store,
    client: async_nats::Client,
    agent_id: String,
}

impl KvPresence {
    pub(crate) fn new(kv: kv::Store, client: async_nats::Client, agent_id: String) -> Self {
        KvPresence {
            kv,
            client,
            agent_id,
        }
    }
}

impl PresenceStore for KvPresence {
    fn set_local<'a>(&'a self, user_id: &'a str, online: bool) -> BoxFuture<'a, PortResult<()>> {
        async move {
            let key = layout::presence_key(user_id, &self.agent_id);
            if online {
                self.kv
                    .put(key, "1".into())
                    .await
                    .map(|_| ())
                    .map_err(PortError::failed)
            } else {
                self.kv.delete(key).await.map_err(PortError::failed)
            }
        }
        .boxed()
    }

    fn online_elsewhere<'a>(&'a self, user_id: &'a str) -> BoxFuture<'a, PortResult<bool>> {
        async move {
            let own = layout::kv_subject(
                layout::PRESENCE_BUCKET,
                &layout::presence_key(user_id, &self.agent_id),
            );
            let live = live_keys(
                &self.client,
                layout::PRESENCE_BUCKET,
                &layout::presence_filter(user_id),
                MAX_AGENTS_PER_USER,
                LOOKUP_TIMEOUT,
            )
            .await?;
            Ok(live.iter().any(|subject| *subject != own))
        }
        .boxed()
    }

    fn announce<'a>(&'a self, event: &'a PresenceEvent) -> BoxFuture<'a, PortResult<()>> {
        publish_json(&self.client, subjects::presence(&event.user_id), event).boxed()
    }
}
