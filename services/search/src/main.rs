//! `dyschat-search`: configuration from the environment, then [`dyschat_search::run`] until SIGTERM.

#[tokio::main]
async fn main() {
    dyschat_runtime::process::main(
        dyschat_runtime::ServiceName::Search,
        dyschat_search::Config::from_env,
        dyschat_search::run,
    )
    .await
}
