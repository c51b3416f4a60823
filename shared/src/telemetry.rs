//! Logging set-up: human-readable in `dev`, JSON in `prod`.

use tracing_subscriber::{fmt, prelude::*, EnvFilter};

use crate::config::{Config, EnvMode, ServiceName};

/// Installs the global subscriber for `service`. Safe to call more than once (later calls are
/// ignored), which lets tests start several services in one process.
pub fn init(config: &Config, service: ServiceName) {
    let filter = EnvFilter::try_new(config.log_level(service))
        .unwrap_or_else(|_| EnvFilter::new("info"))
        .add_directive("async_nats=warn".parse().expect("static directive"));
    let registry = tracing_subscriber::registry().with(filter);
    let result = match config.env_mode {
        EnvMode::Dev => registry.with(fmt::layer().with_target(false)).try_init(),
        EnvMode::Prod => registry
            .with(fmt::layer().json().with_current_span(true))
            .try_init(),
    };
    if result.is_ok() {
        tracing::debug!(service = service.as_str(), "logging initialised");
    }
}
