//! The live ws-agents: every agent keeps an entry (its id) in `dyschat_agents`, refreshed every
//! 10 s with a TTL of 30 s. An eviction waits for a reply from each of them.

use std::collections::HashSet;

use async_nats::jetstream::kv::Operation;
use dyschat_protocol::layout::{kv_key, kv_stream, kv_subject, AGENTS_BUCKET};
use dyschat_runtime::direct::{DirectError, MAX_RESULTS};

use super::{Store, StoreError};

/// Who the live agents are, as far as one batch tells.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum LiveAgents {
    /// The ids of the agents whose entry holds a value (an expired or removed entry's marker
    /// does not count).
    Known(HashSet<String>),
    /// More agents than one batch lists: wait for replies until the bound.
    TooMany,
}

impl Store {
    /// The live agents: one `multi_last` over `$KV.dyschat_agents.*`.
    pub async fn live_agents(&self) -> Result<LiveAgents, StoreError> {
        let filter = [kv_subject(AGENTS_BUCKET, "*")];
        match self
            .direct
            .multi_last(&kv_stream(AGENTS_BUCKET), &filter, MAX_RESULTS, None)
            .await
        {
            Ok(batch) => Ok(LiveAgents::Known(
                batch
                    .messages
                    .iter()
                    .filter(|m| m.operation == Operation::Put)
                    .filter_map(|m| kv_key(AGENTS_BUCKET, &m.subject))
                    .map(str::to_string)
                    .collect(),
            )),
            Err(DirectError::TooManyResults) => Ok(LiveAgents::TooMany),
            Err(e) => Err(e.into()),
        }
    }
}
