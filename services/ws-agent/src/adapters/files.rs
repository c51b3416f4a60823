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
//! however slowly the client reads.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use async_nats::jetstream::kv::{self, CreateErrorKind, UpdateErrorKind};
use async_nats::jetstream::object_store::{self, ObjectMetadata};
use bytes::{Bytes, BytesMut};
use dyschat_protocol::files_layout::{
    file_key, files_stream, object_chunks_subject, FILES_OBJECT_STORE, FILE_CHUNK_BYTES,
};
use dyschat_protocol::layout::kv_subject;
use dyschat_protocol::wire::StoredFile;
use dyschat_runtime::direct::DirectGet;
use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt};
use std::future::Future;
use tokio::io::{AsyncRead, ReadBuf};

use super::deadline;
use crate::ports::{ByteStream, FileRecord, FileStore, PortError, PortResult, PutError};

/// Chunks one direct get of a download reads (at most this many chunks are held at once).
const READ_BATCH: usize = 4;
/// How long one batch of a download may take.
const READ_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the store may take to finish an upload after its body ended.
const FINISH_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a removed record's purge marker stays.
const PURGE_MARKER_TTL: Duration = Duration::from_secs(60);

pub(crate) struct NatsFiles {
    objects: object_store::ObjectStore,
    records: kv::Store,
    direct: DirectGet,
}

impl NatsFiles {
    pub(crate) fn new(
        objects: object_store::ObjectStore,
        records: kv::Store,
        client: async_nats::Client,
    ) -> Self {
        NatsFiles {
            objects,
            records,
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

/// Why [`Chunks`] ended an object early.
type Failure = Arc<Mutex<Option<String>>>;

/// The upload body as the object store reads it: whole chunks, and an early end (recorded in
/// `failure`) instead of an error.
struct Chunks {
    body: ByteStream,
    held: BytesMut,
    ended: bool,
    deadline: Pin<Box<tokio::time::Sleep>>,
    failure: Failure,
}

impl Chunks {
    fn fail(&mut self, why: String) {
        if let Ok(mut f) = self.failure.lock() {
            f.get_or_insert(why);
        }
        self.held.clear();
        self.ended = true;
    }

    fn hand_out(&mut self, buf: &mut ReadBuf<'_>) {
        let n = buf.remaining().min(self.held.len());
        buf.put_slice(&self.held.split_to(n));
    }
}

impl AsyncRead for Chunks {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        loop {
            if this.held.len() >= FILE_CHUNK_BYTES || (this.ended && !this.held.is_empty()) {
                this.hand_out(buf);
                return Poll::Ready(Ok(()));
            }
            if this.ended {
                return Poll::Ready(Ok(()));
            }
            if this.deadline.as_mut().poll(cx).is_ready() {
                this.fail("the upload took too long".into());
                continue;
            }
            match this.body.poll_next_unpin(cx) {
                Poll::Ready(Some(Ok(bytes))) => this.held.extend_from_slice(&bytes),
                Poll::Ready(Some(Err(e))) => this.fail(e.to_string()),
                Poll::Ready(None) => this.ended = true,
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

/// The chunks of object `nuid`, `READ_BATCH` at a time, cut to the bytes `start .. start + len`
/// of the object.
fn read_chunks(direct: DirectGet, nuid: String, start: u64, len: u64) -> ByteStream {
    struct At {
        direct: DirectGet,
        subject: String,
        next_seq: u64,
        offset: u64,
        start: u64,
        end: u64,
    }
    let at = At {
        direct,
        subject: object_chunks_subject(FILES_OBJECT_STORE, &nuid),
        next_seq: 0,
        offset: 0,
        start,
        end: start.saturating_add(len),
    };
    futures::stream::unfold(at, |mut at| async move {
        if at.offset >= at.end {
            return None;
        }
        let batch = match at
            .direct
            .next_by_subject(&files_stream(), at.next_seq, &at.subject, READ_BATCH)
            .await
        {
            Ok(batch) => batch,
            Err(e) => return Some((Err(std::io::Error::other(e.to_string())), at)),
        };
        let Some(next) = batch.next_sequence() else {
            // The object ended before its size: never a silently short body.
            let e = std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "object cut short");
            at.end = 0;
            return Some((Err(e), at));
        };
        at.next_seq = next;
        let mut out = BytesMut::new();
        for chunk in batch.messages {
            let (from, to) = (at.offset, at.offset + chunk.payload.len() as u64);
            at.offset = to;
            let (lo, hi) = (at.start.max(from), at.end.min(to));
            if lo < hi {
                let lo = usize::try_from(lo - from).unwrap_or(0);
                let hi = usize::try_from(hi - from).unwrap_or(0);
                out.extend_from_slice(&chunk.payload[lo..hi]);
            }
        }
        Some((Ok(out.freeze()), at))
    })
    .filter(|item| futures::future::ready(!matches!(item, Ok(b) if b.is_empty())))
    .boxed()
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
            let info = deadline(self.objects.info(file_id))
                .await?
                .map_err(PortError::failed)?;
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
}

impl NatsFiles {
    /// Deletes what a failed upload stored (logged when that fails too).
    async fn discard(&self, file_id: &str) {
        if let Err(e) = self.remove_object(file_id).await {
            tracing::warn!(file_id, error = %e, "removing a failed upload's object failed");
        }
    }
}
