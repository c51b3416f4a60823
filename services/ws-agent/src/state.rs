//! What the HTTP edge's handlers share: the domain core, the request path to auth and rooms for
//! the routes that only pass a request on (register, login, room create, get and list), and
//! what the operational routes read.

use std::sync::Arc;
use std::time::Duration;

use metrics_exporter_prometheus::PrometheusHandle;
use redis::aio::ConnectionManager;

use crate::adapters::services::Services;
use crate::config::Config;
use crate::core::Core;

/// How long the readiness probe waits for Redis.
const READY_TIMEOUT: Duration = Duration::from_secs(2);

pub(crate) struct AgentState {
    pub config: Config,
    pub core: Arc<Core>,
    pub services: Arc<Services>,
    pub metrics: PrometheusHandle,
    pub nats: async_nats::Client,
    pub redis: ConnectionManager,
}

impl AgentState {
    /// Whether NATS and Redis answer, for `/readyz`.
    pub(crate) async fn readiness(&self) -> (bool, bool) {
        let nats_ok = self.nats.connection_state() == async_nats::connection::State::Connected;
        let mut redis = self.redis.clone();
        let redis_ok = tokio::time::timeout(
            READY_TIMEOUT,
            redis::cmd("PING").query_async::<String>(&mut redis),
        )
        .await
        .is_ok_and(|r| r.is_ok());
        (nats_ok, redis_ok)
    }
}
