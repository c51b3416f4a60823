//! Room history in Redis: the writes msg-writer queues and the pages ws-agent reads, over the
//! layout of [`dyschat_protocol::layout::history`].
//!
//! A page is one range query; `prev_seq` is the score of the neighbouring member, so it is read
//! with one extra element rather than stored.

use dyschat_protocol::layout::history::{
    key, room_rebuilding_key, MetaKeys, HIGH_WATER_MEMBER, MARKER_COMPLETE,
};
use dyschat_protocol::wire::{Message, MessagePage, StoredMessage};
use redis::aio::ConnectionLike;

use crate::redis_conn::{Batch, RedisConn};

pub use dyschat_protocol::layout::history::{DEFAULT_PAGE, MAX_PAGE};

/// Which slice of a room's history to read; both directions return oldest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageQuery {
    /// The newest `limit` messages with `seq < S` (`None`: the newest of all).
    Before(Option<u64>),
    /// The oldest `limit` messages with `seq > S`.
    After(u64),
}

/// Queues the store of several messages of one room on `pipe`, as one `ZADD` (one reply: how
/// many were new): Redis parses and dispatches one command per room instead of one per message.
pub fn queue_store_room(pipe: &mut redis::Pipeline, room_id: &str, messages: &[(u64, &[u8])]) {
    pipe.zadd_multiple(key(room_id), messages);
}

/// Queues raising the high water of the partition whose `meta` keys are given to `seq` if it is
/// higher (one reply); see [`dyschat_protocol::layout::history::HIGH_WATER_KEY`].
pub fn queue_high_water(pipe: &mut redis::Pipeline, meta: &MetaKeys, seq: u64) {
    pipe.cmd("ZADD")
        .arg(&meta.high_water)
        .arg("GT")
        .arg(seq)
        .arg(HIGH_WATER_MEMBER);
}

/// What the history store can be trusted with, as far as Redis itself knows: whether it holds
/// the whole history (marker complete, the room not being rebuilt) and up to which stream
/// sequence it has stored everything it was given. A reader trusts it for the room's messages up
/// to the writer consumer's ack floor only when `complete` and the high water reaches that floor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StoreState {
    pub complete: bool,
    pub high_water: u64,
}

/// Reads [`StoreState`] for `room_id` (whose partition's keys are `meta`) in one round trip
/// (on a cluster, three at once: the marker, the room's flag and the high water live on three
/// slots).
pub async fn state(
    conn: &mut RedisConn,
    room_id: &str,
    meta: &MetaKeys,
) -> redis::RedisResult<StoreState> {
    let mut batch = Batch::new(conn);
    queue_state(&mut batch, room_id, meta);
    let mut replies = batch.query(conn).await?.into_iter().flatten();
    read_state(&mut replies)
}

/// Queues the reads of [`StoreState`]: three groups, one per slot.
fn queue_state(batch: &mut Batch, room_id: &str, meta: &MetaKeys) {
    batch.group().cmd("GET").arg(&meta.marker);
    batch
        .group()
        .cmd("EXISTS")
        .arg(room_rebuilding_key(room_id));
    batch
        .group()
        .cmd("ZSCORE")
        .arg(&meta.high_water)
        .arg(HIGH_WATER_MEMBER);
}

/// Decodes the replies of [`queue_state`].
fn read_state(
    replies: &mut impl Iterator<Item = redis::RedisResult<redis::Value>>,
) -> redis::RedisResult<StoreState> {
    let mut next = || {
        replies.next().unwrap_or_else(|| {
            Err(redis::RedisError::from((
                redis::ErrorKind::Client,
                "no reply",
            )))
        })
    };
    let marker: Option<String> = redis::from_redis_value(next()?)?;
    let rebuilding: bool = redis::from_redis_value(next()?)?;
    let high: Option<f64> = redis::from_redis_value(next()?)?;
    Ok(StoreState {
        complete: marker.as_deref() == Some(MARKER_COMPLETE) && !rebuilding,
        high_water: high.map_or(0, |s| s as u64),
    })
}

/// Queues the retried-send index entries of one room and day (`(field, seq)`, one reply) and the
/// hash's expiry after `keep_secs` (one reply). `HSETNX` semantics are not needed: a retry that
/// got through (a second seq) is never stored, the stream dropped it.
pub fn queue_dedupe(
    pipe: &mut redis::Pipeline,
    room_id: &str,
    day: u64,
    entries: &[(String, u64)],
    keep_secs: u64,
) {
    let key = dyschat_protocol::layout::history::dedupe_key(room_id, day);
    pipe.hset_multiple(&key, entries);
    pipe.expire(&key, i64::try_from(keep_secs).unwrap_or(i64::MAX));
}

/// How many messages of the room have `after < seq <= up_to` in history, how many of them
/// `user_id` sent, and how many mention them, in one round trip (three `ZCOUNT`s).
pub async fn counts<C: ConnectionLike>(
    conn: &mut C,
    room_id: &str,
    sender_id: &str,
    after: u64,
    up_to: u64,
) -> redis::RedisResult<(u64, u64, u64)> {
    let min = format!("({after}");
    redis::pipe()
        .cmd("ZCOUNT")
        .arg(key(room_id))
        .arg(&min)
        .arg(up_to)
        .cmd("ZCOUNT")
        .arg(dyschat_protocol::layout::history::sent_key(
            room_id, sender_id,
        ))
        .arg(&min)
        .arg(up_to)
        .cmd("ZCOUNT")
        .arg(dyschat_protocol::layout::history::mentioned_key(
            room_id, sender_id,
        ))
        .arg(&min)
        .arg(up_to)
        .query_async(conn)
        .await
}

/// Queues `seqs` into the sorted set `key` (score = member = seq): a sender's set or a
/// mentioned user's (one reply).
pub fn queue_seqs(pipe: &mut redis::Pipeline, key: String, seqs: &[u64]) {
    let members: Vec<(u64, u64)> = seqs.iter().map(|s| (*s, *s)).collect();
    pipe.zadd_multiple(key, &members);
}

/// The seq of the first send with `field` in any of `days`, and the store's state, in one round
/// trip.
pub async fn dedupe_lookup(
    conn: &mut RedisConn,
    room_id: &str,
    meta: &MetaKeys,
    field: &str,
    days: &[u64],
) -> redis::RedisResult<(Option<u64>, StoreState)> {
    let mut batch = Batch::new(conn);
    if !days.is_empty() {
        let lookups = batch.group();
        for day in days {
            lookups.hget(
                dyschat_protocol::layout::history::dedupe_key(room_id, *day),
                field,
            );
        }
    }
    queue_state(&mut batch, room_id, meta);
    let mut replies = batch.query(conn).await?.into_iter().flatten();
    let mut found = None;
    for _ in days {
        let Some(reply) = replies.next() else { break };
        if found.is_none() {
            found = redis::from_redis_value::<Option<u64>>(reply?)
                .ok()
                .flatten();
        }
    }
    Ok((found, read_state(&mut replies)?))
}

/// The high water of the partition whose keys are `meta` (0 when none is recorded: a new or
/// emptied Redis).
pub async fn high_water<C: ConnectionLike>(
    conn: &mut C,
    meta: &MetaKeys,
) -> redis::RedisResult<u64> {
    let score: Option<f64> = redis::cmd("ZSCORE")
        .arg(&meta.high_water)
        .arg(HIGH_WATER_MEMBER)
        .query_async(conn)
        .await?;
    Ok(score.map_or(0, |s| s as u64))
}

type Scored = Vec<(Vec<u8>, f64)>;

/// Reads one page. `limit` must already be within 1..=[`MAX_PAGE`].
pub async fn page<C: ConnectionLike>(
    conn: &mut C,
    room_id: &str,
    query: PageQuery,
    limit: usize,
) -> redis::RedisResult<MessagePage> {
    let key = key(room_id);
    match query {
        PageQuery::Before(before) => {
            let max = before.map_or("+inf".to_string(), |s| format!("({s}"));
            // limit + 1 to know has_more, + 1 more to know the prev_seq of the oldest returned.
            let newest_first: Scored = newest_at_most(&key, max, limit + 2)
                .query_async(conn)
                .await?;
            let has_more = newest_first.len() > limit;
            let mut messages = Vec::with_capacity(limit.min(newest_first.len()));
            for (i, (payload, score)) in newest_first.iter().enumerate().take(limit) {
                let prev = newest_first.get(i + 1).map_or(0, |(_, s)| *s as u64);
                if let Some(m) = decode(payload, *score as u64, prev) {
                    messages.push(m);
                }
            }
            messages.reverse();
            Ok(MessagePage { messages, has_more })
        }
        PageQuery::After(after) => {
            let (oldest_first, before): (Scored, Scored) = redis::pipe()
                .cmd("ZRANGEBYSCORE")
                .arg(&key)
                .arg(format!("({after}"))
                .arg("+inf")
                .arg("WITHSCORES")
                .arg("LIMIT")
                .arg(0)
                .arg(limit + 1)
                .add_command(newest_at_most(&key, after, 1))
                .query_async(conn)
                .await?;
            let has_more = oldest_first.len() > limit;
            let mut prev = before.first().map_or(0, |(_, s)| *s as u64);
            let mut messages = Vec::with_capacity(limit.min(oldest_first.len()));
            for (payload, score) in oldest_first.iter().take(limit) {
                let seq = *score as u64;
                if let Some(m) = decode(payload, seq, prev) {
                    messages.push(m);
                }
                prev = seq;
            }
            Ok(MessagePage { messages, has_more })
        }
    }
}

/// The newest stored `seq` of a room below `seq` (0 if none): the `prev_seq` of a message that
/// was not read together with its predecessor.
pub async fn seq_before<C: ConnectionLike>(
    conn: &mut C,
    room_id: &str,
    seq: u64,
) -> redis::RedisResult<u64> {
    let found: Scored = newest_at_most(&key(room_id), format!("({seq}"), 1)
        .query_async(conn)
        .await?;
    Ok(found.first().map_or(0, |(_, s)| *s as u64))
}

/// `ZREVRANGEBYSCORE key max -inf WITHSCORES LIMIT 0 count`: the newest `count` members with a
/// score of at most `max` (`(S` for below `S`), newest first, with their scores. Pages and
/// `prev_seq` lookups all read a room's history backwards this one way.
fn newest_at_most(key: &str, max: impl redis::ToRedisArgs, count: usize) -> redis::Cmd {
    let mut cmd = redis::cmd("ZREVRANGEBYSCORE");
    cmd.arg(key)
        .arg(max)
        .arg("-inf")
        .arg("WITHSCORES")
        .arg("LIMIT")
        .arg(0)
        .arg(count);
    cmd
}

fn decode(payload: &[u8], seq: u64, prev_seq: u64) -> Option<Message> {
    match serde_json::from_slice::<StoredMessage>(payload) {
        Ok(stored) => Some(Message::from_stored(stored, seq, prev_seq)),
        Err(e) => {
            tracing::error!(seq, error = %e, "undecodable history entry skipped");
            None
        }
    }
}
