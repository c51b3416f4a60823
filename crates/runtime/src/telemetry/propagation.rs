//! W3C trace context (`traceparent`, `tracestate`) in NATS headers.
//!
//! Every publish and request carries the context of the span it was made in; every consumer and
//! responder makes its span a child of the context it finds (or links to it). JetStream stores a
//! message's headers with it, so the context survives into the stream's RePublish (live delivery
//! at each ws-agent) and into the msg-writer consumer: one chat message is one trace.
//!
//! Without an OpenTelemetry layer (no `DYSCHAT_JAEGER_URL`) spans have no context, nothing is
//! injected and extraction finds nothing: these functions then cost a lookup and nothing else.

use async_nats::HeaderMap;
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::{TraceContextExt, TraceId};
use opentelemetry::Context;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The span attribute naming the service a span belongs to (`dyschat-ws-agent`, ...), set on the
/// spans that begin a service's part of a trace; see `router`.
pub const SERVICE_FIELD: &str = "dyschat.service";

struct Inject<'a>(&'a mut HeaderMap);

impl Injector for Inject<'_> {
    fn set(&mut self, key: &str, value: String) {
        self.0.insert(key, value.as_str());
    }
}

struct Extract<'a>(&'a HeaderMap);

impl Extractor for Extract<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(|v| v.as_str())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.iter().map(|(k, _)| k.as_ref()).collect()
    }
}

/// Adds the context of the current span to `headers` (nothing when it has none).
pub fn inject_current(headers: &mut HeaderMap) {
    let cx = tracing::Span::current().context();
    if cx.span().span_context().is_valid() {
        TraceContextPropagator::new().inject_context(&cx, &mut Inject(headers));
    }
}

/// Headers holding only the current span's context, or `None` when it has none (so a publish
/// without tracing stays a publish without headers).
pub fn headers_with_context() -> Option<HeaderMap> {
    let mut headers = HeaderMap::new();
    inject_current(&mut headers);
    (headers.iter().next().is_some()).then_some(headers)
}

/// The context carried by `headers`, if any.
pub fn extract(headers: Option<&HeaderMap>) -> Option<Context> {
    let cx = TraceContextPropagator::new().extract(&Extract(headers?));
    cx.span().span_context().is_valid().then_some(cx)
}

/// Makes `span` a child of the context in `headers`, if they carry one.
pub fn set_parent(span: &tracing::Span, headers: Option<&HeaderMap>) {
    if let Some(cx) = extract(headers) {
        let _ = span.set_parent(cx);
    }
}

/// Links `span` to the context in `headers`, if they carry one (for work caused by, but not part
/// of, the sender's operation).
pub fn link_to(span: &tracing::Span, headers: Option<&HeaderMap>) {
    if let Some(cx) = extract(headers) {
        span.add_link(cx.span().span_context().clone());
    }
}

/// The trace id of `span` as 32 hex digits, when it is traced.
pub fn trace_id_of(span: &tracing::Span) -> Option<String> {
    let id = span.context().span().span_context().trace_id();
    (id != TraceId::INVALID).then(|| id.to_string())
}

/// The trace id of the current span, when it is traced.
pub fn current_trace_id() -> Option<String> {
    trace_id_of(&tracing::Span::current())
}

/// Trace and span id of the active OpenTelemetry context (for log lines).
pub(super) fn current_ids() -> Option<(String, String)> {
    let cx = Context::current();
    let span = cx.span();
    let sc = span.span_context();
    sc.is_valid()
        .then(|| (sc.trace_id().to_string(), sc.span_id().to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_through_nats_headers() {
        let mut headers = HeaderMap::new();
        let parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        headers.insert("traceparent", parent);
        let cx = extract(Some(&headers)).expect("a valid traceparent is extracted");
        assert_eq!(
            cx.span().span_context().trace_id().to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert!(cx.span().span_context().is_remote());
        let mut out = HeaderMap::new();
        TraceContextPropagator::new().inject_context(&cx, &mut Inject(&mut out));
        assert_eq!(out.get("traceparent").map(|v| v.as_str()), Some(parent));
    }

    #[test]
    fn nothing_without_context() {
        assert!(extract(None).is_none());
        let mut headers = HeaderMap::new();
        headers.insert("traceparent", "garbage");
        assert!(extract(Some(&headers)).is_none());
        assert!(headers_with_context().is_none());
        assert!(current_trace_id().is_none());
    }
}
