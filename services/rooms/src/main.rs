//! `dyschat-rooms`: configuration from the environment, then [`dyschat_rooms::run`] until SIGTERM.

use dyschat_shared::{config::ServiceName, shutdown, telemetry, Config};

#[tokio::main]
async fn main() {
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("dyschat-rooms: {e}");
            std::process::exit(2);
        }
    };
    let telemetry = telemetry::init(&config, ServiceName::Rooms);
    let result = dyschat_rooms::run(config, shutdown::on_signals()).await;
    // After the drain, so the spans of the last requests are exported too.
    telemetry.shutdown();
    if let Err(e) = result {
        eprintln!("dyschat-rooms: {e}");
        std::process::exit(1);
    }
}
