//! Who of a page of users is online: `dyschat_presence` holds `<user_id>.<agent_id>` while the
//! user has a socket on that agent (ws-agents write it, with a TTL).
//!
//! Only the page's users are looked up: one `multi_last` of `$KV.dyschat_presence.<user_id>.*`
//! per chunk of users, so a page costs the same in a room of 100,000 as in a room of 10, and
//! nothing scans the whole bucket; a page's chunks are asked for a few at once. A user is online
//! when the last entry of any of their keys is a value (a delete or purge marker is a closed
//! socket).

use std::collections::HashSet;

use dyschat_protocol::layout::{
    kv_key, kv_stream, kv_subject, presence_filter, presence_user, PRESENCE_BUCKET,
};
use dyschat_runtime::direct::{Batch, DirectError, StoredMessage, MAX_RESULTS};
use futures::stream::{FuturesUnordered, StreamExt};

use async_nats::jetstream::kv::Operation;

use super::{Store, StoreError};

/// Users per `multi_last` request: at most [`MAX_RESULTS`] keys may match one request, so a chunk
/// leaves room for several agents per user; a chunk that still matches too many is split.
const CHUNK: usize = 128;

/// Chunk requests in flight at once for one page.
const PARALLEL: usize = 4;

impl Store {
    /// The users of `user_ids` with at least one open socket.
    pub async fn online(&self, user_ids: &[&str]) -> Result<HashSet<String>, StoreError> {
        let stream = kv_stream(PRESENCE_BUCKET);
        let mut online = HashSet::new();
        let mut pending: Vec<&[&str]> = user_ids.chunks(CHUNK).collect();
        let mut in_flight = FuturesUnordered::new();
        loop {
            while in_flight.len() < PARALLEL {
                let Some(chunk) = pending.pop() else { break };
                in_flight.push(self.presence_of(&stream, chunk));
            }
            let Some((chunk, result)) = in_flight.next().await else {
                break;
            };
            match result {
                Ok(batch) => online.extend(online_users(&batch.messages)),
                Err(DirectError::TooManyResults) if chunk.len() > 1 => {
                    let (a, b) = chunk.split_at(chunk.len() / 2);
                    pending.push(a);
                    pending.push(b);
                }
                // One user with more than MAX_RESULTS keys has sockets on that many agents.
                Err(DirectError::TooManyResults) => {
                    online.extend(chunk.iter().map(|u| u.to_string()));
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(online)
    }

    /// The last entry of every presence key of the chunk's users.
    async fn presence_of<'a>(
        &self,
        stream: &str,
        chunk: &'a [&'a str],
    ) -> (&'a [&'a str], Result<Batch, DirectError>) {
        let filters: Vec<String> = chunk
            .iter()
            .map(|u| kv_subject(PRESENCE_BUCKET, &presence_filter(u)))
            .collect();
        let result = self
            .direct
            .multi_last(stream, &filters, MAX_RESULTS, None)
            .await;
        (chunk, result)
    }
}

/// The users whose presence keys' last entries include a value.
pub(crate) fn online_users(messages: &[StoredMessage]) -> HashSet<String> {
    messages
        .iter()
        .filter(|m| m.operation == Operation::Put)
        .filter_map(|m| kv_key(PRESENCE_BUCKET, &m.subject))
        .filter_map(presence_user)
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn entry(key: &str, operation: Operation) -> StoredMessage {
        StoredMessage {
            subject: kv_subject(PRESENCE_BUCKET, key),
            sequence: 1,
            operation,
            payload: Bytes::from_static(b"1"),
            headers: Default::default(),
        }
    }

    #[test]
    fn a_user_is_online_while_any_key_holds_a_value() {
        let online = online_users(&[
            entry("alice.agent1", Operation::Put),
            entry("carol.agent2", Operation::Delete),
            entry("carol.agent3", Operation::Put),
            entry("dave.agent1", Operation::Purge),
            entry("bob.agent1", Operation::Delete),
        ]);
        let mut online: Vec<_> = online.into_iter().collect();
        online.sort();
        assert_eq!(online, ["alice", "carol"]);
    }

    #[test]
    fn keys_of_other_shapes_or_buckets_are_ignored() {
        let mut other = entry("eve.agent1", Operation::Put);
        other.subject = kv_subject("dyschat_members", "eve.agent1");
        let online = online_users(&[
            entry("junk", Operation::Put),
            entry("a.b.c", Operation::Put),
            other,
        ]);
        assert!(online.is_empty(), "{online:?}");
    }
}
