//! The rooms service's part in files (contract section 9): a deleted room's files go with it,
//! and files no message attached in time are swept.
//!
//! A room's files are the keys `<room_id>.*` of the record bucket (`dyschat_file_records`, see
//! `dyschat_protocol::files_layout`), read with batched direct gets: its deletion removes each
//! one's bytes, then purges the keys, never reading another room's.
//!
//! The sweep reads the work list (`dyschat_file_sweep`): an entry for every file that may need
//! removing, written by the agents before an upload stores anything and when a removal starts,
//! purged once the file is attached or gone. Entries are in the order written, so a pass reads
//! from a cursor of its own and stops at the first entry younger than the age (everything after
//! it is younger still); at most 1,024 entries a pass. For each entry it reads the file's
//! record: attached, the entry goes; pending, a compare-and-set to `removing` (an attachment
//! racing it wins or loses cleanly), then the bytes, the record and the entry go; removing (a
//! removal cut short), the same without the compare-and-set; no record, an upload that died
//! (once its deadline has surely passed) or a file already gone. Every step is idempotent, so
//! several rooms instances sweep side by side.

use std::time::Duration;

use async_nats::jetstream::kv::Operation;
use async_nats::jetstream::{self, kv, object_store};
use dyschat_protocol::files_layout::{
    file_id_of_key, room_files_filter, FILE_RECORDS_BUCKET, FILE_SWEEP_BUCKET, UPLOAD_DEADLINE_SECS,
};
use dyschat_protocol::layout::{kv_key, kv_stream, kv_subject};
use dyschat_protocol::wire::{FileState, StoredFile};
use dyschat_runtime::config::TopologySettings;
use dyschat_runtime::direct::DirectGet;
use dyschat_runtime::topology::{self, TopologyError};
use tokio_util::sync::CancellationToken;

use crate::store::StoreError;

/// Work-list entries one read of a sweep pass takes.
const SWEEP_BATCH: usize = 256;
/// Reads one sweep pass makes, at most (so at most 1,024 entries a pass).
const SWEEP_BATCHES: usize = 4;
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
    sweep: kv::Store,
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
        let (objects, records, sweep) = tokio::try_join!(
            topology::ensure_files_store(&js, config),
            topology::ensure_bucket(&js, topology::file_records_bucket(config)),
            topology::ensure_bucket(&js, topology::file_sweep_bucket(config)),
        )?;
        Ok(Files {
            objects,
            records,
            sweep,
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
        let listed = kv_subject(FILE_SWEEP_BUCKET, &room_files_filter(room_id));
        timed(std::future::IntoFuture::into_future(
            self.sweep.stream.purge().filter(listed),
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

    /// One sweep pass from `cursor` (a stream sequence of the work list), which it moves past
    /// what is done; returns how many entries it settled.
    pub(crate) async fn sweep(
        &self,
        cursor: &mut u64,
        unattached: Duration,
    ) -> Result<usize, StoreError> {
        let filter = kv_subject(FILE_SWEEP_BUCKET, ">");
        let stream = kv_stream(FILE_SWEEP_BUCKET);
        let now = chrono::Utc::now();
        let ago =
            |d: Duration| now - chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX);
        let due = ago(unattached);
        // An entry without a record is an upload in progress until its deadline has passed.
        let orphaned = ago(unattached.max(Duration::from_secs(2 * UPLOAD_DEADLINE_SECS)));
        let mut removed = 0;
        for _ in 0..SWEEP_BATCHES {
            let batch = self
                .direct
                .next_by_subject(&stream, *cursor, &filter, SWEEP_BATCH)
                .await?;
            if batch.messages.is_empty() {
                break;
            }
            for m in batch.messages {
                let key = kv_key(FILE_SWEEP_BUCKET, &m.subject).unwrap_or_default();
                let (Some(file_id), Operation::Put) = (file_id_of_key(key), m.operation) else {
                    *cursor = m.sequence + 1;
                    continue;
                };
                let since = std::str::from_utf8(&m.payload)
                    .ok()
                    .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                    .map_or(due, |t| t.with_timezone(&chrono::Utc));
                if since > due {
                    // Everything after it was listed later still.
                    return Ok(removed);
                }
                if !self.settle(&file_id, key, since < orphaned).await? {
                    // Not settled yet (a record changing, an upload still streaming): the next
                    // pass starts here again.
                    return Ok(removed);
                }
                removed += 1;
                *cursor = m.sequence + 1;
            }
        }
        Ok(removed)
    }

    /// Settles one listed file: an attached one only leaves the list; a pending or removing
    /// one is removed. `false` when it cannot be settled now.
    async fn settle(&self, file_id: &str, key: &str, orphaned: bool) -> Result<bool, StoreError> {
        let entry = timed(self.records.entry(key)).await?;
        let record = entry
            .filter(|e| e.operation == Operation::Put)
            .map(|e| (serde_json::from_slice::<StoredFile>(&e.value), e.revision));
        match record {
            None if !orphaned => return Ok(false),
            None => {}
            Some((Err(e), _)) => {
                tracing::warn!(%file_id, error = %e, "an undecodable file record is left alone");
            }
            Some((Ok(stored), _)) if stored.state == FileState::Attached => {}
            Some((Ok(stored), _)) if stored.state == FileState::Removing => {
                self.remove_object(file_id).await?;
                timed(self.records.purge_with_ttl(key, PURGE_MARKER_TTL)).await?;
                tracing::info!(%file_id, "file removed");
            }
            Some((Ok(mut stored), revision)) => {
                stored.state = FileState::Removing;
                let value = serde_json::to_vec(&stored).map_err(unavailable)?;
                match tokio::time::timeout(
                    CALL_TIMEOUT,
                    self.records.update(key, value.into(), revision),
                )
                .await
                .map_err(|_| unavailable("timed out"))?
                {
                    Ok(_) => {}
                    // Attached (or removed) meanwhile: look again next pass.
                    Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => {
                        return Ok(false)
                    }
                    Err(e) => return Err(unavailable(e)),
                }
                self.remove_object(file_id).await?;
                timed(self.records.purge_with_ttl(key, PURGE_MARKER_TTL)).await?;
                tracing::info!(%file_id, "unattached file removed");
            }
        }
        timed(self.sweep.purge_with_ttl(key, PURGE_MARKER_TTL)).await?;
        Ok(true)
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
                Ok(n) => tracing::info!(settled = n, "file sweep settled its entries"),
                Err(e) => tracing::warn!(error = %e, "a file sweep failed; the next one retries"),
            }
        }
    }
}
