//! A deleted room's history leaves Redis: on `room_deleted` (a `RoomEvent` on
//! `dyschat.events.room.<room>`, published by rooms after it purged the room's messages from the
//! stream) the writer deletes the room's history sorted set, every day of its retried-send index
//! and every per-sender set, and records the room as deleted so that a message of it still in
//! flight (consumed before the purge) is acknowledged without being stored again.
//!
//! Idempotent: deleting again finds nothing. A chunk being written at the moment of the event
//! may land after the first pass, so the keys are deleted once more a little later. The record
//! of deleted rooms is in memory (bounded) plus a marker key in Redis for operators; after a
//! writer restart the stream holds nothing of the room any more, so nothing can come back.

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dyschat_protocol::layout::history as layout;
use dyschat_protocol::subjects;
use dyschat_protocol::wire::RoomEvent;
use dyschat_runtime::redis_conn::{RedisConn, ScanScope};
use futures::StreamExt;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The most deleted rooms remembered in memory.
const MAX_REMEMBERED: usize = 10_000;
/// How long after the first pass the keys are deleted again.
const SECOND_PASS: Duration = Duration::from_secs(5);
/// The most `SCAN` steps one pattern takes (each looks at about [`SCAN_COUNT`] keys).
const MAX_SCAN_STEPS: usize = 10_000;
const SCAN_COUNT: usize = 1_000;
/// How long the Redis marker of a deleted room is kept.
const MARKER_SECS: u64 = 30 * 86_400;
/// How long one removal of a room's keys may take.
const DELETE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long subscribing may take.
const SUBSCRIBE_TIMEOUT: Duration = Duration::from_secs(5);
/// The most deletions being carried out at once (past it, events wait in the subscription).
const MAX_DELETING: usize = 64;

/// The rooms deleted while this writer runs.
#[derive(Default)]
pub(crate) struct DeletedRooms {
    inner: Mutex<(HashSet<String>, VecDeque<String>)>,
}

impl DeletedRooms {
    pub(crate) fn insert(&self, room_id: &str) {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let (set, order) = &mut *inner;
        if set.insert(room_id.to_string()) {
            order.push_back(room_id.to_string());
            if order.len() > MAX_REMEMBERED {
                if let Some(oldest) = order.pop_front() {
                    set.remove(&oldest);
                }
            }
        }
    }

    pub(crate) fn contains(&self, room_id: &str) -> bool {
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.0.contains(room_id)
    }
}

/// Deletes every history key of the room (idempotent).
pub(crate) async fn delete_history(redis: &mut RedisConn, room_id: &str) -> redis::RedisResult<()> {
    redis::pipe()
        .cmd("SET")
        .arg(layout::deleted_key(room_id))
        .arg("1")
        .arg("EX")
        .arg(MARKER_SECS)
        .ignore()
        .cmd("DEL")
        .arg(layout::key(room_id))
        .ignore()
        .query_async::<()>(redis)
        .await?;
    for pattern in [
        layout::dedupe_pattern(room_id),
        layout::sent_pattern(room_id),
        layout::mentioned_pattern(room_id),
    ] {
        // Every key of the room carries its hash tag: on a cluster they are all on the master
        // of the room's slot, the only one scanned.
        let keys = redis
            .scan_keys(
                &pattern,
                ScanScope::SlotOf(&pattern),
                SCAN_COUNT,
                MAX_SCAN_STEPS,
            )
            .await?;
        for some in keys.chunks(SCAN_COUNT) {
            redis::cmd("DEL").arg(some).query_async::<()>(redis).await?;
        }
    }
    Ok(())
}

async fn delete_logged(redis: &mut RedisConn, room_id: &str) {
    match tokio::time::timeout(DELETE_TIMEOUT, delete_history(redis, room_id)).await {
        Ok(Ok(())) => tracing::info!(room = %room_id, "deleted room's history removed"),
        Ok(Err(e)) => {
            tracing::warn!(room = %room_id, error = %e, "removing a deleted room's history failed")
        }
        Err(_) => tracing::warn!(room = %room_id, "removing a deleted room's history timed out"),
    }
}

/// Follows room deletions until `shutdown`.
pub(crate) async fn watch(
    client: async_nats::Client,
    redis: RedisConn,
    deleted: Arc<DeletedRooms>,
    shutdown: CancellationToken,
) {
    let subscribe = client.subscribe(subjects::ROOM_EVENTS_WILDCARD.to_string());
    let mut events = match tokio::time::timeout(SUBSCRIBE_TIMEOUT, subscribe).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            tracing::error!(error = %e, "cannot subscribe to room events; deleted rooms keep their history");
            return;
        }
        Err(_) => {
            tracing::error!(
                "subscribing to room events timed out; deleted rooms keep their history"
            );
            return;
        }
    };
    let tasks = TaskTracker::new();
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_DELETING));
    loop {
        let message = tokio::select! {
            _ = shutdown.cancelled() => break,
            next = events.next() => match next {
                Some(m) => m,
                None => break,
            },
        };
        let Ok(RoomEvent::RoomDeleted { room_id }) =
            serde_json::from_slice::<RoomEvent>(&message.payload)
        else {
            continue;
        };
        if subjects::parse_room_events(&message.subject) != Some(room_id.as_str()) {
            continue;
        }
        deleted.insert(&room_id);
        let Ok(slot) = slots.clone().acquire_owned().await else {
            break;
        };
        let (mut redis, shutdown) = (redis.clone(), shutdown.clone());
        tasks.spawn(async move {
            delete_logged(&mut redis, &room_id).await;
            tokio::select! {
                _ = shutdown.cancelled() => {}
                _ = tokio::time::sleep(SECOND_PASS) => delete_logged(&mut redis, &room_id).await,
            }
            drop(slot);
        });
    }
    tasks.close();
    tasks.wait().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deleted_rooms_are_remembered_within_a_bound() {
        let deleted = DeletedRooms::default();
        deleted.insert("r0");
        deleted.insert("r0");
        assert!(deleted.contains("r0"));
        for n in 1..=MAX_REMEMBERED {
            deleted.insert(&format!("r{n}"));
        }
        assert!(!deleted.contains("r0"), "the oldest went first");
        assert!(deleted.contains(&format!("r{MAX_REMEMBERED}")));
        let inner = deleted.inner.lock().unwrap();
        assert_eq!(
            (inner.0.len(), inner.1.len()),
            (MAX_REMEMBERED, MAX_REMEMBERED)
        );
    }
}
