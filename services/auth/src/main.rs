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
    telemetry::init(&config, ServiceName::Auth);
    if let Err(e) = dyschat_auth::run(config, shutdown::on_signals()).await {
        eprintln!("dyschat-auth: {e}");
        std::process::exit(1);
    }
}
