//! The message streams (one per partition, see `dyschat_protocol::streams`) and the writer's
//! durable consumer on each: their configurations and their ensures.

use std::time::Duration;

use async_nats::jetstream::{
    self,
    consumer::{pull, AckPolicy, DeliverPolicy},
    stream::{self, DiscardPolicy, Republish, RetentionPolicy, StorageType},
};

use dyschat_protocol::layout::*;
use dyschat_protocol::streams::MessageStreams;
use dyschat_protocol::subjects;

use super::{classify, retrying, TopologyError};
use crate::config::TopologySettings;

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
