//! ws-agent: the public edge of DYSCHAT.
//!
//! It serves the HTTP API, the WebSocket chat protocol and `/metrics`. The layers, inside out:
//! - [`core`]: what a user can do (send, join, membership, history, presence, mesh events),
//!   whichever edge they came through;
//! - [`hub`]: per-room fan-out of live messages to the local sockets, with gap filling;
//! - [`ports`]: the traits through which those two reach JetStream, Redis, the rooms service,
//!   core NATS and the presence bucket; [`adapters`] implements them over the real clients;
//! - the edges, [`http`] and [`session`] (one WebSocket), which only translate.
//!
//! Any number of agents can run side by side: they share nothing but NATS and Redis. The public
//! API is what the binary and the tests need: [`Config`], [`run`], [`serve`] and the CORS policy
//! ([`http::origin::cors`]).

mod adapters;
pub mod config;
mod core;
pub mod http;
mod hub;
mod limits;
mod ports;
mod session;
mod socket;
mod state;
#[cfg(test)]
mod testing;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream;
use dyschat_protocol::{ids, subjects};
use dyschat_runtime::{connect, metric, topology};

pub use config::Config;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::adapters::{
    changes::JetStreamChanges,
    feed::JetStreamFeed,
    files::NatsFiles,
    jetstream::JetStreamMessages,
    nats::NatsBus,
    presence::KvPresence,
    read::{KvReadMarkers, NatsUserEvents},
    redis::{RedisHistory, RedisRates},
    revoked::KvRevocations,
    services::Services,
};
use crate::core::Core;
use crate::ports::Ports;
use crate::state::AgentState;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Connect(#[from] connect::ConnectError),
    #[error(transparent)]
    Topology(#[from] topology::TopologyError),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: String,
        source: std::io::Error,
    },
    #[error("NATS subscription failed: {0}")]
    Subscribe(String),
    #[error("HTTP server failed: {0}")]
    Serve(std::io::Error),
}

/// The process-wide Prometheus recorder (installed once, shared by every service started in one
/// test process); see [`dyschat_runtime::prometheus`].
fn metrics_handle() -> PrometheusHandle {
    let handle = dyschat_runtime::prometheus::handle();
    // Rare events are exported at 0 from the start, so dashboards and `increase()` see the first.
    metric::export_at_zero(&[
        metric::WS_SLOW_CONSUMER_CLOSED_TOTAL,
        metric::WS_GAP_FILLS_TOTAL,
        metric::REQUESTS_SHED_TOTAL,
        metric::ORIGIN_REFUSED_TOTAL,
        metric::WS_WRITE_TIMEOUTS_TOTAL,
        metric::CONNECTIONS_REFUSED_TOTAL,
    ]);
    handle
}

/// Binds `DYSCHAT_WS_AGENT_PORT` and serves until `shutdown`.
pub async fn run(config: Config, shutdown: CancellationToken) -> Result<(), Error> {
    let listener = TcpListener::bind(&config.agent.ws_agent_port)
        .await
        .map_err(|source| Error::Listen {
            addr: config.agent.ws_agent_port.clone(),
            source,
        })?;
    serve(config, listener, shutdown).await
}

/// Serves on an already bound listener (tests bind port 0 and read the address first).
pub async fn serve(
    config: Config,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> Result<(), Error> {
    let (nats, reconnects) =
        connect::nats_with_reconnects(&config.common, &config.nats, "dyschat-ws-agent").await?;
    let redis = connect::redis(&config.common, &config.redis).await?;
    let js = jetstream::new(nats.clone());
    let streams = topology::ensure_message_streams(&js, &config.topology).await?;
    let presence_kv =
        topology::ensure_bucket(&js, topology::presence_bucket(&config.topology)).await?;
    let agents_kv = topology::ensure_bucket(&js, topology::agents_bucket(&config.topology)).await?;
    let revoked = Arc::new(KvRevocations::new(
        topology::ensure_bucket(&js, topology::revoked_bucket(&config.topology)).await?,
    ));
    let read_kv = topology::ensure_bucket(&js, topology::read_bucket(&config.topology)).await?;
    let feed_read_kv =
        topology::ensure_bucket(&js, topology::feed_read_bucket(&config.topology)).await?;
    topology::ensure_feed_stream(&js, &config.topology).await?;
    let files_store = topology::ensure_files_store(&js, &config.topology).await?;
    let file_records =
        topology::ensure_bucket(&js, topology::file_records_bucket(&config.topology)).await?;
    let file_sweep =
        topology::ensure_bucket(&js, topology::file_sweep_bucket(&config.topology)).await?;
    // The revoked tokens' watch starts over after every reconnection (see adapters/revoked.rs).
    let revoked_reconnects = reconnects.clone();
    // A restarted nats-server has lost the memory buckets (presence, agents): ensure everything
    // again after every reconnection.
    let keeper = {
        let (js, topology) = (js.clone(), config.topology.clone());
        topology::keep(reconnects, shutdown.clone(), move || {
            let (js, topology) = (js.clone(), topology.clone());
            async move {
                topology::ensure_message_streams(&js, &topology).await?;
                topology::ensure_bucket(&js, topology::presence_bucket(&topology)).await?;
                topology::ensure_bucket(&js, topology::agents_bucket(&topology)).await?;
                topology::ensure_bucket(&js, topology::revoked_bucket(&topology)).await?;
                topology::ensure_bucket(&js, topology::read_bucket(&topology)).await?;
                topology::ensure_bucket(&js, topology::feed_read_bucket(&topology)).await?;
                topology::ensure_feed_stream(&js, &topology).await?;
                topology::ensure_files_store(&js, &topology).await?;
                topology::ensure_bucket(&js, topology::file_records_bucket(&topology)).await?;
                topology::ensure_bucket(&js, topology::file_sweep_bucket(&topology)).await?;
                Ok(())
            }
        })
    };

    let tracker = TaskTracker::new();
    let agent_shutdown = shutdown.child_token();
    let agent_id = ids::new_id();
    let services = Arc::new(Services::new(
        nats.clone(),
        config.agent.max_inflight_requests,
        config.agent.request_timeout(),
    ));
    let bus = NatsBus::new(nats.clone());
    let ports = Ports {
        changes: Arc::new(JetStreamChanges::new(js.clone(), streams.clone())),
        stream: Arc::new(JetStreamMessages::new(js, streams.clone(), nats.clone())),
        history: Arc::new(RedisHistory::new(redis.clone(), streams.layout())),
        rates: Arc::new(RedisRates::new(redis.clone())),
        rooms: services.clone(),
        bus: Arc::new(bus.clone()),
        presence: Arc::new(KvPresence::new(presence_kv, nats.clone(), agent_id.clone())),
        revoked: revoked.clone(),
        read_markers: Arc::new(KvReadMarkers::new(read_kv, nats.clone())),
        user_events: Arc::new(NatsUserEvents::new(nats.clone())),
        feed: Arc::new(JetStreamFeed::new(nats.clone(), feed_read_kv)),
        files: Arc::new(NatsFiles::new(
            files_store,
            file_records,
            file_sweep,
            nats.clone(),
        )),
        search: services.clone(),
    };
    let core = Core::new(
        &config.agent,
        Duration::from_secs(config.topology.dedupe_window_secs),
        ports,
        tracker.clone(),
        agent_shutdown.clone(),
    );
    let drain = config.common.drain_timeout();
    let state = Arc::new(AgentState {
        config,
        core: core.clone(),
        services,
        metrics: metrics_handle(),
        nats: nats.clone(),
        redis,
    });

    let mut events = Vec::new();
    for wildcards in [
        &[
            subjects::MEMBERSHIP_WILDCARD,
            subjects::ROOM_EVENTS_WILDCARD,
        ][..],
        &[
            subjects::TYPING_WILDCARD,
            subjects::PRESENCE_WILDCARD,
            subjects::RECEIPT_WILDCARD,
        ][..],
    ] {
        let stream = bus
            .events(wildcards)
            .await
            .map_err(|e| Error::Subscribe(e.to_string()))?;
        let events_core = core.clone();
        events.push(tokio::spawn(async move {
            core::events::run(&events_core, stream).await
        }));
    }
    // Subscribed before the agent registers, so an agent rooms counts always answers.
    let evictions = adapters::evictions::Evictions::subscribe(nats.clone(), agent_id.clone())
        .await
        .map_err(|e| Error::Subscribe(e.to_string()))?;
    let evictions = {
        let (core, token) = (core.clone(), agent_shutdown.clone());
        tokio::spawn(async move {
            evictions
                .run(token, |eviction| {
                    let evicted = core.evict(eviction);
                    tracing::debug!(room = %eviction.room_id, evicted, "eviction applied");
                })
                .await
        })
    };
    let registry = adapters::agents::AgentRegistry::new(agents_kv, nats.clone(), agent_id.clone());
    let agents_count = core.limits.agents.clone();
    let registry_token = agent_shutdown.clone();
    let registry = tokio::spawn(async move { registry.run(agents_count, registry_token).await });
    // Logouts: every revocation in the bucket (the ones made before this agent started too),
    // then each new one as it is made; afresh after every reconnection.
    let revocations = core.revocations.clone();
    let revoked_token = agent_shutdown.clone();
    let revoked = tokio::spawn(async move {
        revoked
            .follow(&revocations, revoked_reconnects, revoked_token)
            .await
    });
    let presence_core = core.clone();
    let presence_token = agent_shutdown.clone();
    let presence =
        tokio::spawn(async move { presence_core.presence.refresh_until(presence_token).await });

    let addr: Option<SocketAddr> = listener.local_addr().ok();
    tracing::info!(?addr, agent = %agent_id, "ws-agent listening");
    let limits = http::server::ServerLimits {
        max_connections: state.config.agent.max_connections,
        max_connections_per_addr: state.config.agent.max_connections_per_addr,
        head_timeout: Duration::from_secs(state.config.agent.http_head_timeout_secs),
    };
    let served = http::server::serve(
        listener,
        http::app(state.clone()),
        limits,
        agent_shutdown.clone(),
        drain,
    )
    .await;
    agent_shutdown.cancel();

    tracker.close();
    if tokio::time::timeout(drain, tracker.wait()).await.is_err() {
        tracing::warn!("drain timeout reached with work in flight");
    }
    let _ = tokio::time::timeout(drain, presence).await;
    let _ = tokio::time::timeout(drain, registry).await;
    let _ = tokio::time::timeout(drain, revoked).await;
    let _ = tokio::time::timeout(drain, evictions).await;
    keeper.abort();
    for task in events {
        if let Err(e) = task.await {
            tracing::warn!(error = %e, "event task failed");
        }
    }
    if let Err(e) = nats.flush().await {
        tracing::warn!(error = %e, "NATS flush on shutdown failed");
    }
    tracing::info!("ws-agent stopped");
    served.map_err(Error::Serve)
}
