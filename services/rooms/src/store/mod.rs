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
//! * [`members`]: member records, a member page, each user's membership index.
//! * [`counter`]: member counts.
//! * [`presence`]: who of a page is online (`dyschat_presence`, written by ws-agents).

mod counter;
mod members;
mod presence;
mod rooms;

use std::time::Duration;

use async_nats::jetstream::{self, context::PublishErrorKind, kv};
use async_nats::HeaderMap;
use dyschat_protocol::layout;
use dyschat_runtime::config::TopologySettings;
use dyschat_runtime::direct::{DirectError, DirectGet, StoredMessage};
use dyschat_runtime::topology::{self, TopologyError};

pub(crate) use members::{Change, MemberState};

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
}

impl Store {
    /// Ensures every bucket and stream the service uses (presence too: ws-agents write it, and
    /// the services may start in any order).
    pub async fn open(
        client: &async_nats::Client,
        config: &TopologySettings,
    ) -> Result<Store, TopologyError> {
        let js = jetstream::new(client.clone());
        let bucket = |c| topology::ensure_bucket(&js, c);
        // At once: on a cluster each creation waits for its replicas to elect a leader.
        let (rooms, room_index, members, memberships, _presence, _counters) = tokio::try_join!(
            bucket(topology::rooms_bucket(config)),
            bucket(topology::room_index_bucket(config)),
            bucket(topology::members_bucket(config)),
            bucket(topology::memberships_bucket(config)),
            bucket(topology::presence_bucket(config)),
            topology::ensure_counters_stream(&js, config),
        )?;
        Ok(Store {
            direct: DirectGet::new(client.clone(), DIRECT_TIMEOUT),
            js,
            rooms,
            room_index,
            members,
            memberships,
        })
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
