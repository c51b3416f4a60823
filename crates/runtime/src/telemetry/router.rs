//! A span processor that hands each span to the batch processor of the service it belongs to.
//!
//! OpenTelemetry puts `service.name` on the *resource*, one per tracer provider, and a process has
//! one global tracing subscriber. A binary runs one service, so it has a single processor and
//! this is a pass-through. The test mesh runs all four services in one process; there, a span
//! belongs to:
//!
//! * the service named by its [`SERVICE_FIELD`] attribute, which every span that starts a
//!   service's part of a trace carries (the server side of a request, `chat.store`,
//!   `chat.deliver`, ...): such spans have a remote parent or none;
//! * otherwise the service of its local parent, remembered from the parent's start (a parent
//!   always starts before its children and ends after them);
//! * otherwise the default service given at construction.
//!
//! Each service's batch processor has its own exporter whose resource says `service.name`, so the
//! collector receives exactly what four processes would send.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use opentelemetry::trace::{SpanId, TraceContextExt};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{BatchSpanProcessor, Span, SpanData, SpanProcessor};
use opentelemetry_sdk::Resource;

use super::propagation::SERVICE_FIELD;
use super::ServiceName;

/// The resource of a service's spans.
pub fn resource(service: ServiceName) -> Resource {
    Resource::builder_empty()
        .with_service_name(service.as_str())
        .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
        .build()
}

#[derive(Debug)]
pub struct ServiceRouter {
    default: ServiceName,
    processors: Vec<(ServiceName, BatchSpanProcessor)>,
    /// Service of each started, not yet ended span (only kept with more than one processor).
    live: Mutex<HashMap<SpanId, ServiceName>>,
}

impl ServiceRouter {
    /// `processors` get the resource of their service here.
    pub fn new(default: ServiceName, processors: Vec<(ServiceName, BatchSpanProcessor)>) -> Self {
        let processors = processors
            .into_iter()
            .map(|(service, mut p)| {
                p.set_resource(&resource(service));
                (service, p)
            })
            .collect();
        ServiceRouter {
            default,
            processors,
            live: Mutex::new(HashMap::new()),
        }
    }

    fn routing(&self) -> bool {
        self.processors.len() > 1
    }

    fn live(&self) -> std::sync::MutexGuard<'_, HashMap<SpanId, ServiceName>> {
        self.live.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn processor(&self, service: ServiceName) -> Option<&BatchSpanProcessor> {
        self.processors
            .iter()
            .find(|(s, _)| *s == service)
            .or_else(|| self.processors.first())
            .map(|(_, p)| p)
    }

    fn declared_service(span: &Span) -> Option<ServiceName> {
        let data = span.exported_data()?;
        data.attributes
            .iter()
            .find(|kv| kv.key.as_str() == SERVICE_FIELD)
            .and_then(|kv| ServiceName::from_name(kv.value.as_str().as_ref()))
    }
}

impl SpanProcessor for ServiceRouter {
    fn on_start(&self, span: &mut Span, cx: &Context) {
        if !self.routing() {
            return;
        }
        let parent = cx.span().span_context().clone();
        let inherited = (parent.is_valid() && !parent.is_remote())
            .then(|| self.live().get(&parent.span_id()).copied())
            .flatten();
        // Only spans that begin a service's part of a trace are inspected (a clone of their data).
        let service = inherited
            .or_else(|| Self::declared_service(span))
            .unwrap_or(self.default);
        let id = opentelemetry::trace::Span::span_context(span).span_id();
        self.live().insert(id, service);
    }

    fn on_end(&self, span: SpanData) {
        let service = if self.routing() {
            self.live()
                .remove(&span.span_context.span_id())
                .unwrap_or(self.default)
        } else {
            self.default
        };
        if let Some(p) = self.processor(service) {
            p.on_end(span);
        }
    }

    fn force_flush(&self) -> OTelSdkResult {
        let mut result = Ok(());
        for (_, p) in &self.processors {
            if let Err(e) = p.force_flush() {
                result = Err(e);
            }
        }
        result
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        let mut result = Ok(());
        for (_, p) in &self.processors {
            if let Err(e) = p.shutdown_with_timeout(timeout) {
                result = Err(e);
            }
        }
        result
    }

    /// The provider's resource is ignored: each processor keeps its service's own.
    fn set_resource(&mut self, _resource: &Resource) {}
}
