//! The file store ([`FileStore`]) over the `dyschat_files` object store and the
//! `dyschat_file_records` bucket.
//!
//! An upload is the object store's own `put`, fed by [`Chunks`]: an `AsyncRead` over the body
//! that hands the store whole chunks ([`FILE_CHUNK_BYTES`]) as they arrive, so only about one
//! chunk is ever held. `put` cannot be told to give up, and an error of its reader would leave
//! the chunks already stored without an object to find them by; so when the body fails or its
//! deadline passes, [`Chunks`] ends the object early instead, and the finished (short) object is
//! deleted at once, chunks and all.
//!
//! A download reads the object's chunks itself, a few at a time with a batched direct get as the
//! body is sent ([`Chunks`]' counterpart, [`read_chunks`]), rather than through the object store's
//! reader, whose push consumer would deliver the whole object as fast as the server can,
//! however slowly the client reads. Direct gets may be answered by any replica; one a little
//! behind (a file just stored) is asked again for up to a second.

use std::time::Duration;

use async_nats::jetstream::kv::{self, CreateErrorKind, UpdateErrorKind};
use async_nats::jetstream::object_store::{self, ObjectMetadata};
use bytes::{Bytes, BytesMut};
use dyschat_protocol::files_layout::{file_key, FILE_CHUNK_BYTES};
use dyschat_protocol::layout::kv_subject;
use dyschat_protocol::wire::StoredFile;
use dyschat_runtime::direct::DirectGet;
use futures::future::BoxFuture;
use futures::FutureExt;

use super::deadline;

mod chunks;

use crate::ports::{ByteStream, FileRecord, FileStore, PortError, PortResult, PutError};
use chunks::{read_chunks, Chunks, Failure};

/// Chunks one direct get of a download reads (at most this many chunks are held at once).
pub(super) const READ_BATCH: usize = 4;
/// How long one batch of a download may take.
const READ_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the store may take to finish an upload after its body ended.
const FINISH_TIMEOUT: Duration = Duration::from_secs(30);
/// How often, and how long apart, a read that a replica behind cannot answer yet is tried again.
pub(super) const LAG_RETRIES: u32 = 10;
pub(super) const LAG_PAUSE: Duration = Duration::from_millis(100);
/// How long a removed record's purge marker stays.
const PURGE_MARKER_TTL: Duration = Duration::from_secs(60);

pub(crate) struct NatsFiles {
    objects: object_store::ObjectStore,
    records: kv::Store,
    sweep: kv::Store,
    direct: DirectGet,
}

impl NatsFiles {
    pub(crate) fn new(
        objects: object_store::ObjectStore,
        records: kv::Store,
        sweep: kv::Store,
        client: async_nats::Client,
    ) -> Self {
        NatsFiles {
            objects,
            records,
            sweep,
            direct: DirectGet::new(client, READ_TIMEOUT),
        }
    }

    fn key(file_id: &str) -> PortResult<String> {
        file_key(file_id).ok_or_else(|| PortError::Decode(format!("{file_id} is no file id")))
    }
}

fn encode(stored: &StoredFile) -> PortResult<Bytes> {
    serde_json::to_vec(stored)
        .map(Bytes::from)
        .map_err(|e| PortError::Decode(e.to_string()))
}

impl FileStore for NatsFiles {
    fn put_object<'a>(
        &'a self,
        file_id: &'a str,
        body: ByteStream,
        limit: Duration,
    ) -> BoxFuture<'a, Result<u64, PutError>> {
        async move {
            let failure = Failure::default();
            let mut chunks = Chunks {
                body,
                held: BytesMut::with_capacity(FILE_CHUNK_BYTES),
                ended: false,
                deadline: Box::pin(tokio::time::sleep(limit)),
                failure: failure.clone(),
            };
            let meta = ObjectMetadata {
                name: file_id.to_string(),
                chunk_size: Some(FILE_CHUNK_BYTES),
                ..Default::default()
            };
            let put =
                tokio::time::timeout(limit + FINISH_TIMEOUT, self.objects.put(meta, &mut chunks))
                    .await;
            let failed = failure.lock().ok().and_then(|mut f| f.take());
            match (put, failed) {
                (Ok(Ok(info)), None) => Ok(info.size as u64),
                (Ok(Ok(_)), Some(why)) => {
                    self.discard(file_id).await;
                    Err(PutError::Body(why))
                }
                (Ok(Err(e)), _) => {
                    self.discard(file_id).await;
                    Err(PutError::Store(PortError::failed(e)))
                }
                (Err(_), _) => {
                    // Cut off in the middle of `put`: chunks may stay without an object.
                    tracing::warn!(file_id, "an upload outlived its deadline in the store");
                    self.discard(file_id).await;
                    Err(PutError::Store(PortError::Timeout))
                }
            }
        }
        .boxed()
    }

    fn open_object<'a>(
        &'a self,
        file_id: &'a str,
        start: u64,
        len: u64,
    ) -> BoxFuture<'a, PortResult<ByteStream>> {
        async move {
            let mut waits = 0;
            let info = loop {
                match deadline(self.objects.info(file_id)).await? {
                    Ok(info) => break info,
                    // Just stored, and this replica does not have it yet.
                    Err(e)
                        if e.kind() == object_store::InfoErrorKind::NotFound
                            && waits < LAG_RETRIES =>
                    {
                        waits += 1;
                        tokio::time::sleep(LAG_PAUSE).await;
                    }
                    Err(e) => return Err(PortError::failed(e)),
                }
            };
            if info.deleted {
                return Err(PortError::Failed(format!("object {file_id} is deleted")));
            }
            Ok(read_chunks(self.direct.clone(), info.nuid, start, len))
        }
        .boxed()
    }

    fn remove_object<'a>(&'a self, file_id: &'a str) -> BoxFuture<'a, PortResult<()>> {
        async move {
            match deadline(self.objects.delete(file_id)).await? {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == object_store::DeleteErrorKind::NotFound => Ok(()),
                Err(e) => Err(PortError::failed(e)),
            }
        }
        .boxed()
    }

    fn record<'a>(&'a self, file_id: &'a str) -> BoxFuture<'a, PortResult<Option<FileRecord>>> {
        async move {
            let subject = kv_subject(&self.records.name, &Self::key(file_id)?);
            let found = deadline(
                self.records
                    .stream
                    .get_last_raw_message_by_subject(&subject),
            )
            .await?;
            let message = match found {
                Ok(m) => m,
                Err(e)
                    if e.kind()
                        == async_nats::jetstream::stream::LastRawMessageErrorKind::NoMessageFound =>
                {
                    return Ok(None)
                }
                Err(e) => return Err(PortError::failed(e)),
            };
            // A delete or purge marker: the record is gone.
            let marker = message.headers.get("KV-Operation").is_some()
                || message.headers.get("Nats-Marker-Reason").is_some();
            if marker || message.payload.is_empty() {
                return Ok(None);
            }
            let stored = serde_json::from_slice(&message.payload)
                .map_err(|e| PortError::Decode(format!("file record {file_id}: {e}")))?;
            Ok(Some(FileRecord {
                stored,
                revision: message.sequence,
            }))
        }
        .boxed()
    }

    fn create_record<'a>(
        &'a self,
        file_id: &'a str,
        stored: &'a StoredFile,
    ) -> BoxFuture<'a, PortResult<bool>> {
        async move {
            let (key, value) = (Self::key(file_id)?, encode(stored)?);
            match deadline(self.records.create(key, value)).await? {
                Ok(_) => Ok(true),
                Err(e) if e.kind() == CreateErrorKind::AlreadyExists => Ok(false),
                Err(e) => Err(PortError::failed(e)),
            }
        }
        .boxed()
    }

    fn update_record<'a>(
        &'a self,
        file_id: &'a str,
        stored: &'a StoredFile,
        revision: u64,
    ) -> BoxFuture<'a, PortResult<bool>> {
        async move {
            let (key, value) = (Self::key(file_id)?, encode(stored)?);
            match deadline(self.records.update(key, value, revision)).await? {
                Ok(_) => Ok(true),
                Err(e) if e.kind() == UpdateErrorKind::WrongLastRevision => Ok(false),
                Err(e) => Err(PortError::failed(e)),
            }
        }
        .boxed()
    }

    fn forget_record<'a>(&'a self, file_id: &'a str) -> BoxFuture<'a, PortResult<()>> {
        async move {
            let key = Self::key(file_id)?;
            deadline(self.records.purge_with_ttl(key, PURGE_MARKER_TTL))
                .await?
                .map_err(PortError::failed)
        }
        .boxed()
    }

    fn mark_for_sweep<'a>(&'a self, file_id: &'a str) -> BoxFuture<'a, PortResult<()>> {
        self.mark(file_id).boxed()
    }

    fn unmark_for_sweep<'a>(&'a self, file_id: &'a str) -> BoxFuture<'a, PortResult<()>> {
        self.unmark(file_id).boxed()
    }
}

impl NatsFiles {
    async fn mark(&self, file_id: &str) -> PortResult<()> {
        let value = Bytes::from(dyschat_protocol::time::now());
        deadline(self.sweep.put(Self::key(file_id)?, value))
            .await?
            .map(drop)
            .map_err(PortError::failed)
    }

    async fn unmark(&self, file_id: &str) -> PortResult<()> {
        deadline(
            self.sweep
                .purge_with_ttl(Self::key(file_id)?, PURGE_MARKER_TTL),
        )
        .await?
        .map_err(PortError::failed)
    }

    /// Deletes what a failed upload stored (logged when that fails too).
    async fn discard(&self, file_id: &str) {
        if let Err(e) = self.remove_object(file_id).await {
            tracing::warn!(file_id, error = %e, "removing a failed upload's object failed");
        }
    }
}
