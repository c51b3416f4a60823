//! msg-writer: the durable path from JetStream to Redis history.
//!
//! It pulls from the shared durable consumer `msg-writer` (several writer processes may share it)
//! the room messages and their change events, writes each ready chunk to Redis in one pipeline
//! and acks an entry only after that pipeline succeeded (and, for a deletion, after the deleted
//! text left the stream). A crash before the ack means redelivery, and redelivery is harmless:
//! a write replaces a room's entry at a `seq` only with a newer state (module `apply`).

mod apply;
mod batch;
pub mod config;
mod consume;
mod deletion;
mod erase;
mod partition;
pub mod rebuild;
mod redis_store;
mod store;

use std::time::Duration;

use async_nats::jetstream;
use dyschat_runtime::{connect, metric, prometheus, topology};
use futures::stream::FuturesUnordered;
use futures::StreamExt;
use tokio_util::sync::CancellationToken;

pub use batch::{prepare, Change, Prepared};
pub use config::Config;
pub use consume::Writer;

/// The most messages pulled and written in one pipeline. Each pipeline costs Redis one fsync
/// (with `appendfsync always`) and one round trip, so bigger chunks drain a backlog faster:
/// dyschat-bench drain, 1,000,000 messages, went from 10.5k msg/s at 512 to 23.7k msg/s at 4,096.
/// A chunk is ~1.2 MB of 300-byte messages; live traffic still goes out in whatever is ready.
pub const MAX_BATCH: usize = 4096;
/// Chunks written at once. With `appendfsync always` Redis fsyncs once per event-loop turn, so
/// chunks arriving while another is being written share its fsync, and the next chunk is pulled
/// while one is written instead of after. dyschat-bench drain, 1,000,000 messages: 30.2k msg/s
/// with one chunk at a time, 51.4k with four (two gave ~46k). 4 × [`MAX_BATCH`] stays below the
/// consumer's `max_ack_pending`.
pub const CHUNKS_IN_FLIGHT: usize = 4;
/// How often the consumer's backlog is read into `dyschat_writer_consumer_pending`.
pub const PENDING_POLL: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Connect(#[from] connect::ConnectError),
    #[error(transparent)]
    Topology(#[from] topology::TopologyError),
    #[error("consumer stream failed: {0}")]
    Consume(String),
}

/// Runs the writer until `shutdown`; the chunks being written are finished and acked first.
///
/// With several message streams (partitions) every partition gets its own durable consumer
/// `msg-writer`, consume loop (at most [`CHUNKS_IN_FLIGHT`] chunks each), history check and
/// high water: a partition is written exactly as the single stream is.
pub async fn run(config: Config, shutdown: CancellationToken) -> Result<(), Error> {
    let (client, reconnects) =
        connect::nats_with_reconnects(&config.common, &config.nats, "dyschat-msg-writer").await?;
    let redis = connect::redis(&config.common, &config.redis).await?;
    let js = jetstream::new(client.clone());
    let streams = topology::ensure_message_streams(&js, &config.topology).await?;
    topology::ensure_dead_letter_stream(&js, &config.topology).await?;
    let mut consumers = Vec::new();
    for stream in streams.all() {
        consumers.push(topology::ensure_writer_consumer(stream).await?);
    }
    // A replaced or restarted nats-server may have lost the streams or the consumers: ensure
    // them again after every reconnection.
    let keeper = {
        let (js, topology) = (js.clone(), config.topology.clone());
        topology::keep(reconnects, shutdown.clone(), move || {
            let (js, topology) = (js.clone(), topology.clone());
            async move {
                let streams = topology::ensure_message_streams(&js, &topology).await?;
                topology::ensure_dead_letter_stream(&js, &topology).await?;
                for stream in streams.all() {
                    topology::ensure_writer_consumer(stream).await?;
                }
                Ok(())
            }
        })
    };
    let metrics_server = prometheus::spawn_for(&config.writer.msg_writer_metrics_addr, &shutdown);
    metric::export_at_zero(&[
        metric::WRITER_DEAD_LETTERED_TOTAL,
        metric::WRITER_REBUILDS_TOTAL,
    ]);
    let pending = tokio::spawn(poll_pending(consumers.clone(), shutdown.clone()));
    // A day of the retried-send index is kept for the dedupe window and a day more.
    let keep_secs = config.topology.dedupe_window_secs + 86_400;
    let writer_id = dyschat_protocol::ids::new_id();
    let deleted = std::sync::Arc::new(deletion::DeletedRooms::default());
    let deletions = tokio::spawn(deletion::watch(
        client.clone(),
        redis.clone(),
        deleted.clone(),
        shutdown.clone(),
    ));
    let rebuilds = tokio_util::task::TaskTracker::new();
    // One failing partition stops them all (the service exits and is restarted whole).
    let stop = shutdown.child_token();
    let mut checks = Vec::new();
    let mut loops = Vec::new();
    for (k, (stream, consumer)) in (0u16..).zip(streams.all().iter().zip(consumers)) {
        let part = partition::Partition::new(streams.layout(), k, stream.clone());
        checks.push(tokio::spawn(rebuild::watch(
            part.clone(),
            consumer.clone(),
            redis.clone(),
            writer_id.clone(),
            keep_secs,
            stop.clone(),
        )));
        let writer = Writer {
            js: js.clone(),
            history: redis_store::RedisHistory {
                redis: redis.clone(),
                part: std::sync::Arc::new(part),
                rebuilds: rebuilds.clone(),
                shutdown: shutdown.clone(),
                keep_secs,
                deleted: deleted.clone(),
            },
        };
        loops.push(consume(k, consumer, writer, stop.clone()));
    }
    tracing::info!(
        consumer = dyschat_protocol::layout::WRITER_CONSUMER,
        partitions = streams.layout().count(),
        "msg-writer consuming"
    );
    let ended = futures::future::join_all(loops)
        .await
        .into_iter()
        .find_map(|e| e);
    for check in checks {
        let _ = check.await;
    }
    if let Some(e) = ended {
        return Err(e);
    }
    let _ = deletions.await;
    keeper.abort();
    rebuilds.close();
    rebuilds.wait().await;
    let _ = pending.await;
    if let Some(server) = metrics_server {
        let _ = server.await;
    }
    tracing::info!("msg-writer stopped consuming, flushing acks");
    if let Err(e) = client.flush().await {
        tracing::warn!(error = %e, "flush on shutdown failed");
    }
    Ok(())
}

/// Consumes one partition's durable consumer until `stop` (then the chunks already pulled are
/// finished: written and acked, or left for redelivery). A consumer stream that ends stops every
/// partition, through `stop`, and is returned.
async fn consume(
    k: u16,
    consumer: jetstream::consumer::Consumer<jetstream::consumer::pull::Config>,
    writer: Writer,
    stop: CancellationToken,
) -> Option<Error> {
    let messages = match consumer
        .stream()
        .max_messages_per_batch(MAX_BATCH)
        .heartbeat(Duration::from_secs(5))
        .messages()
        .await
    {
        Ok(messages) => messages,
        Err(e) => {
            stop.cancel();
            return Some(Error::Consume(e.to_string()));
        }
    };
    let mut chunks = messages.ready_chunks(MAX_BATCH);
    let mut in_flight = FuturesUnordered::new();
    let ended = loop {
        let chunk = tokio::select! {
            _ = stop.cancelled() => break None,
            Some(()) = in_flight.next(), if !in_flight.is_empty() => continue,
            next = chunks.next(), if in_flight.len() < CHUNKS_IN_FLIGHT => match next {
                Some(chunk) => chunk,
                None => break Some(Error::Consume(format!("partition {k}: consumer stream ended"))),
            },
        };
        let mut ready = Vec::with_capacity(chunk.len());
        for item in chunk {
            match item {
                Ok(message) => ready.push(message),
                // Heartbeat misses and similar: the stream recovers by itself.
                Err(e) => tracing::warn!(partition = k, error = %e, "consumer stream error"),
            }
        }
        let mut writer = writer.clone();
        let stop = stop.clone();
        in_flight.push(async move { writer.store_and_ack(ready, &stop).await });
    };
    if ended.is_some() {
        stop.cancel();
    }
    // Chunks already pulled are finished (written and acked, or left for redelivery).
    while in_flight.next().await.is_some() {}
    ended
}

/// Publishes the durable consumer's backlog (not yet delivered, and delivered but not acked) as
/// gauges until `shutdown`: the writer lag of the dashboards.
async fn poll_pending(
    mut consumers: Vec<jetstream::consumer::Consumer<jetstream::consumer::pull::Config>>,
    shutdown: CancellationToken,
) {
    let mut tick = tokio::time::interval(PENDING_POLL);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        // Summed over the partitions: one backlog, whatever the layout.
        let (mut pending, mut ack_pending) = (0u64, 0u64);
        let mut complete = true;
        for consumer in &mut consumers {
            match consumer.info().await {
                Ok(info) => {
                    pending += info.num_pending;
                    ack_pending += info.num_ack_pending as u64;
                }
                Err(e) => {
                    tracing::debug!(error = %e, "consumer info failed");
                    complete = false;
                }
            }
        }
        if complete {
            metrics::gauge!(metric::WRITER_CONSUMER_PENDING).set(pending as f64);
            metrics::gauge!(metric::WRITER_CONSUMER_ACK_PENDING).set(ack_pending as f64);
        }
    }
}
