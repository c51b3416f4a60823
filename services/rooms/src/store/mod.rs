//! The buckets and streams the rooms service reads and writes, one module per concern.
//!
//! Every operation costs the same whatever the size of the room: a member is one record
//! (`dyschat_members`, key `<room_id>.<user_id>`), so joining, leaving and the membership check
//! touch one key; the member count is a NATS counter (no compare-and-set, so no contention
//! however many join at once); a members page, the presence of its users and a room list page
//! are batched direct gets of exactly what the page shows (a small room's members in one
//! `multi_last` of its keys, a large room's a page at a time from a stream-sequence cursor).
//!
//! * [`rooms`]: room records, the room index and the room list.
//! * [`members`]: member records, a member page, each user's membership index, and the
//!   revision of each (room, user) key, which orders every change to a user's standing.
//! * [`counter`]: member counts and the per-user quota counters.
//! * [`presence`]: who of a page is online (`dyschat_presence`, written by ws-agents).
//! * [`standing`]: invitations and bans, one key per (room, user), read one at a time or for a
//!   page of rooms at once.
//! * [`direct`]: direct rooms by pair of users, and blocks.
//! * [`agents`]: the live ws-agents (`dyschat_agents`), which must confirm an eviction.
//! * [`purge`]: what a room deletion removes.

mod agents;
mod counter;
mod direct;
mod members;
mod memberships;
mod presence;
mod purge;
mod rooms;
mod standing;

use std::collections::HashMap;
use std::time::Duration;

use async_nats::jetstream::{self, context::PublishErrorKind, kv};
use async_nats::HeaderMap;
use dyschat_protocol::layout;
use dyschat_runtime::config::TopologySettings;
use dyschat_runtime::direct::{DirectError, DirectGet, StoredMessage};
use dyschat_runtime::topology::{self, TopologyError};

pub(crate) use agents::LiveAgents;
pub(crate) use members::{Change, MemberState};
pub(crate) use standing::Presence;

use crate::paging::{Cursor, Page};

/// How long one batched direct get (a page, the presence of a page) may take.
pub(crate) const DIRECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How often a write that lost a race on one key re-reads and retries before giving up. Only
/// requests about the same (room, user) race, so more than a couple of rounds is rare.
pub(crate) const MAX_ATTEMPTS: u32 = 10;

#[derive(Debug, thiserror::Error)]
pub(crate) enum StoreError {
    #[error("{what} unavailable: {detail}")]
    Unavailable { what: &'static str, detail: String },
    #[error("record {key} is corrupt: {detail}")]
    Corrupt { key: String, detail: String },
    /// A key that must be new (a fresh ULID) already existed.
    #[error("key {0} already exists")]
    Exists(String),
    #[error("record {key} kept changing, {attempts} attempts")]
    Contended { key: String, attempts: u32 },
    #[error(transparent)]
    Direct(#[from] DirectError),
}

fn unavailable(what: &'static str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable {
        what,
        detail: e.to_string(),
    }
}

/// The rooms service's handles on JetStream, ensured at start.
pub(crate) struct Store {
    js: jetstream::Context,
    direct: DirectGet,
    rooms: kv::Store,
    room_index: kv::Store,
    members: kv::Store,
    memberships: kv::Store,
    bans: kv::Store,
    invites: kv::Store,
    dms: kv::Store,
    blocks: kv::Store,
    /// Which stream holds a room's messages (`DYSCHAT_STREAM_PARTITIONS`).
    message_streams: dyschat_protocol::streams::MessageStreams,
}

impl Store {
    /// Ensures every bucket and stream the service uses (presence and agents too: ws-agents
    /// write them, and the services may start in any order).
    pub async fn open(
        client: &async_nats::Client,
        config: &TopologySettings,
    ) -> Result<Store, TopologyError> {
        let js = jetstream::new(client.clone());
        let bucket = |c| topology::ensure_bucket(&js, c);
        // At once: on a cluster each creation waits for its replicas to elect a leader.
        let (rooms, room_index, members, memberships, bans, invites) = tokio::try_join!(
            bucket(topology::rooms_bucket(config)),
            bucket(topology::room_index_bucket(config)),
            bucket(topology::members_bucket(config)),
            bucket(topology::memberships_bucket(config)),
            bucket(topology::bans_bucket(config)),
            bucket(topology::invites_bucket(config)),
        )?;
        let (dms, blocks, _presence, _agents, _counters) = tokio::try_join!(
            bucket(topology::dms_bucket(config)),
            bucket(topology::blocks_bucket(config)),
            bucket(topology::presence_bucket(config)),
            bucket(topology::agents_bucket(config)),
            topology::ensure_counters_stream(&js, config),
        )?;
        Ok(Store {
            direct: DirectGet::new(client.clone(), DIRECT_TIMEOUT),
            js,
            rooms,
            room_index,
            members,
            memberships,
            bans,
            invites,
            dms,
            blocks,
            message_streams: config.message_streams(),
        })
    }

    /// The message streams of the mesh.
    pub(crate) fn message_streams(&self) -> dyschat_protocol::streams::MessageStreams {
        self.message_streams
    }

    /// The last entry of each of `keys` of `bucket` that has one (values and markers), in one
    /// batch (at most [`dyschat_runtime::direct::MAX_RESULTS`] keys), by key.
    async fn last_of(
        &self,
        bucket: &str,
        keys: &[String],
    ) -> Result<HashMap<String, StoredMessage>, StoreError> {
        let subjects: Vec<String> = keys.iter().map(|k| layout::kv_subject(bucket, k)).collect();
        let batch = self
            .direct
            .multi_last(
                &layout::kv_stream(bucket),
                &subjects,
                subjects.len().max(1),
                None,
            )
            .await?;
        Ok(batch
            .messages
            .into_iter()
            .filter_map(|m| Some((layout::kv_key(bucket, &m.subject)?.to_string(), m)))
            .collect())
    }

    /// Deletes `key` of `bucket` (a delete marker, so the key keeps a revision) if its last
    /// revision is `revision`; returns the marker's revision, or `None` when the key changed
    /// meanwhile. async-nats' own delete does not return the marker's revision, which orders
    /// membership events, so this publishes the marker itself.
    async fn delete_at(
        &self,
        bucket: &'static str,
        key: &str,
        revision: u64,
    ) -> Result<Option<u64>, StoreError> {
        let mut headers = HeaderMap::new();
        headers.insert("KV-Operation", "DEL");
        headers.insert(
            async_nats::header::NATS_EXPECTED_LAST_SUBJECT_SEQUENCE,
            revision.to_string().as_str(),
        );
        let subject = layout::kv_subject(bucket, key);
        let sent = self
            .js
            .publish_with_headers(subject, headers, bytes::Bytes::new())
            .await
            .map_err(|e| unavailable(bucket, e))?;
        match sent.await {
            Ok(ack) => Ok(Some(ack.sequence)),
            Err(e) if e.kind() == PublishErrorKind::WrongLastSequence => Ok(None),
            Err(e) => Err(unavailable(bucket, e)),
        }
    }
}

impl Store {
    /// One page of the entries of `stream` matching `filter` from `cursor` on, a batch at a time
    /// with `next_by_subj` (see [`Page`]): the member pages of large rooms and the room list
    /// read this one way.
    async fn page_by_subject<T>(
        &self,
        stream: &str,
        filter: &str,
        cursor: Cursor,
        limit: usize,
        mut decode: impl FnMut(&StoredMessage) -> Result<Option<T>, StoreError>,
    ) -> Result<(Vec<T>, Option<Cursor>), StoreError> {
        let mut page = Page::new(cursor, limit);
        while let Some((from, batch)) = page.next_read() {
            let batch = self
                .direct
                .next_by_subject(stream, from, filter, batch)
                .await?;
            page.absorb(batch, &mut decode)?;
        }
        Ok(page.finish())
    }
}

/// The last entry of `key` (a value or a marker), `None` for a key never written.
async fn entry(
    store: &kv::Store,
    what: &'static str,
    key: &str,
) -> Result<Option<kv::Entry>, StoreError> {
    store.entry(key).await.map_err(|e| unavailable(what, e))
}

/// The value of `key` and its revision, `None` for a key never written or deleted.
async fn value<T: serde::de::DeserializeOwned>(
    store: &kv::Store,
    what: &'static str,
    key: &str,
) -> Result<Option<(T, u64)>, StoreError> {
    match entry(store, what, key).await? {
        Some(e) if e.operation == kv::Operation::Put => {
            Ok(Some((crate::records::decode(key, &e.value)?, e.revision)))
        }
        _ => Ok(None),
    }
}

async fn put(
    store: &kv::Store,
    what: &'static str,
    key: &str,
    value: bytes::Bytes,
) -> Result<u64, StoreError> {
    store
        .put(key, value)
        .await
        .map_err(|e| unavailable(what, e))
}

/// Leaves a delete marker on `key` (a no-op for readers when it holds nothing).
async fn delete(store: &kv::Store, what: &'static str, key: &str) -> Result<(), StoreError> {
    store.delete(key).await.map_err(|e| unavailable(what, e))
}

/// Creates `key` if it holds nothing (never written, or deleted): `false` when it holds a value.
async fn create(
    store: &kv::Store,
    what: &'static str,
    key: &str,
    value: bytes::Bytes,
) -> Result<bool, StoreError> {
    match store.create(key, value).await {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(unavailable(what, e)),
    }
}
