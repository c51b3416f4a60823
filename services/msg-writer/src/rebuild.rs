//! Rebuilding Redis history from JetStream.
//!
//! JetStream is the source of truth; Redis is a cache of it shaped for paging. The writer checks
//! every few seconds that Redis still holds what it acknowledged, and replays the stream into it
//! when it does not:
//! - the history marker is missing (a flushed or new Redis);
//! - the high water is below the writer consumer's ack floor (a Redis restored from an old
//!   snapshot or AOF keeps its marker but lost acknowledged writes);
//! - a room was set aside as corrupt (its flag names it; see [`rebuild_room`]).
//!
//! A replay writes the same bytes the live path writes, so it can overlap with live writes and
//! with another replay harmlessly; a lock with a TTL keeps several writers from all doing the
//! work. A replay is complete only when the stream says nothing is pending past the last message
//! read: a read that stalls is an error (retried at the next check), never taken for the end.

use std::time::Duration;

use async_nats::jetstream::{
    consumer::{pull, pull::OrderedConfig, Consumer, DeliverPolicy},
    stream::Stream,
};
use dyschat_protocol::layout::history as layout;
use dyschat_runtime::redis_conn::{RedisConn, ScanScope};
use dyschat_runtime::{history, metric};
use futures::StreamExt;
use tokio_util::sync::CancellationToken;

use crate::batch::{prepare, Item};
use crate::partition::Partition;

/// How often the writer checks that Redis still holds the history.
pub const CHECK_INTERVAL: Duration = Duration::from_secs(5);
/// How long one writer may hold the rebuild lock.
const LOCK_TTL_SECS: u64 = 600;
/// Messages per Redis pipeline during a rebuild.
const CHUNK: usize = 1000;
/// The longest a replay waits for the next message the stream said was pending.
const STEP_TIMEOUT: Duration = Duration::from_secs(10);
/// Room flags looked at per check (`SCAN` count hint and bound).
const ROOM_FLAGS_PER_CHECK: usize = 100;
/// Keys per `SCAN` step and per `DEL` when the previous layout's keys are removed, and the most
/// steps per pattern and master.
const LEGACY_SCAN_COUNT: usize = 1000;
const LEGACY_SCAN_STEPS: usize = 1_000_000;

#[derive(Debug, thiserror::Error)]
pub enum RebuildError {
    #[error("Redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("JetStream: {0}")]
    JetStream(String),
    #[error("Redis refused the replayed writes ({0})")]
    Refused(String),
    #[error("the stream stalled after seq {after} with {pending} messages still pending")]
    Stalled { after: u64, pending: u64 },
}

fn js_err(e: impl std::fmt::Display) -> RebuildError {
    RebuildError::JetStream(e.to_string())
}

/// Why a full rebuild is needed, if it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lost {
    /// No marker: Redis is new or was emptied.
    NoMarker,
    /// The marker is there but acknowledged messages are not (high water below the ack floor).
    BelowAckFloor { high_water: u64, ack_floor: u64 },
}

/// The decision of one check, from what Redis and the consumer say. Pure, unit-tested.
pub(crate) fn lost(marker: Option<&str>, high_water: u64, ack_floor: u64) -> Option<Lost> {
    if marker != Some(layout::MARKER_COMPLETE) {
        // Rebuilding (by a writer that may have died) or missing: the lock decides who works.
        return Some(Lost::NoMarker);
    }
    (high_water < ack_floor).then_some(Lost::BelowAckFloor {
        high_water,
        ack_floor,
    })
}

/// Checks until `shutdown`, rebuilding whenever something was lost.
pub(crate) async fn watch(
    part: Partition,
    mut consumer: Consumer<pull::Config>,
    mut redis: RedisConn,
    writer_id: String,
    keep_secs: u64,
    shutdown: CancellationToken,
) {
    loop {
        match check(
            &part,
            &mut consumer,
            &mut redis,
            &writer_id,
            keep_secs,
            &shutdown,
        )
        .await
        {
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

/// One check: rebuilds everything if Redis lost it (returns how many messages were replayed),
/// then resumes the rebuild of any room left flagged.
async fn check(
    part: &Partition,
    consumer: &mut Consumer<pull::Config>,
    redis: &mut RedisConn,
    writer_id: &str,
    keep_secs: u64,
    shutdown: &CancellationToken,
) -> Result<Option<u64>, RebuildError> {
    let marker: Option<String> = redis::cmd("GET")
        .arg(&part.meta.marker)
        .query_async(redis)
        .await?;
    let high_water = history::high_water(redis, &part.meta).await?;
    let ack_floor = consumer
        .info()
        .await
        .map_err(js_err)?
        .ack_floor
        .stream_sequence;
    let rebuilt = match lost(marker.as_deref(), high_water, ack_floor) {
        Some(why) => rebuild_all(part, redis, writer_id, why, keep_secs, shutdown).await?,
        None => None,
    };
    // A flagged room is rebuilt by its own partition's check.
    for room in flagged_rooms(redis).await? {
        if part.holds_room(&room) {
            rebuild_room(part, redis, &room, keep_secs, shutdown).await;
        }
    }
    Ok(rebuilt)
}

/// Rooms whose rebuild was started and not finished (a writer stopped in the middle): one
/// `SCAN` step on each master.
async fn flagged_rooms(redis: &mut RedisConn) -> Result<Vec<String>, RebuildError> {
    let keys = redis
        .scan_keys(
            layout::ROOM_REBUILDING_PATTERN,
            ScanScope::Everywhere,
            ROOM_FLAGS_PER_CHECK,
            1,
        )
        .await?;
    Ok(keys
        .iter()
        .filter_map(|k| layout::rebuilding_room(k).map(String::from))
        .take(ROOM_FLAGS_PER_CHECK)
        .collect())
}

/// Deletes the keys of the layout before this one ([`layout::LEGACY_PATTERNS`]), which a
/// rebuild into the new keys leaves behind; returns how many it deleted.
async fn delete_legacy_keys(redis: &mut RedisConn) -> Result<usize, RebuildError> {
    let mut deleted = 0;
    for pattern in layout::LEGACY_PATTERNS {
        let keys = redis
            .scan_keys(
                pattern,
                ScanScope::Everywhere,
                LEGACY_SCAN_COUNT,
                LEGACY_SCAN_STEPS,
            )
            .await?;
        for some in keys.chunks(LEGACY_SCAN_COUNT) {
            // On a cluster the client splits a multi-key DEL by slot.
            let _: u64 = redis::cmd("DEL").arg(some).query_async(redis).await?;
            deleted += some.len();
        }
    }
    Ok(deleted)
}

/// Replays the whole stream into Redis under the rebuild lock; `None` if another writer holds
/// the lock or shutdown came first.
async fn rebuild_all(
    part: &Partition,
    redis: &mut RedisConn,
    writer_id: &str,
    why: Lost,
    keep_secs: u64,
    shutdown: &CancellationToken,
) -> Result<Option<u64>, RebuildError> {
    let locked: Option<String> = redis::cmd("SET")
        .arg(&part.meta.rebuild_lock)
        .arg(writer_id)
        .arg("NX")
        .arg("EX")
        .arg(LOCK_TTL_SECS)
        .query_async(redis)
        .await?;
    if locked.is_none() {
        return Ok(None);
    }
    metrics::counter!(metric::WRITER_REBUILDS_TOTAL).increment(1);
    tracing::warn!(
        ?why,
        partition = part.k,
        "Redis lost history: rebuilding it from JetStream"
    );
    let _: () = redis::cmd("SET")
        .arg(&part.meta.marker)
        .arg(layout::MARKER_REBUILDING)
        .query_async(redis)
        .await?;
    let everything = part.streams.stream_subjects(part.k);
    let replayed = replay(part, redis, &everything, keep_secs, shutdown).await;
    let result = match replayed {
        Ok(Some(count)) => {
            let legacy = delete_legacy_keys(redis).await?;
            if legacy > 0 {
                tracing::info!(
                    keys = legacy,
                    "deleted the history keys of the previous layout"
                );
            }
            // XX: if Redis was emptied again meanwhile, the marker stays missing and the next
            // check starts over.
            let _: Option<String> = redis::cmd("SET")
                .arg(&part.meta.marker)
                .arg(layout::MARKER_COMPLETE)
                .arg("XX")
                .query_async(redis)
                .await?;
            Ok(Some(count))
        }
        other => other,
    };
    let _: Result<(), _> = redis::cmd("DEL")
        .arg(&part.meta.rebuild_lock)
        .query_async(redis)
        .await;
    result
}

/// Replays one room (whose key was set aside as corrupt) and clears its flag, retrying until it
/// succeeds or shutdown comes (the flag then stays, and the next start resumes it).
pub(crate) async fn rebuild_room(
    part: &Partition,
    redis: &mut RedisConn,
    room_id: &str,
    keep_secs: u64,
    shutdown: &CancellationToken,
) {
    let mut pause = Duration::from_millis(200);
    loop {
        let filters = part.streams.room_filters(room_id);
        match replay(part, redis, &filters, keep_secs, shutdown).await {
            Ok(Some(count)) => {
                let cleared: Result<(), _> = redis::cmd("DEL")
                    .arg(layout::room_rebuilding_key(room_id))
                    .query_async(redis)
                    .await;
                if cleared.is_ok() {
                    tracing::info!(room = %room_id, count, "room history rebuilt from JetStream");
                    return;
                }
            }
            Ok(None) => return,
            Err(e) => tracing::warn!(room = %room_id, error = %e, "room rebuild failed; retrying"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(pause) => {}
        }
        pause = (pause * 2).min(Duration::from_secs(10));
    }
}

/// Replays every stored message and change event matching `filters`, from the first, into
/// Redis, raising the high water as it goes. Returns how many it wrote, or `None` if shut down
/// first.
async fn replay(
    part: &Partition,
    redis: &mut RedisConn,
    filters: &[String],
    keep_secs: u64,
    shutdown: &CancellationToken,
) -> Result<Option<u64>, RebuildError> {
    let stream: &Stream = &part.stream;
    let consumer = stream
        .create_consumer(OrderedConfig {
            filter_subjects: filters.to_vec(),
            deliver_policy: DeliverPolicy::All,
            ..Default::default()
        })
        .await
        .map_err(js_err)?;
    let mut pending = consumer.cached_info().num_pending;
    let mut messages = consumer.messages().await.map_err(js_err)?;
    let mut writes: Vec<Item<bytes::Bytes>> = Vec::with_capacity(CHUNK);
    let mut count = 0u64;
    let mut last = 0u64;
    while pending > 0 {
        if shutdown.is_cancelled() {
            return Ok(None);
        }
        let message = match tokio::time::timeout(STEP_TIMEOUT, messages.next()).await {
            Ok(Some(Ok(m))) => m,
            Ok(Some(Err(e))) => return Err(js_err(e)),
            Ok(None) | Err(_) => {
                return Err(RebuildError::Stalled {
                    after: last,
                    pending,
                })
            }
        };
        let info = message.info().map_err(js_err)?;
        last = info.stream_sequence;
        // What is still pending after this one (messages stored since the replay began count).
        pending = info.pending;
        // Poison was dead-lettered by the live path; a replay skips it.
        let day = crate::batch::stored_day(info.published);
        if let Some(item) = Item::new(
            prepare(&message.subject, last, &message.payload),
            day,
            message.payload.clone(),
        ) {
            writes.push(item);
            count += 1;
        }
        if writes.len() >= CHUNK || (pending == 0 && !writes.is_empty()) {
            write(redis, &part.meta, &writes, keep_secs).await?;
            writes.clear();
        }
    }
    Ok(Some(count))
}

/// Writes replayed entries through the live path's [`crate::redis_store::write_rooms`]: a
/// rebuilt history is the live one. A replay does not erase from the stream; the live path
/// acknowledges a deletion only after erasing.
async fn write(
    redis: &mut RedisConn,
    meta: &layout::MetaKeys,
    writes: &[Item<bytes::Bytes>],
    keep_secs: u64,
) -> Result<(), RebuildError> {
    let (rooms, _) = crate::batch::group_by_room(writes, |p: &bytes::Bytes| p.as_ref());
    let refused = |r: crate::store::Refusal| RebuildError::Refused(format!("{r:?}"));
    let answers = crate::redis_store::write_rooms(redis, meta, &rooms, keep_secs, |_| false)
        .await
        .map_err(refused)?;
    match answers.into_iter().find_map(Result::err) {
        Some(refusal) => Err(refused(refusal)),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_marker_or_a_high_water_below_the_ack_floor_means_lost() {
        assert_eq!(lost(None, 0, 0), Some(Lost::NoMarker));
        assert_eq!(
            lost(Some(layout::MARKER_REBUILDING), 10, 5),
            Some(Lost::NoMarker)
        );
        assert_eq!(lost(Some(layout::MARKER_COMPLETE), 10, 10), None);
        assert_eq!(lost(Some(layout::MARKER_COMPLETE), 12, 10), None);
        assert_eq!(
            lost(Some(layout::MARKER_COMPLETE), 7, 10),
            Some(Lost::BelowAckFloor {
                high_water: 7,
                ack_floor: 10
            })
        );
    }
}
