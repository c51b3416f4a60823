//! Logs and traces.
//!
//! * Logs: human-readable in `dev`; in `prod` one JSON object per line with `trace_id` and
//!   `span_id` of the span the line was written in, so Loki can jump from a log line to Jaeger.
//! * Traces: when `DYSCHAT_JAEGER_URL` is set, spans go through `tracing-opentelemetry` and a
//!   batch span processor to Jaeger's OTLP gRPC port, with `service.name` per service. When it is
//!   empty no OpenTelemetry layer is installed at all, so a message pays for no span export, and
//!   acks and HTTP responses carry no trace id (there would be nothing to look it up in).
//!
//! A binary calls [`init`] once with its own service and [`Telemetry::shutdown`] after its run
//! has drained, which flushes the spans still queued. The integration tests run all four
//! services in one process, where there can be only one global subscriber: [`init_in_process`]
//! installs one provider whose span processor ([`router`]) gives every span to the exporter of
//! the service it belongs to, so the collector sees four services exactly as it would from four
//! processes. See `router` for how a span's service is decided.

mod propagation;
mod router;

use std::sync::OnceLock;
use std::time::Duration;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::trace::{BatchSpanProcessor, SdkTracerProvider};
use tracing_subscriber::fmt::{format, FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::{filter, fmt, prelude::*, EnvFilter, Layer};

use crate::config::{Common, EnvMode};

pub use propagation::{
    current_trace_id, extract, headers_with_context, inject_current, link_to, set_parent,
    trace_id_of, SERVICE_FIELD,
};

/// Which service a process (or, in the test mesh, a span) belongs to: its `service.name` in logs
/// and traces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServiceName {
    Auth,
    Rooms,
    MsgWriter,
    WsAgent,
    Search,
}

impl ServiceName {
    pub const ALL: [ServiceName; 5] = [
        ServiceName::Auth,
        ServiceName::Rooms,
        ServiceName::MsgWriter,
        ServiceName::WsAgent,
        ServiceName::Search,
    ];

    /// The service called `name` (as [`as_str`](Self::as_str) spells it).
    pub fn from_name(name: &str) -> Option<ServiceName> {
        Self::ALL.into_iter().find(|s| s.as_str() == name)
    }

    /// The `service.name` used in logs and traces.
    pub fn as_str(self) -> &'static str {
        match self {
            ServiceName::Auth => "dyschat-auth",
            ServiceName::Rooms => "dyschat-rooms",
            ServiceName::MsgWriter => "dyschat-msg-writer",
            ServiceName::WsAgent => "dyschat-ws-agent",
            ServiceName::Search => "dyschat-search",
        }
    }
}

/// How long shutdown waits for the last spans to reach the collector.
pub const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);

/// The process's tracer provider, when traces are exported. Kept here so that every service
/// started in one process (tests) shares the one that was installed first.
static PROVIDER: OnceLock<Option<SdkTracerProvider>> = OnceLock::new();

/// What [`init`] installed; flush or shut it down when the service has drained.
#[derive(Clone, Debug)]
#[must_use = "call shutdown() after the service drained, or queued spans are lost"]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Whether spans are exported (`DYSCHAT_JAEGER_URL` was set when telemetry was installed).
    pub fn exporting(&self) -> bool {
        self.provider.is_some()
    }

    /// Exports every finished span now (tests call this before asserting on the collector).
    pub fn flush(&self) {
        if let Some(provider) = &self.provider {
            if let Err(e) = provider.force_flush() {
                tracing::warn!(error = %e, "span flush failed");
            }
        }
    }

    /// Flushes and stops the exporters. Call once, after the service has drained.
    pub fn shutdown(self) {
        if let Some(provider) = self.provider {
            if let Err(e) = provider.shutdown_with_timeout(SHUTDOWN_TIMEOUT) {
                eprintln!("trace export shutdown: {e}");
            }
        }
    }
}

/// Whether spans of this process are exported; the hot paths skip building spans when not.
pub fn exporting() -> bool {
    matches!(PROVIDER.get(), Some(Some(_)))
}

/// Installs logging (and trace export when configured) for a process running `service`.
/// Later calls in the same process change nothing and return the first installation.
pub fn init(service: ServiceName, common: &Common, log_level: &str) -> Telemetry {
    install(common, log_level, service, &[service])
}

/// Like [`init`] for a process that runs every service (the in-process test mesh): each span is
/// exported under the `service.name` of the service that made it.
pub fn init_in_process(common: &Common, log_level: &str) -> Telemetry {
    install(common, log_level, ServiceName::WsAgent, &ServiceName::ALL)
}

fn install(
    common: &Common,
    log_level: &str,
    service: ServiceName,
    services: &[ServiceName],
) -> Telemetry {
    let mut fresh = false;
    let provider = PROVIDER
        .get_or_init(|| {
            fresh = true;
            build_provider(&common.jaeger_url, service, services)
        })
        .clone();
    if fresh {
        install_subscriber(common, log_level, service, provider.as_ref());
    }
    Telemetry { provider }
}

fn build_provider(
    url: &str,
    default: ServiceName,
    services: &[ServiceName],
) -> Option<SdkTracerProvider> {
    let url = url.trim();
    if url.is_empty() {
        return None;
    }
    let mut processors = Vec::with_capacity(services.len());
    for &service in services {
        let exporter = match opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_endpoint(url)
            .build()
        {
            Ok(exporter) => exporter,
            Err(e) => {
                eprintln!("DYSCHAT_JAEGER_URL: cannot export traces to {url}: {e}");
                return None;
            }
        };
        processors.push((service, BatchSpanProcessor::builder(exporter).build()));
    }
    let router = router::ServiceRouter::new(default, processors);
    Some(
        SdkTracerProvider::builder()
            .with_span_processor(router)
            .with_resource(router::resource(default))
            .build(),
    )
}

/// Spans from our crates at `info` and above go to OpenTelemetry whatever the log level, so that
/// `DYSCHAT_*_LOG_LEVEL=warn` quiets the logs without breaking traces.
fn trace_filter() -> filter::Targets {
    filter::Targets::new()
        .with_target("dyschat_runtime", tracing::Level::INFO)
        .with_target("dyschat_auth", tracing::Level::INFO)
        .with_target("dyschat_rooms", tracing::Level::INFO)
        .with_target("dyschat_msg_writer", tracing::Level::INFO)
        .with_target("dyschat_ws_agent", tracing::Level::INFO)
}

fn install_subscriber(
    common: &Common,
    log_level: &str,
    service: ServiceName,
    provider: Option<&SdkTracerProvider>,
) {
    let log_filter = EnvFilter::try_new(log_level)
        .unwrap_or_else(|_| EnvFilter::new("info"))
        .add_directive("async_nats=warn".parse().expect("static directive"))
        .add_directive("h2=warn".parse().expect("static directive"))
        .add_directive("tonic=warn".parse().expect("static directive"));
    let logs = match common.env_mode {
        EnvMode::Dev => fmt::layer()
            .with_target(false)
            // Colours only on a terminal: piped logs (make run_dev, CI) stay plain text.
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
            .with_filter(log_filter)
            .boxed(),
        EnvMode::Prod => fmt::layer()
            .event_format(WithTraceIds(
                fmt::format()
                    .json()
                    .with_current_span(true)
                    .with_span_list(false),
            ))
            .fmt_fields(format::JsonFields::new())
            .with_filter(log_filter)
            .boxed(),
    };
    let traces = provider.map(|p| {
        tracing_opentelemetry::layer()
            .with_tracer(p.tracer("dyschat"))
            .with_level(false)
            .with_threads(false)
            .with_filter(trace_filter())
    });
    let result = tracing_subscriber::registry()
        .with(logs)
        .with(traces)
        .try_init();
    if result.is_ok() {
        tracing::debug!(
            service = service.as_str(),
            traces = provider.is_some(),
            "telemetry initialised"
        );
    }
}

/// The JSON event format with `trace_id` and `span_id` of the current span added first, when the
/// event happened inside a traced span.
struct WithTraceIds<F>(F);

impl<S, N, F> FormatEvent<S, N> for WithTraceIds<F>
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: format::Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        let mut line = String::new();
        self.0
            .format_event(ctx, format::Writer::new(&mut line), event)?;
        match (propagation::current_ids(), line.strip_prefix('{')) {
            (Some((trace_id, span_id)), Some(rest)) => write!(
                writer,
                "{{\"trace_id\":\"{trace_id}\",\"span_id\":\"{span_id}\",{rest}"
            ),
            _ => writer.write_str(&line),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buffer {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn prod_log_lines_are_json_with_the_trace_and_span_ids() {
        let provider = SdkTracerProvider::builder().build();
        let buffer = Buffer::default();
        let writer = buffer.clone();
        let subscriber = tracing_subscriber::registry()
            .with(
                fmt::layer()
                    .event_format(WithTraceIds(fmt::format().json().with_current_span(true)))
                    .fmt_fields(format::JsonFields::new())
                    .with_writer(move || writer.clone()),
            )
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
        let trace_id = tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("chat.send", room.id = "r1");
            let _entered = span.enter();
            tracing::info!(seq = 7, "stored");
            current_trace_id()
        })
        .expect("the span is traced");
        let text = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
        let line: serde_json::Value = serde_json::from_str(text.trim()).expect("one JSON line");
        assert_eq!(line["trace_id"], trace_id.as_str());
        assert_eq!(line["span_id"].as_str().map(str::len), Some(16));
        assert_eq!(line["fields"]["message"], "stored");
        assert_eq!(line["span"]["name"], "chat.send");
    }
}
