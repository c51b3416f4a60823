//! An in-memory [`FileStore`]: objects as byte vectors, records with revisions, and switches to
//! make the store fail.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use dyschat_protocol::wire::StoredFile;
use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt};

use super::lock;
use crate::ports::{ByteStream, FileRecord, FileStore, PortError, PortResult, PutError};

#[derive(Default)]
pub(crate) struct FakeFiles {
    pub objects: Mutex<HashMap<String, Vec<u8>>>,
    records: Mutex<HashMap<String, FileRecord>>,
    /// The sweep's work list.
    pub marked: Mutex<std::collections::HashSet<String>>,
    revision: Mutex<u64>,
    /// Every record write fails while set.
    pub records_down: AtomicBool,
}

impl FakeFiles {
    pub(crate) fn stored(&self, file_id: &str) -> Option<StoredFile> {
        lock(&self.records).get(file_id).map(|r| r.stored.clone())
    }

    fn down(&self) -> PortResult<()> {
        if self.records_down.load(Ordering::SeqCst) {
            Err(PortError::Failed("records down".into()))
        } else {
            Ok(())
        }
    }

    fn next_revision(&self) -> u64 {
        let mut r = lock(&self.revision);
        *r += 1;
        *r
    }
}

impl FileStore for FakeFiles {
    fn put_object<'a>(
        &'a self,
        file_id: &'a str,
        mut body: ByteStream,
        _deadline: Duration,
    ) -> BoxFuture<'a, Result<u64, PutError>> {
        async move {
            let mut all = Vec::new();
            while let Some(part) = body.next().await {
                match part {
                    Ok(bytes) => all.extend_from_slice(&bytes),
                    // Nothing stays of a failed upload.
                    Err(e) => return Err(PutError::Body(e.to_string())),
                }
            }
            let n = all.len() as u64;
            lock(&self.objects).insert(file_id.to_string(), all);
            Ok(n)
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
            let bytes = lock(&self.objects)
                .get(file_id)
                .cloned()
                .ok_or_else(|| PortError::Failed("no object".into()))?;
            let from = usize::try_from(start)
                .unwrap_or(usize::MAX)
                .min(bytes.len());
            let to = usize::try_from(start + len)
                .unwrap_or(usize::MAX)
                .min(bytes.len());
            let part = Bytes::copy_from_slice(&bytes[from..to]);
            Ok(futures::stream::iter([Ok(part)]).boxed())
        }
        .boxed()
    }

    fn remove_object<'a>(&'a self, file_id: &'a str) -> BoxFuture<'a, PortResult<()>> {
        async move {
            lock(&self.objects).remove(file_id);
            Ok(())
        }
        .boxed()
    }

    fn record<'a>(&'a self, file_id: &'a str) -> BoxFuture<'a, PortResult<Option<FileRecord>>> {
        async move { Ok(lock(&self.records).get(file_id).cloned()) }.boxed()
    }

    fn create_record<'a>(
        &'a self,
        file_id: &'a str,
        stored: &'a StoredFile,
    ) -> BoxFuture<'a, PortResult<bool>> {
        async move {
            self.down()?;
            let revision = self.next_revision();
            let mut records = lock(&self.records);
            if records.contains_key(file_id) {
                return Ok(false);
            }
            records.insert(
                file_id.to_string(),
                FileRecord {
                    stored: stored.clone(),
                    revision,
                },
            );
            Ok(true)
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
            self.down()?;
            let next = self.next_revision();
            let mut records = lock(&self.records);
            match records.get_mut(file_id) {
                Some(r) if r.revision == revision => {
                    *r = FileRecord {
                        stored: stored.clone(),
                        revision: next,
                    };
                    Ok(true)
                }
                _ => Ok(false),
            }
        }
        .boxed()
    }

    fn forget_record<'a>(&'a self, file_id: &'a str) -> BoxFuture<'a, PortResult<()>> {
        async move {
            self.down()?;
            lock(&self.records).remove(file_id);
            Ok(())
        }
        .boxed()
    }

    fn mark_for_sweep<'a>(&'a self, file_id: &'a str) -> BoxFuture<'a, PortResult<()>> {
        async move {
            self.down()?;
            lock(&self.marked).insert(file_id.to_string());
            Ok(())
        }
        .boxed()
    }

    fn unmark_for_sweep<'a>(&'a self, file_id: &'a str) -> BoxFuture<'a, PortResult<()>> {
        async move {
            self.down()?;
            lock(&self.marked).remove(file_id);
            Ok(())
        }
        .boxed()
    }
}
