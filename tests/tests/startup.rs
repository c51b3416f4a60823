//! Start-up behaviour of the binaries: bad variables, unreachable servers, conflicting topology.

use std::process::Command;
use std::time::Duration;

use anyhow::ensure;
use dyschat_runtime::Env;
use dyschat_tests::procs::bin;
use dyschat_tests::{free_port, NatsServer, RedisServer};

const BINARIES: [&str; 4] = [
    "dyschat-auth",
    "dyschat-rooms",
    "dyschat-msg-writer",
    "dyschat-ws-agent",
];

fn run(binary: &str, env: &[(&str, String)]) -> anyhow::Result<(i32, String)> {
    let out = Command::new(bin(binary)?)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .output()?;
    // stderr carries the final line; stdout the logs.
    Ok((
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).to_string(),
    ))
}

/// A variable each binary reads, with a value it must refuse.
const BAD_VARIABLE: [(&str, &str, &str); 4] = [
    ("dyschat-auth", "DYSCHAT_LOGIN_ATTEMPTS_PER_MIN", "seven"),
    ("dyschat-rooms", "DYSCHAT_STREAM_REPLICAS", "seven"),
    ("dyschat-msg-writer", "DYSCHAT_REDIS_DATABASE", "seven"),
    ("dyschat-ws-agent", "DYSCHAT_REDIS_DATABASE", "seven"),
];

#[test]
fn an_invalid_variable_stops_every_binary_with_a_line_naming_it() -> anyhow::Result<()> {
    for (binary, var, value) in BAD_VARIABLE {
        let (code, text) = run(binary, &[(var, value.into())])?;
        ensure!(code == 2, "{binary} started with a bad {var} (exit {code})");
        ensure!(text.contains(var), "{binary}: {text}");
    }
    // The binaries that sign or verify tokens refuse the dev secret in prod; the others never
    // read it, so it cannot stop them (they go on to try NATS, which is not there).
    for binary in BINARIES {
        let (code, text) = run(
            binary,
            &[
                ("DYSCHAT_ENV_MODE", "prod".into()),
                (
                    "DYSCHAT_NATS_URL",
                    format!("nats://127.0.0.1:{}", free_port()),
                ),
                ("DYSCHAT_CONNECT_TIMEOUT_SECS", "1".into()),
            ],
        )?;
        let reads_secret = matches!(binary, "dyschat-auth" | "dyschat-ws-agent");
        if reads_secret {
            ensure!(
                code == 2 && text.contains("DYSCHAT_AUTH_SECRET"),
                "{binary} in prod with the dev secret: {text}"
            );
        } else {
            ensure!(
                code == 1 && !text.contains("DYSCHAT_AUTH_SECRET"),
                "{binary} in prod asked for a secret it never uses: {text}"
            );
        }
    }
    Ok(())
}

#[test]
fn unreachable_nats_is_retried_then_reported_in_one_line() -> anyhow::Result<()> {
    let port = free_port();
    for binary in BINARIES {
        let (code, text) = run(
            binary,
            &[
                ("DYSCHAT_NATS_URL", format!("nats://127.0.0.1:{port}")),
                ("DYSCHAT_CONNECT_TIMEOUT_SECS", "1".into()),
                (
                    "DYSCHAT_WS_AGENT_PORT",
                    format!("127.0.0.1:{}", free_port()),
                ),
            ],
        )?;
        ensure!(code == 1, "{binary} exited {code}: {text}");
        let last = text.lines().last().unwrap_or("");
        ensure!(
            last.contains("could not reach NATS") && last.contains(&port.to_string()),
            "{binary}: {text}"
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conflicting_stream_stops_the_service_with_a_clear_error() -> anyhow::Result<()> {
    let nats = NatsServer::start().await?;
    let redis = RedisServer::start().await?;
    let js = async_nats::jetstream::new(async_nats::connect(nats.url()).await?);
    js.create_stream(async_nats::jetstream::stream::Config {
        name: "DYSCHAT_MESSAGES".into(),
        subjects: vec!["dyschat.msg.room.*".into()],
        max_messages: 10,
        ..Default::default()
    })
    .await?;
    let config = dyschat_msg_writer::Config::from_env(&Env::from_pairs([
        ("DYSCHAT_NATS_URL".to_string(), nats.url()),
        ("DYSCHAT_REDIS_ADDR".to_string(), redis.addr()),
    ]))?;
    let outcome = tokio::time::timeout(
        Duration::from_secs(20),
        dyschat_msg_writer::run(config, tokio_util::sync::CancellationToken::new()),
    )
    .await?;
    let err = outcome.err().map(|e| e.to_string()).unwrap_or_default();
    ensure!(
        err.contains("DYSCHAT_MESSAGES") && err.contains("different configuration"),
        "{err}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_of_the_first_layout_is_brought_to_the_current_one_in_place() -> anyhow::Result<()>
{
    use async_nats::jetstream::stream::{Config, Republish};
    let nats = NatsServer::start().await?;
    let redis = RedisServer::start().await?;
    let js = async_nats::jetstream::new(async_nats::connect(nats.url()).await?);
    // The messages stream as the first release made it: messages only, 64 KiB.
    let first = dyschat_runtime::topology::messages_stream_config(&Default::default());
    js.create_stream(Config {
        subjects: vec!["dyschat.msg.room.*".into()],
        max_message_size: 64 * 1024,
        republish: Some(Republish {
            source: "dyschat.msg.room.*".into(),
            destination: "dyschat.live.room.{{wildcard(1)}}".into(),
            headers_only: false,
        }),
        ..first
    })
    .await?;
    js.publish("dyschat.msg.room.r1", "kept".into())
        .await?
        .await?;
    let config = dyschat_msg_writer::Config::from_env(&Env::from_pairs([
        ("DYSCHAT_NATS_URL".to_string(), nats.url()),
        ("DYSCHAT_REDIS_ADDR".to_string(), redis.addr()),
    ]))?;
    let stop = tokio_util::sync::CancellationToken::new();
    let writer = tokio::spawn(dyschat_msg_writer::run(config, stop.clone()));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let info = loop {
        let info = js
            .get_stream("DYSCHAT_MESSAGES")
            .await?
            .info()
            .await?
            .clone();
        if info.config.subjects.len() == 2 || tokio::time::Instant::now() > deadline {
            break info;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    stop.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(10), writer).await;
    ensure!(
        info.config.subjects == ["dyschat.msg.room.*", "dyschat.msg.room.*.chg.*"],
        "{:?}",
        info.config.subjects
    );
    ensure!(info.config.max_message_size > 64 * 1024);
    ensure!(info.state.messages == 1, "the stored message is kept");
    Ok(())
}
