//! The file store: uploaded bytes (the `dyschat_files` object store), one record per file
//! (the `dyschat_file_records` bucket, compare-and-set on its revision) and the sweep's work list
//! (`dyschat_file_sweep`). The rules (who may
//! upload or read, when a file is attached or removed) are the core's ([`crate::core::files`]).

use std::time::Duration;

use bytes::Bytes;
use dyschat_protocol::wire::StoredFile;
use futures::future::BoxFuture;
use futures::stream::BoxStream;

use super::{PortError, PortResult};

/// Bytes flowing in (an upload's body) or out (a download).
pub(crate) type ByteStream = BoxStream<'static, Result<Bytes, std::io::Error>>;

/// Why an upload stored nothing.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PutError {
    /// The body failed (it errored, was cut short, grew past its bound or outlived its
    /// deadline): the client's doing.
    #[error("the upload's body failed: {0}")]
    Body(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] PortError),
}

/// A file record and its revision (what a compare-and-set expects).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FileRecord {
    pub stored: StoredFile,
    pub revision: u64,
}

pub(crate) trait FileStore: Send + Sync {
    /// Streams `body` into the object `file_id`, within `deadline`; returns the bytes stored.
    /// Whatever fails, no object (and no chunk of one) stays behind.
    fn put_object<'a>(
        &'a self,
        file_id: &'a str,
        body: ByteStream,
        deadline: Duration,
    ) -> BoxFuture<'a, Result<u64, PutError>>;
    /// The bytes `start .. start + len` of the object `file_id` (of `size` bytes), read a few
    /// chunks at a time as the stream is polled, never the whole object at once.
    fn open_object<'a>(
        &'a self,
        file_id: &'a str,
        start: u64,
        len: u64,
    ) -> BoxFuture<'a, PortResult<ByteStream>>;
    /// Removes the object `file_id`; a missing one is removed already.
    fn remove_object<'a>(&'a self, file_id: &'a str) -> BoxFuture<'a, PortResult<()>>;
    /// The record of `file_id`, read from the bucket's leader.
    fn record<'a>(&'a self, file_id: &'a str) -> BoxFuture<'a, PortResult<Option<FileRecord>>>;
    /// Writes a new record; `false` when the key exists.
    fn create_record<'a>(
        &'a self,
        file_id: &'a str,
        stored: &'a StoredFile,
    ) -> BoxFuture<'a, PortResult<bool>>;
    /// Writes the record if it is still at `revision`; `false` when another write came first.
    fn update_record<'a>(
        &'a self,
        file_id: &'a str,
        stored: &'a StoredFile,
        revision: u64,
    ) -> BoxFuture<'a, PortResult<bool>>;
    /// Removes the record (its bytes are gone first).
    fn forget_record<'a>(&'a self, file_id: &'a str) -> BoxFuture<'a, PortResult<()>>;
    /// Puts the file on the sweep's work list, as of now (the rooms service's sweep removes it
    /// once it is old enough, unless it is attached by then).
    fn mark_for_sweep<'a>(&'a self, file_id: &'a str) -> BoxFuture<'a, PortResult<()>>;
    /// Takes the file off the sweep's work list.
    fn unmark_for_sweep<'a>(&'a self, file_id: &'a str) -> BoxFuture<'a, PortResult<()>>;
}
