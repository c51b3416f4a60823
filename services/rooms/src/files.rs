//! The rooms service's part in files (contract section 9): a deleted room's files go with it,
//! and files no message attached in time are swept.
//!
//! Both walk the file records (`dyschat_file_records`, see
//! `dyschat_protocol::files_layout`) with batched direct gets in stream order: a room's files are
//! the keys `<room_id>.*`, so its deletion reads only those. The sweep reads the whole bucket
//! from a cursor: a record's place in the stream is its last write, so the records untouched
//! since their upload (the pending ones) are in upload order, and a pass stops at the first
//! pending one too young to go; everything it passed over (attached files, markers) is behind
//! the cursor for good. Each pass does at most [`SWEEP_BATCH`] records. A pending file is
//! removed by a compare-and-set to `removing` first (an attachment racing it wins or loses
//! cleanly), then its bytes, then its record; a `removing` record left by anyone (a message's
//! deletion whose clean-up failed) is finished the same way. Every step is idempotent, so
//! several rooms instances sweep side by side.

use std::time::Duration;

use async_nats::jetstream::kv::Operation;
use async_nats::jetstream::{self, kv, object_store};
use dyschat_protocol::files_layout::{file_id_of_key, room_files_filter, FILE_RECORDS_BUCKET};
use dyschat_protocol::layout::{kv_key, kv_stream, kv_subject};
use dyschat_protocol::wire::{FileState, StoredFile};
use dyschat_runtime::config::TopologySettings;
use dyschat_runtime::direct::DirectGet;
use dyschat_runtime::topology::{self, TopologyError};
use tokio_util::sync::CancellationToken;

use crate::store::StoreError;

/// Records one sweep pass looks at, at most.
pub(crate) const SWEEP_BATCH: usize = 512;
/// Records one page of a room's deletion reads.
const ROOM_PAGE: usize = 256;
/// How long one store call may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a removed record's purge marker stays.
const PURGE_MARKER_TTL: Duration = Duration::from_secs(60);

fn unavailable(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable {
        what: "file store",
        detail: e.to_string(),
    }
}

async fn timed<T, E: std::fmt::Display>(
    call: impl std::future::Future<Output = Result<T, E>>,
) -> Result<T, StoreError> {
    match tokio::time::timeout(CALL_TIMEOUT, call).await {
        Ok(r) => r.map_err(unavailable),
        Err(_) => Err(unavailable("timed out")),
    }
}

/// The file store as the rooms service uses it.
#[derive(Clone)]
pub(crate) struct Files {
    objects: object_store::ObjectStore,
    records: kv::Store,
    direct: DirectGet,
}

/// What the sweep is configured with.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SweepSettings {
    pub period: Duration,
    /// A pending file older than this is removed.
    pub unattached: Duration,
}

impl Files {
    pub(crate) async fn open(
        client: &async_nats::Client,
        config: &TopologySettings,
    ) -> Result<Files, TopologyError> {
        let js = jetstream::new(client.clone());
        let (objects, records) = tokio::try_join!(
            topology::ensure_files_store(&js, config),
            topology::ensure_bucket(&js, topology::file_records_bucket(config)),
        )?;
        Ok(Files {
            objects,
            records,
            direct: DirectGet::new(client.clone(), CALL_TIMEOUT),
        })
    }

    /// Removes every file of a deleted room: the bytes of each, then all its records at once.
    pub(crate) async fn remove_room(&self, room_id: &str) -> Result<usize, StoreError> {
        let filter = kv_subject(FILE_RECORDS_BUCKET, &room_files_filter(room_id));
        let stream = kv_stream(FILE_RECORDS_BUCKET);
        let (mut from, mut removed) = (0, 0);
        loop {
            let batch = self
                .direct
                .next_by_subject(&stream, from, &filter, ROOM_PAGE)
                .await?;
            for m in batch
                .messages
                .iter()
                .filter(|m| m.operation == Operation::Put)
            {
                if let Some(file_id) =
                    kv_key(FILE_RECORDS_BUCKET, &m.subject).and_then(file_id_of_key)
                {
                    self.remove_object(&file_id).await?;
                    removed += 1;
                }
            }
            match batch.next_sequence() {
                Some(next) if batch.num_pending > 0 => from = next,
                _ => break,
            }
        }
        timed(std::future::IntoFuture::into_future(
            self.records.stream.purge().filter(filter),
        ))
        .await?;
        Ok(removed)
    }

    async fn remove_object(&self, file_id: &str) -> Result<(), StoreError> {
        match tokio::time::timeout(CALL_TIMEOUT, self.objects.delete(file_id)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) if e.kind() == object_store::DeleteErrorKind::NotFound => Ok(()),
            Ok(Err(e)) => Err(unavailable(e)),
            Err(_) => Err(unavailable("timed out")),
        }
    }

    /// One sweep pass from `cursor` (a stream sequence), which it moves past what is done;
    /// returns how many files it removed.
    pub(crate) async fn sweep(
        &self,
        cursor: &mut u64,
        unattached: Duration,
    ) -> Result<usize, StoreError> {
        let filter = kv_subject(FILE_RECORDS_BUCKET, ">");
        let batch = self
            .direct
            .next_by_subject(
                &kv_stream(FILE_RECORDS_BUCKET),
                *cursor,
                &filter,
                SWEEP_BATCH,
            )
            .await?;
        let oldest_kept = chrono::Utc::now()
            - chrono::Duration::from_std(unattached).unwrap_or(chrono::Duration::MAX);
        let mut removed = 0;
        for m in batch.messages {
            let key = kv_key(FILE_RECORDS_BUCKET, &m.subject).unwrap_or_default();
            let (Some(file_id), Operation::Put) = (file_id_of_key(key), m.operation) else {
                *cursor = m.sequence + 1;
                continue;
            };
            let Ok(mut stored) = serde_json::from_slice::<StoredFile>(&m.payload) else {
                tracing::warn!(%file_id, "an undecodable file record is left alone");
                *cursor = m.sequence + 1;
                continue;
            };
            match stored.state {
                FileState::Attached => {}
                FileState::Removing => {
                    self.finish_removal(&file_id, key).await?;
                    removed += 1;
                }
                FileState::Pending => {
                    let created = chrono::DateTime::parse_from_rfc3339(&stored.file.created_at)
                        .map(|t| t.with_timezone(&chrono::Utc))
                        .unwrap_or(oldest_kept);
                    if created > oldest_kept {
                        // Everything after it was written later still.
                        return Ok(removed);
                    }
                    stored.state = FileState::Removing;
                    let value = serde_json::to_vec(&stored).map_err(unavailable)?;
                    let won = tokio::time::timeout(
                        CALL_TIMEOUT,
                        self.records.update(key, value.into(), m.sequence),
                    )
                    .await
                    .map_err(|_| unavailable("timed out"))?;
                    match won {
                        Ok(_) => {
                            self.finish_removal(&file_id, key).await?;
                            removed += 1;
                        }
                        // Attached (or removed) meanwhile: its new write is further on.
                        Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => {}
                        Err(e) => return Err(unavailable(e)),
                    }
                }
            }
            *cursor = m.sequence + 1;
        }
        Ok(removed)
    }

    async fn finish_removal(&self, file_id: &str, key: &str) -> Result<(), StoreError> {
        self.remove_object(file_id).await?;
        timed(self.records.purge_with_ttl(key, PURGE_MARKER_TTL)).await?;
        tracing::info!(%file_id, "file removed");
        Ok(())
    }

    /// Sweeps every `period` until `shutdown`.
    pub(crate) async fn run_sweep(self, settings: SweepSettings, shutdown: CancellationToken) {
        let mut cursor = 0;
        let mut tick = tokio::time::interval(settings.period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            match self.sweep(&mut cursor, settings.unattached).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(removed = n, "unattached files swept"),
                Err(e) => tracing::warn!(error = %e, "a file sweep failed; the next one retries"),
            }
        }
    }
}
