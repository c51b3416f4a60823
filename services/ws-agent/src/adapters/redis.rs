//! [`HistoryStore`] over Redis: one range query per page, timed in `dyschat_redis_seconds`.

use dyschat_protocol::layout::history::room_meta_keys;
use dyschat_protocol::streams::MessageStreams;
use std::time::Instant;

use dyschat_protocol::wire::MessagePage;
use dyschat_runtime::history::{self, PageQuery};
use dyschat_runtime::prometheus;
use dyschat_runtime::redis_conn::RedisConn;
use futures::future::BoxFuture;
use futures::FutureExt;

use crate::ports::{Grant, HistoryStore, PortError, PortResult, RateStore};

/// How long a history read may wait for Redis: the stream answers what Redis cannot, so a slow
/// Redis must not make every page slow.
const READ_TIMEOUT: std::time::Duration = std::time::Duration::from_millis(500);

/// After a failure, Redis is not asked again for this long (the stream answers meanwhile), so an
/// outage does not cost every request a timeout.
const BACKOFF: std::time::Duration = std::time::Duration::from_secs(1);

/// Remembers that Redis just failed.
#[derive(Clone, Default)]
struct Breaker(std::sync::Arc<std::sync::Mutex<Option<Instant>>>);

impl Breaker {
    fn open(&self) -> bool {
        let until = *self.0.lock().unwrap_or_else(|p| p.into_inner());
        until.is_some_and(|u| u > Instant::now())
    }

    fn trip(&self) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now() + BACKOFF);
    }

    /// Runs `call` within `timeout` unless the breaker is open; a failure trips it.
    async fn call<T>(
        &self,
        timeout: std::time::Duration,
        call: impl std::future::Future<Output = redis::RedisResult<T>>,
    ) -> PortResult<T> {
        if self.open() {
            return Err(PortError::Failed("Redis failed a moment ago".into()));
        }
        let result = match tokio::time::timeout(timeout, call).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(PortError::failed(e)),
            Err(_) => Err(PortError::Timeout),
        };
        if result.is_err() {
            self.trip();
        }
        result
    }
}

#[derive(Clone)]
pub(crate) struct RedisHistory {
    redis: RedisConn,
    breaker: Breaker,
    /// Which partition's marker and high water speak for a room.
    streams: MessageStreams,
}

impl RedisHistory {
    pub(crate) fn new(redis: RedisConn, streams: MessageStreams) -> Self {
        RedisHistory {
            redis,
            breaker: Breaker::default(),
            streams,
        }
    }

    /// One read of history, within [`READ_TIMEOUT`] and the breaker, timed as `op`.
    async fn timed<T>(
        &self,
        op: &'static str,
        call: impl std::future::Future<Output = redis::RedisResult<T>>,
    ) -> PortResult<T> {
        let started = Instant::now();
        let result = self.breaker.call(READ_TIMEOUT, call).await;
        prometheus::redis_timing(op, started);
        result
    }
}

impl HistoryStore for RedisHistory {
    fn sent<'a>(
        &'a self,
        room_id: &'a str,
        field: &'a str,
        days: &'a [u64],
    ) -> BoxFuture<'a, PortResult<(Option<u64>, history::StoreState)>> {
        async move {
            let mut redis = self.redis.clone();
            self.timed(
                "dedupe",
                history::dedupe_lookup(
                    &mut redis,
                    room_id,
                    &room_meta_keys(self.streams, room_id),
                    field,
                    days,
                ),
            )
            .await
        }
        .boxed()
    }

    fn state<'a>(&'a self, room_id: &'a str) -> BoxFuture<'a, PortResult<history::StoreState>> {
        async move {
            let mut redis = self.redis.clone();
            let meta = room_meta_keys(self.streams, room_id);
            self.timed("history_state", history::state(&mut redis, room_id, &meta))
                .await
        }
        .boxed()
    }

    fn page<'a>(
        &'a self,
        room_id: &'a str,
        query: PageQuery,
        limit: usize,
    ) -> BoxFuture<'a, PortResult<MessagePage>> {
        async move {
            let mut redis = self.redis.clone();
            self.timed("history", history::page(&mut redis, room_id, query, limit))
                .await
        }
        .boxed()
    }

    fn counts<'a>(
        &'a self,
        room_id: &'a str,
        sender_id: &'a str,
        after: u64,
        up_to: u64,
    ) -> BoxFuture<'a, PortResult<(u64, u64, u64)>> {
        async move {
            let mut redis = self.redis.clone();
            self.timed(
                "unread",
                history::counts(&mut redis, room_id, sender_id, after, up_to),
            )
            .await
        }
        .boxed()
    }
}

/// How long a rate limit may wait for Redis before the agent limits on its own: a frame must
/// not wait long for its permission.
const RATE_TIMEOUT: std::time::Duration = std::time::Duration::from_millis(500);

/// A token bucket per key, refilled by Redis's own clock (agents' clocks may differ): one
/// round trip takes up to `want` tokens. Keys carry a hash tag so a bucket stays on one slot of a
/// Redis Cluster.
const TAKE: &str = r#"
local per_sec = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local want = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local b = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(b[1]) or burst
local at = tonumber(b[2]) or now
if now > at then
  tokens = math.min(burst, tokens + (now - at) * per_sec / 1000)
  at = now
end
local grant = math.min(want, math.floor(tokens))
tokens = tokens - grant
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(at))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / per_sec * 1000) + 1000)
if grant >= 1 then
  return {grant, 0}
end
return {0, math.ceil((1 - tokens) * 1000 / per_sec)}
"#;

#[derive(Clone)]
pub(crate) struct RedisRates {
    redis: RedisConn,
    script: std::sync::Arc<redis::Script>,
}

impl RedisRates {
    pub(crate) fn new(redis: RedisConn) -> Self {
        RedisRates {
            redis,
            script: std::sync::Arc::new(redis::Script::new(TAKE)),
        }
    }
}

impl RateStore for RedisRates {
    fn take<'a>(
        &'a self,
        bucket: &'a str,
        per_sec: f64,
        burst: f64,
        want: u32,
    ) -> BoxFuture<'a, PortResult<Grant>> {
        async move {
            let mut redis = self.redis.clone();
            let key = dyschat_protocol::layout::rate_key(bucket);
            let mut invocation = self.script.prepare_invoke();
            invocation.key(key).arg(per_sec).arg(burst).arg(want);
            let started = Instant::now();
            let answer = tokio::time::timeout(RATE_TIMEOUT, invocation.invoke_async(&mut redis))
                .await
                .map_err(|_| PortError::Timeout)?;
            prometheus::redis_timing("rate_limit", started);
            let (granted, wait_ms): (u32, u64) = answer.map_err(PortError::failed)?;
            Ok(Grant { granted, wait_ms })
        }
        .boxed()
    }
}
