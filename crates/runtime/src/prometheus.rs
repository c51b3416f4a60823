//! Prometheus metrics: the process-wide recorder and a tiny `/metrics` server for the services
//! that have no HTTP port of their own (auth, rooms, msg-writer; ws-agent serves it on its port).
//!
//! Every series starts with `dyschat_`; labels are low-cardinality (frame types, endpoints, error
//! codes), never room or user ids. Durations are histograms in seconds with fixed buckets, so
//! Prometheus can aggregate them across instances (`histogram_quantile`).

use std::sync::OnceLock;
use std::time::Duration;

use axum::http::header;
use axum::routing::get;
use axum::Router;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tokio_util::sync::CancellationToken;

/// Buckets of every `*_seconds` histogram: 0.5 ms to 10 s.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// Buckets of [`crate::metric::HOP_SECONDS`]: 20 µs to 1 s, fine below a millisecond, where a
/// healthy hop lives.
pub const HOP_BUCKETS: &[f64] = &[
    0.00002, 0.00005, 0.0001, 0.0002, 0.0003, 0.0005, 0.00075, 0.001, 0.0015, 0.002, 0.003, 0.005,
    0.0075, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0,
];
/// Buckets of [`crate::metric::WS_FRAMES_PER_WRITE`].
pub const FRAMES_PER_WRITE_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0];
/// Buckets of the writer's batch size.
pub const BATCH_BUCKETS: &[f64] = &[1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 512.0];
/// How often histogram buffers are folded into the buckets.
const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

/// The process-wide recorder, installed on first use (several services in one test process
/// share it).
pub fn handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS)
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        Matcher::Full(crate::metric::WRITER_BATCH_SIZE.into()),
                        BATCH_BUCKETS,
                    )
                })
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        Matcher::Full(crate::metric::HOP_SECONDS.into()),
                        HOP_BUCKETS,
                    )
                })
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        Matcher::Full(crate::metric::WS_FRAMES_PER_WRITE.into()),
                        FRAMES_PER_WRITE_BUCKETS,
                    )
                })
                .unwrap_or_else(|_| PrometheusBuilder::new())
                .build_recorder();
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!("a metrics recorder was already installed");
            }
            let upkeep = handle.clone();
            let spawned = std::thread::Builder::new()
                .name("metrics-upkeep".into())
                .spawn(move || loop {
                    std::thread::sleep(UPKEEP_INTERVAL);
                    upkeep.run_upkeep();
                });
            if let Err(e) = spawned {
                tracing::warn!(error = %e, "no metrics upkeep thread");
            }
            handle
        })
        .clone()
}

/// The text exposition of every series of this process.
pub fn render() -> String {
    handle().render()
}

/// `GET /metrics` (and nothing else) on `addr` until `shutdown`. A port that cannot be bound is
/// logged and the service runs on without the endpoint: metrics are worth less than chat.
pub async fn serve(addr: String, shutdown: CancellationToken) {
    handle();
    let listener = match tokio::net::TcpListener::bind(&addr).await {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(%addr, error = %e, "cannot serve /metrics");
            return;
        }
    };
    match listener.local_addr() {
        Ok(bound) => tracing::info!(addr = %bound, "serving /metrics"),
        Err(_) => tracing::info!(%addr, "serving /metrics"),
    }
    let app = Router::new().route(
        "/metrics",
        get(|| async {
            (
                [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
                render(),
            )
        }),
    );
    if let Err(e) = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
    {
        tracing::warn!(error = %e, "/metrics server failed");
    }
}

/// Starts [`serve`] on `addr` unless it is empty (the endpoint is off); stops with `shutdown`.
pub fn spawn_for(addr: &str, shutdown: &CancellationToken) -> Option<tokio::task::JoinHandle<()>> {
    let addr = addr.trim();
    if addr.is_empty() {
        return None;
    }
    Some(tokio::spawn(serve(addr.to_string(), shutdown.clone())))
}

/// Records `elapsed` seconds of a Redis call in `dyschat_redis_seconds{op}`.
pub fn redis_timing(op: &'static str, started: std::time::Instant) {
    metrics::histogram!(crate::metric::REDIS_SECONDS, "op" => op)
        .record(started.elapsed().as_secs_f64());
}
