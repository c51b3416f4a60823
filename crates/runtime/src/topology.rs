//! The JetStream layout of the mesh: the message and counter streams, the writer's durable consumer
//! and the KV buckets, defined once.
//!
//! Every service ensures the parts it uses at start. Creation is idempotent (the server accepts a
//! create with an identical configuration), and a stream or bucket that exists with a different
//! configuration stops the service with one clear line instead of being silently changed.

use std::time::Duration;

use async_nats::jetstream::{
    self,
    consumer::{pull, AckPolicy, DeliverPolicy},
    kv,
    stream::{self, DiscardPolicy, Republish, RetentionPolicy, StorageType},
    ErrorCode,
};

use dyschat_protocol::layout::*;
use dyschat_protocol::streams::MessageStreams;
use dyschat_protocol::subjects;

use crate::config::TopologySettings;

mod buckets;
mod feed;
mod files;
mod search;
pub use buckets::*;
pub use feed::*;
pub use files::*;
pub use search::*;

#[derive(Debug, thiserror::Error)]
pub enum TopologyError {
    #[error("{kind} {name} exists with a different configuration ({detail}); fix or remove it, the services will not change it")]
    Conflict {
        kind: &'static str,
        name: String,
        detail: String,
    },
    #[error("could not ensure {kind} {name}: {detail}")]
    Failed {
        kind: &'static str,
        name: String,
        detail: String,
    },
}

/// The configuration of the (first, or only) message stream.
pub fn messages_stream_config(config: &TopologySettings) -> stream::Config {
    partition_stream_config(config, 0)
}

/// The configuration of message stream `k` (see `dyschat_protocol::streams`): every partition
/// is configured alike, storing its own subjects and re-publishing them to the same live
/// subjects, so a live subscriber cannot tell partitions apart.
pub fn partition_stream_config(config: &TopologySettings, k: u16) -> stream::Config {
    let streams = config.message_streams();
    let description = if streams.is_partitioned() {
        format!(
            "DYSCHAT room messages, one subject per room: partition {k} of {}",
            streams.count()
        )
    } else {
        "DYSCHAT room messages, one subject per room".to_string()
    };
    stream::Config {
        name: streams.stream_name(k),
        description: Some(description),
        subjects: streams.stream_subjects(k),
        retention: RetentionPolicy::Limits,
        storage: StorageType::File,
        discard: DiscardPolicy::Old,
        num_replicas: config.stream_replicas,
        duplicate_window: STREAM_DEDUPE_WINDOW.min(Duration::from_secs(config.dedupe_window_secs)),
        max_message_size: MAX_STORED_BYTES as i32,
        allow_direct: true,
        republish: Some(Republish {
            source: streams.republish_source(k),
            destination: subjects::LIVE_REPUBLISH_DEST.into(),
            headers_only: false,
        }),
        ..Default::default()
    }
}

pub fn dead_letter_stream_config(config: &TopologySettings) -> stream::Config {
    stream::Config {
        name: DEAD_LETTER_STREAM.into(),
        description: Some("DYSCHAT messages msg-writer could never store, with the reason".into()),
        subjects: vec![subjects::DEAD_LETTER_WILDCARD.into()],
        retention: RetentionPolicy::Limits,
        storage: StorageType::File,
        discard: DiscardPolicy::Old,
        num_replicas: config.stream_replicas,
        max_age: DEAD_LETTER_MAX_AGE,
        ..Default::default()
    }
}

pub async fn ensure_dead_letter_stream(
    js: &jetstream::Context,
    config: &TopologySettings,
) -> Result<stream::Stream, TopologyError> {
    retrying(|| async {
        js.create_stream(dead_letter_stream_config(config))
            .await
            .map_err(|e| classify("stream", DEAD_LETTER_STREAM, &e))
    })
    .await
}

/// How long a counter increment's `Nats-Msg-Id` is remembered: a retried increment (its ack was
/// lost) within this window counts once.
pub const COUNTER_DEDUPE_WINDOW: Duration = Duration::from_secs(120);

/// NATS counters (`allow_msg_counter`): each subject's last message holds its total, so only the
/// last one is kept. Direct get is on, so many counters are read in one batch.
pub fn counters_stream_config(config: &TopologySettings) -> stream::Config {
    stream::Config {
        name: COUNTERS_STREAM.into(),
        description: Some("DYSCHAT counters (member counts), one subject per counter".into()),
        subjects: vec![subjects::COUNTERS_WILDCARD.into()],
        retention: RetentionPolicy::Limits,
        storage: StorageType::File,
        discard: DiscardPolicy::Old,
        num_replicas: config.stream_replicas,
        max_messages_per_subject: 1,
        duplicate_window: COUNTER_DEDUPE_WINDOW,
        allow_direct: true,
        allow_message_counter: true,
        ..Default::default()
    }
}

pub async fn ensure_counters_stream(
    js: &jetstream::Context,
    config: &TopologySettings,
) -> Result<stream::Stream, TopologyError> {
    retrying(|| async {
        js.create_stream(counters_stream_config(config))
            .await
            .map_err(|e| classify("stream", COUNTERS_STREAM, &e))
    })
    .await
}

pub fn writer_consumer_config() -> pull::Config {
    pull::Config {
        durable_name: Some(WRITER_CONSUMER.into()),
        description: Some("msg-writer: stores every room message in Redis".into()),
        // No filter: the writer takes everything the stream holds, messages and their change
        // events alike (a consumer of the first layout, filtered to messages, is updated in
        // place by the create-or-update of `ensure_writer_consumer`).
        deliver_policy: DeliverPolicy::All,
        ack_policy: AckPolicy::Explicit,
        ack_wait: WRITER_ACK_WAIT,
        max_deliver: WRITER_MAX_DELIVER,
        max_ack_pending: WRITER_MAX_ACK_PENDING,
        ..Default::default()
    }
}

/// How long an ensure keeps retrying while JetStream is not available yet (a cluster still
/// electing its leaders, a server restarting).
pub const ENSURE_TIMEOUT: Duration = Duration::from_secs(30);

/// Runs `attempt` until it succeeds, fails with a conflict, or [`ENSURE_TIMEOUT`] passes.
pub(crate) async fn retrying<T, F, Fut>(mut attempt: F) -> Result<T, TopologyError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, TopologyError>>,
{
    let deadline = tokio::time::Instant::now() + ENSURE_TIMEOUT;
    let mut backoff = Duration::from_millis(250);
    loop {
        match attempt().await {
            Ok(v) => return Ok(v),
            Err(e @ TopologyError::Conflict { .. }) => return Err(e),
            Err(e) if tokio::time::Instant::now() + backoff > deadline => return Err(e),
            Err(e) => {
                tracing::warn!(error = %e, "JetStream not ready, retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(2));
            }
        }
    }
}

/// A JetStream API error: a conflicting configuration is reported as such, anything else as a
/// failure worth retrying.
pub(crate) fn classify(
    kind: &'static str,
    name: &str,
    err: &(dyn std::error::Error + 'static),
) -> TopologyError {
    let detail = match err.source() {
        Some(source) => format!("{err}: {source}"),
        None => err.to_string(),
    };
    let conflict = jetstream_code(err).is_some_and(|code| {
        code == ErrorCode::STREAM_NAME_EXIST
            || code == ErrorCode::CONSUMER_NAME_EXIST
            || code == ErrorCode::CONSUMER_ALREADY_EXISTS
    });
    if conflict {
        TopologyError::Conflict {
            kind,
            name: name.into(),
            detail,
        }
    } else {
        TopologyError::Failed {
            kind,
            name: name.into(),
            detail,
        }
    }
}

/// The JetStream error code inside `err` or its sources (a KV bucket's create wraps the stream's).
fn jetstream_code(err: &(dyn std::error::Error + 'static)) -> Option<ErrorCode> {
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = current {
        if let Some(create) = e.downcast_ref::<jetstream::context::CreateStreamError>() {
            if let jetstream::context::CreateStreamErrorKind::JetStream(js) = create.kind() {
                return Some(js.error_code());
            }
        }
        if let Some(consumer) = e.downcast_ref::<jetstream::stream::ConsumerError>() {
            if let jetstream::stream::ConsumerErrorKind::JetStream(js) = consumer.kind() {
                return Some(js.error_code());
            }
        }
        current = e.source();
    }
    None
}

/// Runs `ensure` again after every reconnection until `shutdown`: a nats-server that restarted
/// has lost its memory-storage buckets (presence), and one that was replaced may have lost
/// everything, so every piece of topology a service uses is ensured again before it is needed.
/// A failed ensure is retried with a growing pause until it succeeds or the next reconnection.
pub fn keep<F, Fut>(
    mut reconnects: crate::connect::Reconnects,
    shutdown: tokio_util::sync::CancellationToken,
    ensure: F,
) -> tokio::task::JoinHandle<()>
where
    F: Fn() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Result<(), TopologyError>> + Send,
{
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                next = reconnects.next() => if next.is_none() { return },
            }
            let mut pause = Duration::from_millis(500);
            loop {
                match ensure().await {
                    Ok(()) => {
                        tracing::info!("topology ensured again after a reconnection");
                        break;
                    }
                    Err(e) => tracing::warn!(error = %e, "re-ensuring topology failed; retrying"),
                }
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(pause) => {}
                }
                pause = (pause * 2).min(Duration::from_secs(10));
            }
        }
    })
}

/// The message streams of the mesh, ensured: one per partition, in partition order.
#[derive(Clone)]
pub struct MessageStreamSet {
    layout: MessageStreams,
    streams: Vec<stream::Stream>,
}

impl MessageStreamSet {
    pub fn layout(&self) -> MessageStreams {
        self.layout
    }

    /// Every stream, partition `k` at index `k`.
    pub fn all(&self) -> &[stream::Stream] {
        &self.streams
    }

    /// The stream of partition `k`.
    pub fn partition(&self, k: u16) -> &stream::Stream {
        &self.streams[usize::from(k)]
    }

    /// The stream holding `room_id`'s messages.
    pub fn for_room(&self, room_id: &str) -> &stream::Stream {
        self.partition(self.layout.partition_of(room_id))
    }
}

/// Ensures every message stream (one per partition). Returns the first; see
/// [`ensure_message_streams`] for all of them.
pub async fn ensure_messages_stream(
    js: &jetstream::Context,
    config: &TopologySettings,
) -> Result<stream::Stream, TopologyError> {
    let set = ensure_message_streams(js, config).await?;
    Ok(set.partition(0).clone())
}

/// Ensures every message stream (one per partition, `DYSCHAT_STREAM_PARTITIONS`).
pub async fn ensure_message_streams(
    js: &jetstream::Context,
    config: &TopologySettings,
) -> Result<MessageStreamSet, TopologyError> {
    let layout = config.message_streams();
    let mut streams = Vec::with_capacity(usize::from(layout.count()));
    for k in layout.all() {
        streams.push(ensure_partition_stream(js, config, k).await?);
    }
    Ok(MessageStreamSet { layout, streams })
}

/// Ensures message stream `k`. A stream of the first layout (messages only, 64 KiB, one
/// subject filter) is brought to the current one in place: subjects, RePublish source and size
/// are the only differences, and each of them a stream update may change.
async fn ensure_partition_stream(
    js: &jetstream::Context,
    config: &TopologySettings,
    k: u16,
) -> Result<stream::Stream, TopologyError> {
    let wanted = partition_stream_config(config, k);
    let name = wanted.name.clone();
    retrying(|| async {
        match js.create_stream(wanted.clone()).await {
            Ok(stream) => Ok(stream),
            Err(e) => match classify("stream", &name, &e) {
                TopologyError::Conflict { .. }
                    if !config.message_streams().is_partitioned()
                        && first_layout(js, &wanted).await =>
                {
                    tracing::info!("bringing stream {name} to the current layout");
                    js.update_stream(wanted.clone())
                        .await
                        .map_err(|e| classify("stream", &name, &e))?;
                    js.get_stream(&name)
                        .await
                        .map_err(|e| classify("stream", &name, &e))
                }
                other => Err(other),
            },
        }
    })
    .await
}

/// Whether the existing messages stream is the first layout's (messages only) and otherwise
/// what `wanted` asks for: only then is it updated; any other difference is the operator's.
async fn first_layout(js: &jetstream::Context, wanted: &stream::Config) -> bool {
    let Ok(mut stream) = js.get_stream(MESSAGES_STREAM).await else {
        return false;
    };
    let Ok(info) = stream.info().await else {
        return false;
    };
    let have = &info.config;
    let limit = |v: i64| v.max(0);
    have.subjects == [subjects::ROOM_MESSAGES_WILDCARD.to_string()]
        && have.retention == wanted.retention
        && have.storage == wanted.storage
        && have.discard == wanted.discard
        && have.num_replicas == wanted.num_replicas
        && have.duplicate_window == wanted.duplicate_window
        && have.allow_direct == wanted.allow_direct
        && limit(have.max_messages) == limit(wanted.max_messages)
        && limit(have.max_bytes) == limit(wanted.max_bytes)
        && have.max_age == wanted.max_age
}

pub async fn ensure_writer_consumer(
    stream: &stream::Stream,
) -> Result<jetstream::consumer::Consumer<pull::Config>, TopologyError> {
    retrying(|| async {
        stream
            .create_consumer(writer_consumer_config())
            .await
            .map_err(|e| classify("consumer", WRITER_CONSUMER, &e))
    })
    .await
}

pub async fn ensure_bucket(
    js: &jetstream::Context,
    config: kv::Config,
) -> Result<kv::Store, TopologyError> {
    let name = config.bucket.clone();
    retrying(|| async {
        js.create_key_value(config.clone())
            .await
            .map_err(|e| classify("bucket", &name, &e))
    })
    .await
}
