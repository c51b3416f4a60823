//! `dyschat-auth`: configuration from the environment, then [`dyschat_auth::run`] until SIGTERM.

#[tokio::main]
async fn main() {
    dyschat_runtime::process::main(
        dyschat_runtime::ServiceName::Auth,
        dyschat_auth::Config::from_env,
        dyschat_auth::run,
    )
    .await
}
