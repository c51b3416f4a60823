//! Read markers over the `dyschat_read` bucket ([`ReadMarkerStore`]) and the per-user event
//! subjects over core NATS ([`UserEvents`]).
//!
//! A marker is its `seq` as decimal text under `<user_id>.<room_id>`; writes are KV `create`
//! (a new key) or `update` at the revision read, so two devices reading at once never move a
//! marker back: the loser re-reads and decides again (in the core). All of a user's markers for
//! `GET /api/v1/me/rooms` are one batched direct get (`multi_last` over the rooms' keys), not a
//! get per room; so are a small room's members' markers for its receipts.

use std::time::Duration;

use async_nats::jetstream::kv::{self, CreateErrorKind, Operation, UpdateErrorKind};
use bytes::Bytes;
use dyschat_protocol::{
    layout,
    subjects::{self, UserEventKind},
    wire::ReadMarkerEvent,
};
use dyschat_runtime::direct::{DirectGet, MAX_RESULTS};
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use futures::{FutureExt, StreamExt};

use super::{bounded, publish_json};
use crate::ports::{
    PortError, PortResult, ReadMarkerStore, StoredMarker, UserEventMessage, UserEvents,
};

/// How long one batch of markers may take.
const BATCH_TIMEOUT: Duration = Duration::from_secs(5);

pub(crate) struct KvReadMarkers {
    kv: kv::Store,
    client: async_nats::Client,
}

impl KvReadMarkers {
    pub(crate) fn new(kv: kv::Store, client: async_nats::Client) -> Self {
        KvReadMarkers { kv, client }
    }
}

pub(super) fn parse_seq(value: &[u8]) -> PortResult<u64> {
    std::str::from_utf8(value)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| PortError::Decode("a read marker is not a number".into()))
}

impl ReadMarkerStore for KvReadMarkers {
    fn marker<'a>(
        &'a self,
        user_id: &'a str,
        room_id: &'a str,
    ) -> BoxFuture<'a, PortResult<Option<StoredMarker>>> {
        async move {
            let entry = bounded(self.kv.entry(layout::read_key(user_id, room_id))).await?;
            match entry {
                Some(e) if e.operation == Operation::Put => Ok(Some(StoredMarker {
                    seq: parse_seq(&e.value)?,
                    revision: e.revision,
                })),
                _ => Ok(None),
            }
        }
        .boxed()
    }

    fn put_if<'a>(
        &'a self,
        user_id: &'a str,
        room_id: &'a str,
        seq: u64,
        expected: Option<u64>,
    ) -> BoxFuture<'a, PortResult<bool>> {
        async move {
            let key = layout::read_key(user_id, room_id);
            let value = Bytes::from(seq.to_string());
            let written = match expected {
                None => match timed(self.kv.create(key, value)).await? {
                    Ok(_) => true,
                    Err(e) if e.kind() == CreateErrorKind::AlreadyExists => false,
                    Err(e) => return Err(PortError::failed(e)),
                },
                Some(revision) => match timed(self.kv.update(key, value, revision)).await? {
                    Ok(_) => true,
                    Err(e) if e.kind() == UpdateErrorKind::WrongLastRevision => false,
                    Err(e) => return Err(PortError::failed(e)),
                },
            };
            Ok(written)
        }
        .boxed()
    }

    fn markers<'a>(
        &'a self,
        user_id: &'a str,
        room_ids: &'a [String],
    ) -> BoxFuture<'a, PortResult<Vec<(String, u64)>>> {
        async move {
            let keys: Vec<String> = room_ids
                .iter()
                .map(|room| layout::read_key(user_id, room))
                .collect();
            let found = self.last_markers(&keys).await?;
            Ok(found
                .into_iter()
                .filter_map(|(key, seq)| {
                    layout::read_room(user_id, &key).map(|room| (room.to_string(), seq))
                })
                .collect())
        }
        .boxed()
    }

    fn room_markers<'a>(
        &'a self,
        room_id: &'a str,
        user_ids: &'a [String],
    ) -> BoxFuture<'a, PortResult<Vec<(String, u64)>>> {
        async move {
            let keys: Vec<String> = user_ids
                .iter()
                .map(|user| layout::read_key(user, room_id))
                .collect();
            let found = self.last_markers(&keys).await?;
            Ok(found
                .into_iter()
                .filter_map(|(key, seq)| {
                    let (user, room) = key.split_once('.')?;
                    (room == room_id).then(|| (user.to_string(), seq))
                })
                .collect())
        }
        .boxed()
    }
}

impl KvReadMarkers {
    /// The markers stored under `keys`, `(key, seq)`, keys without one left out: one batched
    /// read per 1,024 keys.
    async fn last_markers(&self, keys: &[String]) -> PortResult<Vec<(String, u64)>> {
        let direct = DirectGet::new(self.client.clone(), BATCH_TIMEOUT);
        let stream = layout::kv_stream(layout::READ_BUCKET);
        let mut out = Vec::new();
        for chunk in keys.chunks(MAX_RESULTS) {
            let subjects: Vec<String> = chunk
                .iter()
                .map(|key| layout::kv_subject(layout::READ_BUCKET, key))
                .collect();
            let batch = direct
                .multi_last(&stream, &subjects, subjects.len(), None)
                .await
                .map_err(PortError::failed)?;
            for m in batch.messages {
                if m.operation != Operation::Put {
                    continue;
                }
                let key = layout::kv_key(layout::READ_BUCKET, &m.subject);
                if let (Some(key), Ok(seq)) = (key, parse_seq(&m.payload)) {
                    out.push((key.to_string(), seq));
                }
            }
        }
        Ok(out)
    }
}

/// `write` within the command deadline, its own result kept for the caller to tell apart.
pub(super) async fn timed<T>(write: impl std::future::Future<Output = T>) -> PortResult<T> {
    tokio::time::timeout(BATCH_TIMEOUT, write)
        .await
        .map_err(|_| PortError::Timeout)
}

pub(crate) struct NatsUserEvents {
    client: async_nats::Client,
}

impl NatsUserEvents {
    pub(crate) fn new(client: async_nats::Client) -> Self {
        NatsUserEvents { client }
    }
}

impl UserEvents for NatsUserEvents {
    fn subscribe<'a>(
        &'a self,
        user_id: &'a str,
    ) -> BoxFuture<'a, PortResult<BoxStream<'static, UserEventMessage>>> {
        async move {
            let filter = subjects::user_events_filter(user_id);
            let subscriber = bounded(self.client.subscribe(filter)).await?;
            // Registered with the server once a flush (a round trip after the SUB) returns.
            bounded(self.client.flush()).await?;
            Ok(subscriber
                .map(|m| UserEventMessage {
                    sequence: m
                        .headers
                        .as_ref()
                        .and_then(super::nats::sequence_headers)
                        .map(|(seq, _)| seq),
                    subject: m.subject.to_string(),
                    payload: m.payload,
                })
                .boxed())
        }
        .boxed()
    }

    fn publish_read<'a>(&'a self, event: &'a ReadMarkerEvent) -> BoxFuture<'a, PortResult<()>> {
        let subject = subjects::user_event(&event.user_id, UserEventKind::ReadMarker);
        publish_json(&self.client, subject, event).boxed()
    }
}
