//! `dyschat-ws-agent`: the public HTTP and WebSocket edge.

use dyschat_shared::config::ServiceName;

#[tokio::main]
async fn main() {
    let config = dyschat_shared::Config::from_env().unwrap_or_else(|e| {
        eprintln!("dyschat-ws-agent: {e}");
        std::process::exit(2)
    });
    let telemetry = dyschat_shared::telemetry::init(&config, ServiceName::WsAgent);
    let shutdown = dyschat_shared::shutdown::on_signals();
    let result = dyschat_ws_agent::run(config, shutdown).await;
    // After the drain, so the spans of the last sends are exported too.
    telemetry.shutdown();
    if let Err(e) = result {
        eprintln!("dyschat-ws-agent: {e}");
        std::process::exit(1);
    }
}
