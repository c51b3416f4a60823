//! `dyschat-ws-agent`: the public HTTP and WebSocket edge, until SIGTERM.

#[tokio::main]
async fn main() {
    dyschat_runtime::process::main(
        dyschat_runtime::ServiceName::WsAgent,
        dyschat_ws_agent::Config::from_env,
        dyschat_ws_agent::run,
    )
    .await
}
