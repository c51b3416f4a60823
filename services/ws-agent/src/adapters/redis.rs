//! [`HistoryStore`] over Redis: one range query per page, timed in `dyschat_redis_seconds`.

use std::time::Instant;

use dyschat_protocol::wire::MessagePage;
use dyschat_runtime::history::{self, PageQuery};
use dyschat_runtime::prometheus;
use futures::future::BoxFuture;
use futures::FutureExt;
use redis::aio::ConnectionManager;

use crate::ports::{HistoryStore, PortError, PortResult};

#[derive(Clone)]
pub(crate) struct RedisHistory {
    redis: ConnectionManager,
}

impl RedisHistory {
    pub(crate) fn new(redis: ConnectionManager) -> Self {
        RedisHistory { redis }
    }
}

impl HistoryStore for RedisHistory {
    fn page<'a>(
        &'a self,
        room_id: &'a str,
        query: PageQuery,
        limit: usize,
    ) -> BoxFuture<'a, PortResult<MessagePage>> {
        async move {
            let mut redis = self.redis.clone();
            let started = Instant::now();
            let result = history::page(&mut redis, room_id, query, limit).await;
            prometheus::redis_timing("history", started);
            result.map_err(PortError::failed)
        }
        .boxed()
    }
}
