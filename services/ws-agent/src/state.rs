//! What the HTTP edge's handlers share: the domain core, the request path to auth and rooms for
//! the routes that only pass a request on (register, login, room create, get and list), and
//! what the operational routes read.

use std::sync::Arc;
use std::time::Duration;

use dyschat_protocol::subjects;
use dyschat_runtime::redis_conn::RedisConn;
use metrics_exporter_prometheus::PrometheusHandle;

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
    pub redis: RedisConn,
}

/// What `/readyz` found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Readiness {
    pub nats: bool,
    pub redis: bool,
    /// The auth and rooms services answer `$SRV.PING`: requests that need them will be served.
    pub services: bool,
}

impl Readiness {
    pub(crate) fn ready(&self) -> bool {
        self.nats && self.redis && self.services
    }
}

impl AgentState {
    /// Whether NATS, Redis and the services behind the agent answer, for `/readyz`: ready means
    /// the mesh can serve, not just that this process is connected.
    pub(crate) async fn readiness(&self) -> Readiness {
        let nats = self.nats.connection_state() == async_nats::connection::State::Connected;
        let mut redis = self.redis.clone();
        let ping = redis::cmd("PING");
        let redis_ping =
            tokio::time::timeout(READY_TIMEOUT, ping.query_async::<String>(&mut redis));
        let services = async {
            for service in [subjects::auth::SERVICE, subjects::rooms::SERVICE] {
                let ping = self
                    .nats
                    .request(subjects::service_ping(service), Default::default());
                if !tokio::time::timeout(READY_TIMEOUT, ping)
                    .await
                    .is_ok_and(|r| r.is_ok())
                {
                    return false;
                }
            }
            true
        };
        let (redis, services) = tokio::join!(redis_ping, services);
        Readiness {
            nats,
            redis: redis.is_ok_and(|r| r.is_ok()),
            services: nats && services,
        }
    }
}
