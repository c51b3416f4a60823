//! The life of a service process, the same for every binary: read the configuration, install
//! telemetry, run until SIGTERM or SIGINT, flush the last spans, exit with a code that says how
//! it ended (0 drained, 1 failed, 2 bad configuration).

use std::fmt::Display;
use std::future::Future;

use tokio_util::sync::CancellationToken;

use crate::config::{Common, ConfigError, Env};
use crate::shutdown;
use crate::telemetry::{self, ServiceName};

/// What a service's configuration tells the process around it.
pub trait ServiceConfig {
    fn common(&self) -> &Common;
    /// The service's `DYSCHAT_<SERVICE>_LOG_LEVEL`.
    fn log_level(&self) -> &str;
}

/// The whole `main` of a service binary; never returns.
pub async fn main<C, F, Fut, E>(
    service: ServiceName,
    load: fn(&Env) -> Result<C, ConfigError>,
    run: F,
) -> !
where
    C: ServiceConfig,
    F: FnOnce(C, CancellationToken) -> Fut,
    Fut: Future<Output = Result<(), E>>,
    E: Display,
{
    let name = service.as_str();
    let config = match load(&Env::from_process()) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("{name}: {e}");
            std::process::exit(2);
        }
    };
    let telemetry = telemetry::init(service, config.common(), config.log_level());
    let result = run(config, shutdown::on_signals()).await;
    // After the drain, so the spans of the last requests are exported too.
    telemetry.shutdown();
    match result {
        Ok(()) => std::process::exit(0),
        Err(e) => {
            eprintln!("{name}: {e}");
            std::process::exit(1);
        }
    }
}
