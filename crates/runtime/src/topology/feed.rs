//! The feed's part of the layout: the `DYSCHAT_FEED` stream (one subject per user, re-published
//! to the user's event subject so every agent holding a socket of theirs delivers it at once)
//! and the rooms service's durable consumer `feed` of room messages, which makes the
//! notifications.

use async_nats::jetstream::{
    self,
    consumer::{pull, AckPolicy, DeliverPolicy},
    stream::{self, DiscardPolicy, Republish, RetentionPolicy, StorageType},
};
use dyschat_protocol::layout::*;
use dyschat_protocol::subjects;

use super::{classify, retrying, TopologyError};
use crate::config::TopologySettings;

/// The largest stored notification (a preview is at most 140 characters).
pub const FEED_MAX_MESSAGE_BYTES: i32 = 4 * 1024;

/// Limits retention, per user at most [`FEED_MAX_PER_USER`] for at most [`FEED_MAX_AGE`],
/// direct gets for the pages, de-duplicated by `Nats-Msg-Id` for [`FEED_DEDUPE_WINDOW`].
pub fn feed_stream_config(config: &TopologySettings) -> stream::Config {
    stream::Config {
        name: FEED_STREAM.into(),
        description: Some("DYSCHAT notifications, one subject per user".into()),
        subjects: vec![
            subjects::FEED_WILDCARD.into(),
            subjects::NOTIFIED_WILDCARD.into(),
        ],
        retention: RetentionPolicy::Limits,
        storage: StorageType::File,
        discard: DiscardPolicy::Old,
        num_replicas: config.stream_replicas,
        max_age: FEED_MAX_AGE,
        max_messages_per_subject: FEED_MAX_PER_USER,
        max_message_size: FEED_MAX_MESSAGE_BYTES,
        duplicate_window: FEED_DEDUPE_WINDOW,
        allow_direct: true,
        republish: Some(Republish {
            source: subjects::FEED_WILDCARD.into(),
            destination: subjects::FEED_REPUBLISH_DEST.into(),
            headers_only: false,
        }),
        ..Default::default()
    }
}

pub async fn ensure_feed_stream(
    js: &jetstream::Context,
    config: &TopologySettings,
) -> Result<stream::Stream, TopologyError> {
    retrying(|| async {
        js.create_stream(feed_stream_config(config))
            .await
            .map_err(|e| classify("stream", FEED_STREAM, &e))
    })
    .await
}

/// Room messages and their change events (a message makes notifications, its deletion erases
/// them; an edit or a reaction makes none), from the moment the consumer is first made (a new
/// feed does not notify about old messages).
pub fn feed_consumer_config() -> pull::Config {
    feed_consumer_config_for(subjects::LIVE_REPUBLISH_SOURCE.into())
}

/// The feed consumer of the message stream storing `filter` (a partition's everything,
/// `MessageStreams::republish_source`).
pub fn feed_consumer_config_for(filter: String) -> pull::Config {
    pull::Config {
        durable_name: Some(FEED_CONSUMER.into()),
        description: Some("rooms: makes each user's notifications from room messages".into()),
        deliver_policy: DeliverPolicy::New,
        ack_policy: AckPolicy::Explicit,
        ack_wait: FEED_ACK_WAIT,
        max_deliver: FEED_MAX_DELIVER,
        max_ack_pending: FEED_MAX_ACK_PENDING,
        filter_subject: filter,
        ..Default::default()
    }
}

/// The feed consumer on `stream`, filtered to `filter` (everything the stream stores).
pub async fn ensure_feed_consumer(
    stream: &stream::Stream,
    filter: String,
) -> Result<jetstream::consumer::Consumer<pull::Config>, TopologyError> {
    retrying(|| async {
        stream
            .create_consumer(feed_consumer_config_for(filter.clone()))
            .await
            .map_err(|e| classify("consumer", FEED_CONSUMER, &e))
    })
    .await
}
