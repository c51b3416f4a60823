//! The history store over Redis: one pipeline per attempt (a `ZADD` per room and the high water),
//! answered room by room, and the setting aside of a corrupt room key.

use std::time::Instant;

use async_nats::jetstream::stream::Stream;
use dyschat_protocol::layout::history as layout;
use dyschat_runtime::{history, prometheus};
use redis::aio::ConnectionManager;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::rebuild;
use crate::store::{HistoryStore, Refusal, RoomWrite};

/// Redis, and what a room rebuild needs (the stream to read, a tracker to drain it at shutdown).
#[derive(Clone)]
pub(crate) struct RedisHistory {
    pub redis: ConnectionManager,
    pub stream: Stream,
    pub rebuilds: TaskTracker,
    pub shutdown: CancellationToken,
    /// How long a day of the retried-send index is kept (the dedupe window and a day).
    pub keep_secs: u64,
    /// Rooms deleted meanwhile: their late messages are acknowledged, not stored.
    pub deleted: std::sync::Arc<crate::deletion::DeletedRooms>,
}

/// Queues the writes of one room: its messages, then its retried-send index entries day by day;
/// returns how many replies they add (the room counts as stored only if all of them succeed).
pub(crate) fn queue_room(
    pipe: &mut redis::Pipeline,
    room: &RoomWrite<'_>,
    keep_secs: u64,
) -> usize {
    history::queue_store_room(pipe, room.room_id, &room.messages);
    let mut replies = 1;
    // Each sender's seqs, for exact unread counts.
    let mut senders: Vec<(&str, Vec<u64>)> = Vec::new();
    for (_, field, seq) in &room.sends {
        let sender = layout::sender_of(field);
        match senders.iter_mut().find(|(s, _)| *s == sender) {
            Some((_, seqs)) => seqs.push(*seq),
            None => senders.push((sender, vec![*seq])),
        }
    }
    for (sender, seqs) in &senders {
        history::queue_sent(pipe, room.room_id, sender, seqs);
        replies += 1;
    }
    let mut days: Vec<u64> = room.sends.iter().map(|(day, _, _)| *day).collect();
    days.sort_unstable();
    days.dedup();
    for day in days {
        let entries: Vec<(String, u64)> = room
            .sends
            .iter()
            .filter(|(d, _, _)| *d == day)
            .map(|(_, field, seq)| (field.to_string(), *seq))
            .collect();
        history::queue_dedupe(pipe, room.room_id, day, &entries, keep_secs);
        replies += 2;
    }
    replies
}

/// The refusal a Redis error means: `WRONGTYPE` (the key holds something else) is a corrupt key;
/// anything else is the store being unavailable for now, named by its error code.
pub(crate) fn refusal(e: &redis::RedisError) -> Refusal {
    match e.code() {
        Some("WRONGTYPE") => Refusal::Corrupt,
        Some(code) => Refusal::Unavailable(code.to_string()),
        None if e.is_timeout() => Refusal::Unavailable("timeout".into()),
        None => Refusal::Unavailable(e.category().to_string()),
    }
}

impl RedisHistory {
    /// Raises the high water to `seq` (for a message settled without being stored).
    pub async fn raise_high_water(&mut self, seq: u64) -> Result<(), Refusal> {
        let mut pipe = redis::pipe();
        history::queue_high_water(&mut pipe, seq);
        pipe.query_async::<()>(&mut self.redis)
            .await
            .map_err(|e| refusal(&e))
    }
}

impl HistoryStore for RedisHistory {
    async fn store(
        &mut self,
        rooms: &[RoomWrite<'_>],
    ) -> Result<Vec<Result<(), Refusal>>, Refusal> {
        let mut pipe = redis::pipe();
        pipe.ignore_errors();
        let mut spans = Vec::with_capacity(rooms.len());
        let mut at = 0;
        for room in rooms {
            if self.deleted.contains(room.room_id) {
                // An empty span: stored as far as the chunk is concerned, so it is acked.
                spans.push(at..at);
                continue;
            }
            let replies = queue_room(&mut pipe, room, self.keep_secs);
            spans.push(at..at + replies);
            at += replies;
        }
        let high = rooms
            .iter()
            .flat_map(|r| r.messages.iter().map(|(seq, _)| *seq))
            .max()
            .unwrap_or(0);
        history::queue_high_water(&mut pipe, high);
        let started = Instant::now();
        let replies: Vec<redis::RedisResult<redis::Value>> = pipe
            .query_async(&mut self.redis)
            .await
            .map_err(|e| refusal(&e))?;
        prometheus::redis_timing("store", started);
        // The high water must cover every acked message, so a room counts as stored only if the
        // high water was raised in the same pipeline.
        let reply = |i: usize| {
            replies
                .get(i)
                .map_or(Err(Refusal::Unavailable("no reply".into())), |r| {
                    r.as_ref().map(drop).map_err(refusal)
                })
        };
        let high_water = reply(at);
        Ok(spans
            .into_iter()
            .map(|span| {
                let stored = span.map(reply).find(Result::is_err).unwrap_or(Ok(()));
                stored.and(high_water.clone())
            })
            .collect())
    }

    async fn set_aside(&mut self, room_id: &str) -> Result<(), Refusal> {
        let key = layout::key(room_id);
        let aside = layout::corrupt_key(room_id, chrono::Utc::now().timestamp_millis());
        tracing::error!(room = %room_id, %key, %aside, "room history key is corrupt; moving it aside and rebuilding the room from the stream");
        let _: () = redis::pipe()
            .cmd("SET")
            .arg(layout::room_rebuilding_key(room_id))
            .arg("1")
            .ignore()
            .cmd("RENAME")
            .arg(&key)
            .arg(&aside)
            .ignore()
            .query_async(&mut self.redis)
            .await
            .map_err(|e| refusal(&e))?;
        let (stream, mut redis, room) =
            (self.stream.clone(), self.redis.clone(), room_id.to_string());
        let shutdown = self.shutdown.clone();
        let keep_secs = self.keep_secs;
        self.rebuilds.spawn(async move {
            rebuild::rebuild_room(&stream, &mut redis, &room, keep_secs, &shutdown).await;
        });
        Ok(())
    }
}
