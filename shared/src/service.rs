//! The shutdown of a request-reply service, shared by auth and rooms.

use std::time::Duration;

use tokio_util::task::TaskTracker;

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
