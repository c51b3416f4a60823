//! The two byte paths of the file store: [`Chunks`], the upload body as the object store's
//! `put` reads it (whole chunks, and an early end instead of an error), and [`read_chunks`], a
//! download read a few chunks at a time.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use dyschat_protocol::files_layout::{
    files_stream, object_chunks_subject, FILES_OBJECT_STORE, FILE_CHUNK_BYTES,
};
use dyschat_runtime::direct::DirectGet;
use futures::StreamExt;
use tokio::io::{AsyncRead, ReadBuf};

use super::{LAG_PAUSE, LAG_RETRIES, READ_BATCH};
use crate::ports::ByteStream;

/// Why [`Chunks`] ended an object early.
pub(super) type Failure = Arc<Mutex<Option<String>>>;

/// The upload body as the object store reads it: whole chunks, and an early end (recorded in
/// `failure`) instead of an error.
pub(super) struct Chunks {
    pub(super) body: ByteStream,
    pub(super) held: BytesMut,
    pub(super) ended: bool,
    pub(super) deadline: Pin<Box<tokio::time::Sleep>>,
    pub(super) failure: Failure,
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
pub(super) fn read_chunks(direct: DirectGet, nuid: String, start: u64, len: u64) -> ByteStream {
    struct At {
        direct: DirectGet,
        subject: String,
        next_seq: u64,
        offset: u64,
        start: u64,
        end: u64,
        waits: u32,
    }
    let at = At {
        direct,
        subject: object_chunks_subject(FILES_OBJECT_STORE, &nuid),
        next_seq: 0,
        offset: 0,
        start,
        end: start.saturating_add(len),
        waits: 0,
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
            // A replica a little behind may not have the newest chunks yet: wait a little.
            if at.waits < LAG_RETRIES {
                at.waits += 1;
                tokio::time::sleep(LAG_PAUSE).await;
                return Some((Ok(Bytes::new()), at));
            }
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
