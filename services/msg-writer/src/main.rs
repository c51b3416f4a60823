//! `dyschat-msg-writer`: configuration from the environment, then [`dyschat_msg_writer::run`] until SIGTERM.

#[tokio::main]
async fn main() {
    dyschat_runtime::process::main(
        dyschat_runtime::ServiceName::MsgWriter,
        dyschat_msg_writer::Config::from_env,
        dyschat_msg_writer::run,
    )
    .await
}
