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
    telemetry::init(&config, ServiceName::Rooms);
    if let Err(e) = dyschat_rooms::run(config, shutdown::on_signals()).await {
        eprintln!("dyschat-rooms: {e}");
        std::process::exit(1);
    }
}
