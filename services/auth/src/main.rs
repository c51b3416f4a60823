//! `dyschat-auth`: configuration from the environment, then [`dyschat_auth::run`] until SIGTERM.

use dyschat_shared::{config::ServiceName, shutdown, telemetry, Config};

#[tokio::main]
async fn main() {
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("dyschat-auth: {e}");
            std::process::exit(2);
        }
    };
    let telemetry = telemetry::init(&config, ServiceName::Auth);
    let result = dyschat_auth::run(config, shutdown::on_signals()).await;
    // After the drain, so the spans of the last requests are exported too.
    telemetry.shutdown();
    if let Err(e) = result {
        eprintln!("dyschat-auth: {e}");
        std::process::exit(1);
    }
}
