//! [`FeedStore`] over the `DYSCHAT_FEED` stream (one subject per user) and the
//! `dyschat_feed_read` bucket.
//!
//! JetStream has no reverse iteration, so a page (newest first) is one direct get per entry:
//! the last message of the user's subject at or below a sequence (`multi_last` with
//! `up_to_seq`), each below the one before; at most a page's `limit` of them (100), plus one
//! read of the user's oldest entry that tells whether older pages exist. A count above a marker
//! is one direct get too: the first entry after it, whose end-of-batch says how many more match
//! (`Nats-Num-Pending`). The marker is written by compare-and-set, like read markers.

use std::time::Duration;

use async_nats::jetstream::kv::{self, CreateErrorKind, Operation, UpdateErrorKind};
use bytes::Bytes;
use dyschat_protocol::{layout, subjects, wire::StoredNotification};
use dyschat_runtime::direct::DirectGet;
use futures::future::BoxFuture;
use futures::FutureExt;

use super::bounded;
use super::read::{parse_seq, timed};
use crate::ports::{FeedPage, FeedStore, PortError, PortResult, StoredMarker};

/// How long one direct get may take.
const READ_TIMEOUT: Duration = Duration::from_secs(5);

pub(crate) struct JetStreamFeed {
    direct: DirectGet,
    markers: kv::Store,
}

impl JetStreamFeed {
    pub(crate) fn new(client: async_nats::Client, markers: kv::Store) -> Self {
        JetStreamFeed {
            direct: DirectGet::new(client, READ_TIMEOUT),
            markers,
        }
    }

    /// The user's newest entry at or below `up_to` (any when `None`).
    async fn last_up_to(
        &self,
        user_id: &str,
        up_to: Option<u64>,
    ) -> PortResult<Option<(u64, StoredNotification)>> {
        let subject = [subjects::feed(user_id)];
        let batch = self
            .direct
            .multi_last(layout::FEED_STREAM, &subject, 1, up_to)
            .await
            .map_err(PortError::failed)?;
        match batch.messages.into_iter().next() {
            Some(m) => {
                let stored = serde_json::from_slice(&m.payload)
                    .map_err(|e| PortError::Decode(e.to_string()))?;
                Ok(Some((m.sequence, stored)))
            }
            None => Ok(None),
        }
    }

    /// The first of the user's entries from `from` on, and how many follow it.
    async fn first_from(&self, user_id: &str, from: u64) -> PortResult<Option<(u64, u64)>> {
        let batch = self
            .direct
            .next_by_subject(layout::FEED_STREAM, from, &subjects::feed(user_id), 1)
            .await
            .map_err(PortError::failed)?;
        Ok(batch
            .messages
            .first()
            .map(|m| (m.sequence, batch.num_pending)))
    }
}

impl FeedStore for JetStreamFeed {
    fn page<'a>(
        &'a self,
        user_id: &'a str,
        before: Option<u64>,
        limit: usize,
    ) -> BoxFuture<'a, PortResult<FeedPage>> {
        async move {
            let oldest = self.first_from(user_id, 0).await?.map(|(seq, _)| seq);
            let Some(oldest) = oldest else {
                return Ok((Vec::new(), false));
            };
            let mut page = Vec::with_capacity(limit);
            let mut up_to = match before {
                Some(0 | 1) => return Ok((Vec::new(), false)),
                Some(before) => Some(before - 1),
                None => None,
            };
            while page.len() < limit {
                let Some((seq, stored)) = self.last_up_to(user_id, up_to).await? else {
                    break;
                };
                page.push((seq, stored));
                if seq <= oldest {
                    break;
                }
                up_to = Some(seq - 1);
            }
            let more = page.last().is_some_and(|(seq, _)| *seq > oldest);
            Ok((page, more))
        }
        .boxed()
    }

    fn count_after<'a>(&'a self, user_id: &'a str, after: u64) -> BoxFuture<'a, PortResult<u64>> {
        async move {
            Ok(self
                .first_from(user_id, after.saturating_add(1))
                .await?
                .map_or(0, |(_, pending)| pending + 1))
        }
        .boxed()
    }

    fn newest<'a>(&'a self, user_id: &'a str) -> BoxFuture<'a, PortResult<u64>> {
        async move {
            Ok(self
                .last_up_to(user_id, None)
                .await?
                .map_or(0, |(seq, _)| seq))
        }
        .boxed()
    }

    fn marker<'a>(&'a self, user_id: &'a str) -> BoxFuture<'a, PortResult<Option<StoredMarker>>> {
        async move {
            match bounded(self.markers.entry(user_id)).await? {
                Some(e) if e.operation == Operation::Put => Ok(Some(StoredMarker {
                    seq: parse_seq(&e.value)?,
                    revision: e.revision,
                })),
                _ => Ok(None),
            }
        }
        .boxed()
    }

    fn put_marker_if<'a>(
        &'a self,
        user_id: &'a str,
        up_to: u64,
        expected: Option<u64>,
    ) -> BoxFuture<'a, PortResult<bool>> {
        async move {
            let value = Bytes::from(up_to.to_string());
            let written = match expected {
                None => match timed(self.markers.create(user_id, value)).await? {
                    Ok(_) => true,
                    Err(e) if e.kind() == CreateErrorKind::AlreadyExists => false,
                    Err(e) => return Err(PortError::failed(e)),
                },
                Some(revision) => {
                    match timed(self.markers.update(user_id, value, revision)).await? {
                        Ok(_) => true,
                        Err(e) if e.kind() == UpdateErrorKind::WrongLastRevision => false,
                        Err(e) => return Err(PortError::failed(e)),
                    }
                }
            };
            Ok(written)
        }
        .boxed()
    }
}
