//! The start and the shutdown of a request-reply service, shared by auth and rooms.

use std::time::Duration;

use async_nats::service::{endpoint::Endpoint, Group, Service, ServiceExt};
use tokio_util::task::TaskTracker;

use crate::connect::ConnectError;
use crate::topology::TopologyError;

/// Why a request-reply service gave up. Each variant prints as one line an operator can act on.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error(transparent)]
    Connect(#[from] ConnectError),
    #[error(transparent)]
    Topology(#[from] TopologyError),
    #[error("NATS: {0}")]
    Nats(String),
}

/// Starts the micro service `name` on `client`, discoverable through `$SRV`.
pub async fn start(
    client: &async_nats::Client,
    name: &str,
    description: &str,
) -> Result<Service, ServiceError> {
    client
        .service_builder()
        .description(description)
        .start(name, env!("CARGO_PKG_VERSION"))
        .await
        .map_err(|e| ServiceError::Nats(format!("could not start the service: {e}")))
}

/// Adds the endpoint `name` to `group`.
pub async fn endpoint(group: &Group, name: &str) -> Result<Endpoint, ServiceError> {
    group
        .endpoint(name)
        .await
        .map_err(|e| ServiceError::Nats(format!("could not add endpoint {name}: {e}")))
}

/// Waits (bounded by `drain`) for the requests in flight, withdraws the service from `$SRV`
/// discovery, flushes what is still buffered (replies, events), drains the connection and waits
/// for the metrics endpoint, if any, to stop.
pub async fn finish(
    name: &str,
    client: async_nats::Client,
    service: async_nats::service::Service,
    tracker: TaskTracker,
    drain: Duration,
    metrics_server: Option<tokio::task::JoinHandle<()>>,
) {
    tracker.close();
    if tokio::time::timeout(drain, tracker.wait()).await.is_err() {
        tracing::warn!(
            pending = tracker.len(),
            "drain timeout reached with requests still in flight"
        );
    }
    if let Err(e) = service.stop().await {
        tracing::debug!(error = %e, "service stop");
    }
    match tokio::time::timeout(drain, client.flush()).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::warn!(error = %e, "flush before exit failed"),
        Err(_) => tracing::warn!("flush before exit timed out"),
    }
    if let Err(e) = client.drain().await {
        tracing::debug!(error = %e, "drain");
    }
    if let Some(server) = metrics_server {
        let _ = server.await;
    }
    tracing::info!("{name} stopped");
}
