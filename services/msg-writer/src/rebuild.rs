//! Rebuilding Redis history from JetStream.
//!
//! JetStream is the source of truth; Redis is a cache of it shaped for paging. If Redis is
//! emptied (`FLUSHALL`) or replaced by a fresh instance, its history marker is gone, and the next
//! check (at start, then every few seconds) replays the whole stream into it. The replay writes
//! the same bytes the live path writes, so it can overlap with live writes and with a second
//! rebuild harmlessly; a lock with a TTL keeps several writers from all doing the work.

use std::time::Duration;

use async_nats::jetstream::{
    consumer::{pull::OrderedConfig, DeliverPolicy},
    stream::Stream,
};
use dyschat_protocol::{layout::history as layout, subjects};
use dyschat_runtime::history;
use futures::StreamExt;
use redis::aio::ConnectionManager;
use tokio_util::sync::CancellationToken;

use crate::batch::{prepare, Prepared};

/// How often the writer checks that Redis still holds the history.
pub const CHECK_INTERVAL: Duration = Duration::from_secs(5);
/// How long one writer may hold the rebuild lock.
const LOCK_TTL_SECS: u64 = 600;
/// Messages per Redis pipeline during a rebuild.
const CHUNK: usize = 1000;
const STEP_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum RebuildError {
    #[error("Redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("JetStream: {0}")]
    JetStream(String),
}

fn js_err(e: impl std::fmt::Display) -> RebuildError {
    RebuildError::JetStream(e.to_string())
}

/// Checks the marker until `shutdown`, rebuilding whenever it is missing.
pub async fn watch(
    stream: Stream,
    mut redis: ConnectionManager,
    writer_id: String,
    shutdown: CancellationToken,
) {
    loop {
        match rebuild_if_lost(&stream, &mut redis, &writer_id, &shutdown).await {
            Ok(Some(count)) => tracing::info!(count, "history rebuilt from JetStream"),
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "history check failed; will retry"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(CHECK_INTERVAL) => {}
        }
    }
}

/// Rebuilds the history if Redis lost it; returns how many messages were replayed, or `None` if
/// nothing was needed (or another writer is doing it).
pub async fn rebuild_if_lost(
    stream: &Stream,
    redis: &mut ConnectionManager,
    writer_id: &str,
    shutdown: &CancellationToken,
) -> Result<Option<u64>, RebuildError> {
    let marker: Option<String> = redis::cmd("GET")
        .arg(layout::MARKER_KEY)
        .query_async(redis)
        .await?;
    if marker.as_deref() == Some(layout::MARKER_COMPLETE) {
        return Ok(None);
    }
    let locked: Option<String> = redis::cmd("SET")
        .arg(layout::REBUILD_LOCK_KEY)
        .arg(writer_id)
        .arg("NX")
        .arg("EX")
        .arg(LOCK_TTL_SECS)
        .query_async(redis)
        .await?;
    if locked.is_none() {
        return Ok(None);
    }
    metrics::counter!(dyschat_runtime::metric::WRITER_REBUILDS_TOTAL).increment(1);
    tracing::warn!("Redis history marker missing: rebuilding history from JetStream");
    let _: () = redis::cmd("SET")
        .arg(layout::MARKER_KEY)
        .arg(layout::MARKER_REBUILDING)
        .query_async(redis)
        .await?;
    let count = replay_all(stream, redis, shutdown).await;
    let count = match count {
        Ok(Some(count)) => {
            // XX: if Redis was emptied again meanwhile, the marker stays missing and the next
            // check starts over.
            let _: Option<String> = redis::cmd("SET")
                .arg(layout::MARKER_KEY)
                .arg(layout::MARKER_COMPLETE)
                .arg("XX")
                .query_async(redis)
                .await?;
            Some(count)
        }
        Ok(None) => None,
        Err(e) => {
            let _: Result<(), _> = redis::cmd("DEL")
                .arg(layout::REBUILD_LOCK_KEY)
                .query_async(redis)
                .await;
            return Err(e);
        }
    };
    let _: () = redis::cmd("DEL")
        .arg(layout::REBUILD_LOCK_KEY)
        .query_async(redis)
        .await?;
    Ok(count)
}

/// Replays every stored room message up to the stream's current end (`None` if shut down first).
async fn replay_all(
    stream: &Stream,
    redis: &mut ConnectionManager,
    shutdown: &CancellationToken,
) -> Result<Option<u64>, RebuildError> {
    let info = stream.get_info().await.map_err(js_err)?;
    let last = info.state.last_sequence;
    if info.state.messages == 0 {
        return Ok(Some(0));
    }
    let consumer = stream
        .create_consumer(OrderedConfig {
            filter_subject: subjects::ROOM_MESSAGES_WILDCARD.into(),
            deliver_policy: DeliverPolicy::All,
            ..Default::default()
        })
        .await
        .map_err(js_err)?;
    let mut messages = consumer.messages().await.map_err(js_err)?;
    let mut pipe = redis::pipe();
    let mut queued = 0usize;
    let mut count = 0u64;
    loop {
        if shutdown.is_cancelled() {
            return Ok(None);
        }
        let next = tokio::time::timeout(STEP_TIMEOUT, messages.next()).await;
        let message = match next {
            Ok(Some(Ok(m))) => m,
            Ok(Some(Err(e))) => return Err(js_err(e)),
            Ok(None) => break,
            // Nothing more within the timeout: the stream ended below `last` (trimmed).
            Err(_) => break,
        };
        let seq = message.info().map_err(js_err)?.stream_sequence;
        if let Prepared::Store { room_id, seq } = prepare(&message.subject, seq, &message.payload) {
            history::queue_store(&mut pipe, &room_id, seq, &message.payload);
            queued += 1;
            count += 1;
        }
        if queued >= CHUNK {
            pipe.query_async::<()>(redis).await?;
            pipe = redis::pipe();
            queued = 0;
        }
        if seq >= last {
            break;
        }
    }
    if queued > 0 {
        pipe.query_async::<()>(redis).await?;
    }
    Ok(Some(count))
}
