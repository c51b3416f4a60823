//! The HTTP API's span and counters.
//!
//! Every `/api/` request runs in a server span named after its route (`POST
//! /api/v1/auth/login`), so the requests it makes to auth and rooms are children of it, and its
//! response carries the trace id in `x-trace-id` for the user to paste into Jaeger. Each request
//! counts in `dyschat_http_requests_total{route, status}` and `dyschat_http_request_seconds{route}`.
//! Probes, `/metrics` and static assets are neither traced nor counted: scrapes every few seconds
//! would bury the traces that matter.

use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use dyschat_runtime::telemetry;
use tracing::Instrument;

/// The response header holding the request's trace id (32 hex digits).
pub const TRACE_ID_HEADER: &str = "x-trace-id";

pub async fn traced(request: Request, next: Next) -> Response {
    if !request.uri().path().starts_with("/api/") {
        return next.run(request).await;
    }
    // The matched route template, never the raw path: ids must not become label values.
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |m| m.as_str())
        .to_string();
    let method = request.method().as_str().to_string();
    let span = tracing::info_span!(
        "http.request",
        otel.name = format!("{method} {route}"),
        otel.kind = "server",
        http.request.method = %method,
        http.route = %route,
        http.response.status_code = tracing::field::Empty,
        dyschat.service = "dyschat-ws-agent",
    );
    let started = Instant::now();
    let mut response = next.run(request).instrument(span.clone()).await;
    let status = response.status().as_u16();
    span.record("http.response.status_code", status);
    metrics::counter!(
        dyschat_runtime::metric::HTTP_REQUESTS_TOTAL,
        "route" => route.clone(),
        "method" => method,
        "status" => status.to_string()
    )
    .increment(1);
    metrics::histogram!(dyschat_runtime::metric::HTTP_REQUEST_SECONDS, "route" => route)
        .record(started.elapsed().as_secs_f64());
    if let Some(id) = telemetry::trace_id_of(&span) {
        if let Ok(value) = HeaderValue::from_str(&id) {
            response.headers_mut().insert(TRACE_ID_HEADER, value);
        }
    }
    response
}
