//! The history store over Redis: one pipeline per attempt (per room the history script, its
//! per-sender sets and retried-send index; then the high water), answered room by room; the
//! erasure of deleted messages from the stream; and the setting aside of a corrupt room key.
//! The live path and a rebuild write through the same [`write_rooms`].

use std::time::Instant;

use dyschat_protocol::layout::history as layout;
use dyschat_runtime::redis_conn::{Batch, RedisConn};
use dyschat_runtime::{history, prometheus};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::partition::Partition;
use crate::store::{HistoryStore, Refusal, RoomWrite};
use crate::{apply, erase, rebuild};

/// Redis, and what a room rebuild needs (the partition's stream to read, a tracker to drain it
/// at shutdown).
#[derive(Clone)]
pub(crate) struct RedisHistory {
    pub redis: RedisConn,
    pub part: std::sync::Arc<Partition>,
    pub rebuilds: TaskTracker,
    pub shutdown: CancellationToken,
    /// How long a day of the retried-send index is kept (the dedupe window and a day).
    pub keep_secs: u64,
    /// Rooms deleted meanwhile: their late messages are acknowledged, not stored.
    pub deleted: std::sync::Arc<crate::deletion::DeletedRooms>,
}

/// Queues the writes of one room (all on its slot): its history (one script call), each
/// sender's set, then its retried-send index entries day by day; returns how many replies they
/// add (the room counts as stored only if all of them succeed).
pub(crate) fn queue_room(
    pipe: &mut redis::Pipeline,
    room: &RoomWrite<'_>,
    keep_secs: u64,
) -> usize {
    apply::queue_apply(pipe, room);
    let mut replies = 1;
    // Each sender's seqs, for exact unread counts.
    let mut senders: Vec<(&str, Vec<u64>)> = Vec::new();
    for (sender, seq) in &room.senders {
        match senders.iter_mut().find(|(s, _)| s == sender) {
            Some((_, seqs)) => seqs.push(*seq),
            None => senders.push((sender, vec![*seq])),
        }
    }
    for (sender, seqs) in &mut senders {
        // A message and its changes name the same seq.
        seqs.sort_unstable();
        seqs.dedup();
        history::queue_seqs(pipe, layout::sent_key(room.room_id, sender), seqs);
        replies += 1;
    }
    // Each mentioned user's seqs, for exact mention counts.
    let mut mentioned: Vec<(&str, Vec<u64>)> = Vec::new();
    for (user, seq) in &room.mentioned {
        match mentioned.iter_mut().find(|(u, _)| u == user) {
            Some((_, seqs)) => seqs.push(*seq),
            None => mentioned.push((user, vec![*seq])),
        }
    }
    for (user, seqs) in &mentioned {
        history::queue_seqs(pipe, layout::mentioned_key(room.room_id, user), seqs);
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
        history::queue_high_water(&mut pipe, &self.part.meta, seq);
        pipe.query_async::<()>(&mut self.redis)
            .await
            .map_err(|e| refusal(&e))
    }
}

/// Writes `rooms` in one batch (one pipeline on one Redis; on a cluster one per room, all at
/// once) and raises the high water (of the partition whose keys are `meta`) to the highest sequence among them; per room whether it was
/// stored (rooms `skip` names count as stored without a write). `Err` when Redis could not be
/// asked at all.
///
/// Nothing here needs atomicity across rooms or with the high water (a pipeline never was a
/// transaction): a room counts as stored only when its own writes and the high water's raise
/// both succeeded, so every acked entry is below the high water whatever order the nodes
/// applied them in, and a room that failed is written again (idempotently) later.
pub(crate) async fn write_rooms(
    redis: &mut RedisConn,
    meta: &layout::MetaKeys,
    rooms: &[RoomWrite<'_>],
    keep_secs: u64,
    skip: impl Fn(&str) -> bool,
) -> Result<Vec<Result<(), Refusal>>, Refusal> {
    let mut batch = Batch::new(redis);
    // Per room its group in the batch (`None`: skipped).
    let mut groups = Vec::with_capacity(rooms.len());
    let mut next = 0;
    for room in rooms {
        if skip(room.room_id) {
            // Stored as far as the chunk is concerned, so it is acked.
            groups.push(None);
            continue;
        }
        queue_room(batch.group(), room, keep_secs);
        groups.push(Some(next));
        next += 1;
    }
    let high = rooms.iter().map(|r| r.high).max().unwrap_or(0);
    history::queue_high_water(batch.group(), meta, high);
    let replies = apply::query(redis, &batch).await.map_err(|e| refusal(&e))?;
    let group = |i: usize| -> Result<(), Refusal> {
        match replies.get(i) {
            None => Err(Refusal::Unavailable("no reply".into())),
            Some(replies) => replies
                .iter()
                .find_map(|r| r.as_ref().err())
                .map_or(Ok(()), |e| Err(refusal(e))),
        }
    };
    // The high water must cover every acked entry, so a room counts as stored only if the high
    // water was raised in the same batch.
    let high_water = group(next);
    Ok(groups
        .into_iter()
        .map(|g| match g {
            None => high_water.clone(),
            Some(i) => group(i).and(high_water.clone()),
        })
        .collect())
}

impl HistoryStore for RedisHistory {
    async fn store(
        &mut self,
        rooms: &[RoomWrite<'_>],
    ) -> Result<Vec<Result<(), Refusal>>, Refusal> {
        let deleted = self.deleted.clone();
        let started = Instant::now();
        let meta = &self.part.meta;
        let answers = write_rooms(&mut self.redis, meta, rooms, self.keep_secs, |room| {
            deleted.contains(room)
        })
        .await;
        prometheus::redis_timing("store", started);
        answers
    }

    async fn erase(&mut self, room_id: &str, seqs: &[u64]) -> Result<(), Refusal> {
        for &seq in seqs {
            if let Err(e) = erase::erase_deleted(&self.part, room_id, seq).await {
                tracing::warn!(room = %room_id, seq, error = %e, "erasing a deleted message from the stream failed; retrying");
                return Err(Refusal::Unavailable(e.code().into()));
            }
        }
        Ok(())
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
        let (part, mut redis, room) = (self.part.clone(), self.redis.clone(), room_id.to_string());
        let shutdown = self.shutdown.clone();
        let keep_secs = self.keep_secs;
        self.rebuilds.spawn(async move {
            rebuild::rebuild_room(&part, &mut redis, &room, keep_secs, &shutdown).await;
        });
        Ok(())
    }
}
