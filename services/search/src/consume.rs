//! Following the messages stream into the index: the instance's durable consumer, read in
//! batches that are committed every `DYSCHAT_SEARCH_COMMIT_MS` (or [`MAX_BATCH`] entries) and
//! acked only once the commit holding them is done. A crash before the ack means redelivery,
//! which the index's rule makes harmless ([`crate::index::Indexer::apply`]).
//!
//! At every (re)start the consumer is made to agree with the index (see
//! `dyschat_runtime::topology::ensure_search_consumer`): an index holding more than the stream
//! has (the stream was replaced) is cleared first, a consumer ahead of the index is made again.
//! The instance is caught up once the index holds what the stream held at start, or the
//! consumer has nothing left; only then does it answer queries.
//!
//! With several message streams (partitions) one [`Consumer`] follows each, with a consumer
//! `search-<instance>` on its stream, its own position in the index and its own batches; they
//! share the one indexer. The instance is caught up once every partition is.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::{self, message::Message as JsMessage};
use dyschat_protocol::ids::is_valid_id;
use dyschat_protocol::streams::MessageStreams;
use dyschat_protocol::subjects;
use dyschat_protocol::wire::RoomEvent;
use dyschat_runtime::{metric, topology};
use futures::StreamExt;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::event::{decode, Upsert};
use crate::index::Indexer;
use crate::Error;

/// The most entries one commit holds.
pub const MAX_BATCH: usize = 2_000;
/// How often an instance still catching up looks at its consumer while nothing arrives.
const CATCH_UP_CHECK: Duration = Duration::from_secs(1);
/// The pause before the consumer is made again after it failed.
const RETRY: Duration = Duration::from_secs(1);

pub(crate) struct Consumer {
    pub client: async_nats::Client,
    /// The partition followed, of `streams`, and its stream.
    pub k: u16,
    pub streams: MessageStreams,
    pub stream: jetstream::stream::Stream,
    pub instance: String,
    pub commit_every: Duration,
    pub caught_up: tokio::sync::watch::Sender<bool>,
}

pub(crate) type Shared = Arc<Mutex<Indexer>>;

/// Runs `work` on the indexer on a blocking thread (tantivy writes and commits synchronously).
async fn with_indexer<T: Send + 'static>(
    indexer: &Shared,
    work: impl FnOnce(&mut Indexer) -> Result<T, crate::index::IndexError> + Send + 'static,
) -> Result<T, Error> {
    let indexer = indexer.clone();
    tokio::task::spawn_blocking(move || {
        let mut guard = indexer
            .lock()
            .map_err(|_| Error::Consume("indexer lock poisoned".into()))?;
        work(&mut guard).map_err(Error::from)
    })
    .await
    .map_err(|e| Error::Consume(e.to_string()))?
}

/// One batch waiting for its commit.
#[derive(Default)]
struct Batch {
    upserts: Vec<Upsert>,
    rooms_deleted: Vec<String>,
    messages: Vec<JsMessage>,
    highest: u64,
}

impl Consumer {
    /// Follows the stream until `shutdown`, making the consumer again after any failure.
    pub(crate) async fn run(
        self,
        indexer: Shared,
        shutdown: CancellationToken,
    ) -> Result<(), Error> {
        let indexer = &indexer;
        let mut room_events = self
            .client
            .subscribe(subjects::ROOM_EVENTS_WILDCARD.to_string())
            .await
            .map_err(|e| Error::Consume(format!("cannot subscribe to room events: {e}")))?;
        while !shutdown.is_cancelled() {
            match self.follow(indexer, &mut room_events, &shutdown).await {
                Ok(()) => break,
                Err(e) => {
                    tracing::warn!(error = %e, "search consumer failed; starting it again");
                    tokio::select! {
                        _ = shutdown.cancelled() => break,
                        _ = tokio::time::sleep(RETRY) => {}
                    }
                }
            }
        }
        Ok(())
    }

    async fn follow(
        &self,
        indexer: &Shared,
        room_events: &mut async_nats::Subscriber,
        shutdown: &CancellationToken,
    ) -> Result<(), Error> {
        let mut stream = self.stream.clone();
        let info = stream
            .info()
            .await
            .map_err(|e| Error::Consume(format!("stream info: {e}")))?;
        let target = info.state.last_sequence;
        let k = self.k;
        let (mut applied, mut generation) =
            with_indexer(indexer, move |i| Ok((i.position(k), i.generation()))).await?;
        if applied > target {
            tracing::warn!(
                applied,
                last = target,
                partition = k,
                "the index is ahead of the stream (a new stream?): rebuilding it"
            );
            // Every partition's documents go; the other partitions' followers see the new
            // generation at their next commit and follow again from 0.
            generation = with_indexer(indexer, |i| i.clear().map(|()| i.generation())).await?;
            applied = 0;
        }
        let (mut consumer, fresh) =
            topology::ensure_search_consumer(&self.stream, &self.instance, applied).await?;
        tracing::info!(
            applied,
            target,
            fresh,
            "search consumer following the stream"
        );
        let mut messages = consumer
            .stream()
            .max_messages_per_batch(MAX_BATCH)
            .heartbeat(Duration::from_secs(5))
            .messages()
            .await
            .map_err(|e| Error::Consume(e.to_string()))?;
        let mut batch = Batch::default();
        let mut due: Option<Instant> = None;
        let far = || Instant::now() + Duration::from_secs(3600);
        loop {
            if !*self.caught_up.borrow() && (applied >= target || target == 0) {
                self.caught_up.send_replace(true);
            }
            let ready =
                due.is_some_and(|d| d <= Instant::now()) || batch.messages.len() >= MAX_BATCH;
            if ready {
                let taken = std::mem::take(&mut batch);
                applied = applied.max(taken.highest);
                self.commit(indexer, taken, applied, generation).await?;
                due = None;
                continue;
            }
            tokio::select! {
                _ = shutdown.cancelled() => {
                    // What was pulled but not committed comes again after the ack wait.
                    return Ok(());
                }
                _ = tokio::time::sleep_until(due.unwrap_or_else(far)), if due.is_some() => {}
                _ = tokio::time::sleep(CATCH_UP_CHECK), if !*self.caught_up.borrow() && due.is_none() => {
                    if let Ok(info) = consumer.info().await {
                        if info.num_pending == 0 && info.num_ack_pending == 0 {
                            self.caught_up.send_replace(true);
                        }
                    }
                }
                event = room_events.next() => {
                    let Some(event) = event else {
                        return Err(Error::Consume("room events subscription ended".into()));
                    };
                    if let Ok(RoomEvent::RoomDeleted { room_id }) = serde_json::from_slice::<RoomEvent>(&event.payload) {
                        // Each partition's follower removes its own rooms.
                        if is_valid_id(&room_id) && self.streams.partition_of(&room_id) == self.k {
                            batch.rooms_deleted.push(room_id);
                            due.get_or_insert_with(|| Instant::now() + self.commit_every);
                        }
                    }
                }
                next = messages.next() => match next {
                    None => return Err(Error::Consume("consumer stream ended".into())),
                    Some(Err(e)) => tracing::debug!(error = %e, "consumer stream error"),
                    Some(Ok(message)) => {
                        let Ok(meta) = message.info() else {
                            tracing::warn!("entry without JetStream metadata ignored");
                            continue;
                        };
                        let seq = meta.stream_sequence;
                        match decode(&message.subject, seq, &message.payload) {
                            Ok(upsert) => batch.upserts.push(upsert),
                            // msg-writer dead-letters it; the index has nothing to take from it.
                            Err(reason) => tracing::warn!(seq, %reason, "entry not indexed"),
                        }
                        batch.highest = batch.highest.max(seq);
                        batch.messages.push(message);
                        due.get_or_insert_with(|| Instant::now() + self.commit_every);
                    }
                },
            }
        }
    }

    /// Applies and commits `batch`, then acks its entries.
    async fn commit(
        &self,
        indexer: &Shared,
        batch: Batch,
        applied: u64,
        generation: u64,
    ) -> Result<(), Error> {
        let Batch {
            upserts,
            rooms_deleted,
            messages,
            ..
        } = batch;
        let count = messages.len();
        let started = std::time::Instant::now();
        let k = self.k;
        let outcome = with_indexer(indexer, move |i| {
            // Cleared since this follower started: what it holds belongs to the old index.
            if i.generation() != generation {
                return Ok(None);
            }
            i.apply_partition(k, upserts, rooms_deleted, applied)
                .map(Some)
        })
        .await?
        .ok_or_else(|| Error::Consume("the index was cleared; following again".into()))?;
        metrics::histogram!(metric::SEARCH_COMMIT_SECONDS).record(started.elapsed().as_secs_f64());
        metrics::counter!(metric::SEARCH_INDEXED_TOTAL).increment(outcome.written as u64);
        metrics::counter!(metric::SEARCH_SKIPPED_TOTAL).increment(outcome.skipped as u64);
        metrics::gauge!(metric::SEARCH_APPLIED_SEQ).set(applied as f64);
        for message in messages {
            // A lost ack means a redelivery, which the index's rule makes harmless.
            if let Err(e) = message.ack().await {
                tracing::debug!(error = %e, "ack failed; the entry will come again");
            }
        }
        tracing::debug!(
            count,
            applied,
            written = outcome.written,
            "search batch committed"
        );
        Ok(())
    }
}
