//! `dyschat-msg-writer`: persists room messages from JetStream into Redis.

use dyschat_shared::config::ServiceName;

#[tokio::main]
async fn main() {
    let config = dyschat_shared::Config::from_env().unwrap_or_else(|e| {
        eprintln!("dyschat-msg-writer: {e}");
        std::process::exit(2)
    });
    let telemetry = dyschat_shared::telemetry::init(&config, ServiceName::MsgWriter);
    let shutdown = dyschat_shared::shutdown::on_signals();
    let result = dyschat_msg_writer::run(config, shutdown).await;
    telemetry.shutdown();
    if let Err(e) = result {
        eprintln!("dyschat-msg-writer: {e}");
        std::process::exit(1);
    }
}
