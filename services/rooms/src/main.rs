//! `dyschat-rooms`: configuration from the environment, then [`dyschat_rooms::run`] until SIGTERM.

#[tokio::main]
async fn main() {
    dyschat_runtime::process::main(
        dyschat_runtime::ServiceName::Rooms,
        dyschat_rooms::Config::from_env,
        dyschat_rooms::run,
    )
    .await
}
