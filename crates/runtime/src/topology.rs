//! The JetStream layout of the mesh: the message streams and the writer's durable consumers
//! (`messages`), the counter and dead-letter streams and the KV buckets, defined once.
//!
//! Every service ensures the parts it uses at start. Creation is idempotent (the server accepts a
//! create with an identical configuration), and a stream or bucket that exists with a different
//! configuration stops the service with one clear line instead of being silently changed.

use std::time::Duration;

use async_nats::jetstream::{
    self, kv,
    stream::{self, DiscardPolicy, RetentionPolicy, StorageType},
    ErrorCode,
};

use dyschat_protocol::layout::*;
use dyschat_protocol::subjects;

use crate::config::TopologySettings;

mod buckets;
mod feed;
mod files;
mod messages;
mod search;
pub use buckets::*;
pub use feed::*;
pub use files::*;
pub use messages::*;
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
