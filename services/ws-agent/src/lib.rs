//! ws-agent: the public edge of DYSCHAT.
//!
//! It serves the HTTP API (answered through NATS requests to auth and rooms), the WebSocket chat
//! protocol and `/metrics`. Sends are published to JetStream and acknowledged once stored; live
//! messages arrive through per-room subscriptions ([`hub`]) and history comes from Redis
//! ([`chat`]). Any number of agents can run side by side: they share nothing but NATS and Redis.

pub mod chat;
pub mod config;
mod events;
pub mod http;
pub mod hub;
pub mod limits;
pub mod membership;
mod presence;
pub mod session;
pub mod socket;
pub mod state;

use std::net::SocketAddr;
use std::sync::Arc;

use async_nats::jetstream;
use dyschat_protocol::ids;
use dyschat_runtime::{connect, metric, topology};

pub use config::Config;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use http::app;
pub use state::AgentState;

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
pub fn metrics_handle() -> PrometheusHandle {
    let handle = dyschat_runtime::prometheus::handle();
    // Rare events are exported at 0 from the start, so dashboards and `increase()` see the first.
    metric::export_at_zero(&[
        metric::WS_SLOW_CONSUMER_CLOSED_TOTAL,
        metric::WS_GAP_FILLS_TOTAL,
        metric::REQUESTS_SHED_TOTAL,
        metric::ORIGIN_REFUSED_TOTAL,
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
    let nats = connect::nats(&config.common, &config.nats, "dyschat-ws-agent").await?;
    let redis = connect::redis(&config.common, &config.redis).await?;
    let js = jetstream::new(nats.clone());
    let stream = topology::ensure_messages_stream(&js, &config.topology).await?;
    let presence_kv =
        topology::ensure_bucket(&js, topology::presence_bucket(&config.topology)).await?;

    let tracker = TaskTracker::new();
    let agent_shutdown = shutdown.child_token();
    let chat = chat::Chat::new(js, stream, redis);
    let hub = Arc::new(hub::Hub::new(
        nats.clone(),
        chat.clone(),
        tracker.clone(),
        agent_shutdown.clone(),
        config.agent.socket_queue,
        config.agent.recovery_limit,
    ));
    let agent_id = ids::new_id();
    let drain = config.common.drain_timeout();
    let limits = limits::Limits::new(&config.agent);
    let state = Arc::new(AgentState {
        presence: presence::Presence::new(presence_kv, nats.clone(), agent_id.clone()),
        config,
        nats: nats.clone(),
        chat,
        hub,
        membership: membership::MembershipCache::default(),
        limits,
        metrics: metrics_handle(),
        shutdown: agent_shutdown.clone(),
        tracker: tracker.clone(),
    });

    let events_state = state.clone();
    let events = tokio::spawn(async move { events::run(events_state).await });
    let presence_state = state.clone();
    let presence_token = agent_shutdown.clone();
    let presence =
        tokio::spawn(async move { presence_state.presence.refresh_until(presence_token).await });

    let addr: Option<SocketAddr> = listener.local_addr().ok();
    tracing::info!(?addr, agent = %agent_id, "ws-agent listening");
    // Connection info carries the peer address that login throttling keys on.
    // TCP_NODELAY: a frame is one small write, and with Nagle a frame written while the
    // previous one is unacknowledged waits for the peer's delayed ACK (up to 40 ms), which
    // dyschat-bench saw as a 20 ms median ack latency at light load.
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "TCP_NODELAY not set");
        }
    });
    let server = axum::serve(
        listener,
        app(state.clone()).into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(agent_shutdown.clone().cancelled_owned());
    let served = server.await;
    agent_shutdown.cancel();

    tracker.close();
    if tokio::time::timeout(drain, tracker.wait()).await.is_err() {
        tracing::warn!("drain timeout reached with work in flight");
    }
    let _ = tokio::time::timeout(drain, presence).await;
    match events.await {
        Ok(Err(e)) => return Err(Error::Subscribe(e.to_string())),
        Err(e) => tracing::warn!(error = %e, "event task failed"),
        Ok(Ok(())) => {}
    }
    if let Err(e) = nats.flush().await {
        tracing::warn!(error = %e, "NATS flush on shutdown failed");
    }
    tracing::info!("ws-agent stopped");
    served.map_err(Error::Serve)
}
