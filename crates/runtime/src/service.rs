//! The start and the shutdown of a request-reply service, and its endpoints as one table, shared
//! by auth and rooms.

use std::time::Duration;

use async_nats::service::{endpoint::Endpoint, Group, Service, ServiceExt};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::connect::ConnectError;
use crate::rpc;
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

/// How a request-reply service is known: its name in `$SRV` (and in its logs), what `$SRV.INFO`
/// says it does, the subject group of its endpoints, and where its own `/metrics` is served
/// (empty: nowhere).
pub struct Identity<'a> {
    pub name: &'a str,
    pub description: &'a str,
    pub group: &'a str,
    pub metrics_addr: &'a str,
}

/// The life of a request-reply service once connected: starts the micro service, adds every
/// endpoint of `endpoints`, serves them (and `/metrics`) until `shutdown`, then [`finish`]es
/// within `drain`. Auth and rooms differ only in what they pass here. `tracker` holds the
/// service's background tasks (spawned by the caller before or while serving); requests join it,
/// and the drain waits for all of them.
pub async fn run(
    client: async_nats::Client,
    identity: Identity<'_>,
    endpoints: Endpoints,
    tracker: TaskTracker,
    drain: Duration,
    shutdown: &CancellationToken,
) -> Result<(), ServiceError> {
    let service = start(&client, identity.name, identity.description).await?;
    let endpoints = endpoints.bind(&service.group(identity.group)).await?;
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        "{} serving",
        identity.name
    );

    let metrics_server = crate::prometheus::spawn_for(identity.metrics_addr, shutdown);
    endpoints.serve(&tracker, shutdown).await;

    finish(
        identity.name,
        client,
        service,
        tracker,
        drain,
        metrics_server,
    )
    .await;
    Ok(())
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

/// A service's endpoints as one table (name -> handler), so adding an endpoint is one line and
/// every endpoint is served, traced, counted and drained the same way ([`rpc::serve_with`]).
#[derive(Default)]
pub struct Endpoints {
    routes: Vec<(&'static str, rpc::Handler)>,
}

impl Endpoints {
    pub fn new() -> Self {
        Endpoints::default()
    }

    /// Adds the endpoint `name` (in the service's group) answered by `handler`.
    pub fn route<Req, Resp, E>(
        mut self,
        name: &'static str,
        handler: impl rpc::TypedHandler<Req, Resp, E>,
    ) -> Self {
        self.routes.push((name, handler.erase()));
        self
    }

    /// The endpoint names, in the order they were added.
    pub fn names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.routes.iter().map(|(name, _)| *name)
    }

    /// Adds every endpoint to `group`; none is served before all were added.
    pub async fn bind(self, group: &Group) -> Result<BoundEndpoints, ServiceError> {
        let mut bound = Vec::with_capacity(self.routes.len());
        for (name, handler) in self.routes {
            bound.push((endpoint(group, name).await?, handler));
        }
        Ok(BoundEndpoints { bound })
    }
}

/// The endpoints of an [`Endpoints`] table once added to the service.
pub struct BoundEndpoints {
    bound: Vec<(Endpoint, rpc::Handler)>,
}

impl BoundEndpoints {
    /// Serves every endpoint until `shutdown`, each request on its own task of `tracker` (which
    /// [`finish`] then drains).
    pub async fn serve(self, tracker: &TaskTracker, shutdown: &CancellationToken) {
        futures::future::join_all(self.bound.into_iter().map(|(endpoint, handler)| {
            rpc::serve_with(endpoint, tracker.clone(), shutdown.clone(), handler)
        }))
        .await;
    }
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
