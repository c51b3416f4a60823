//! Services authenticate to NATS (user/password, token) and Redis (password, ACL user).

use super::*;

fn connect_config(
    nats: &NatsServer,
    redis: &RedisServer,
    extra: &[(&str, &str)],
) -> anyhow::Result<dyschat_msg_writer::Config> {
    let mut pairs = vars(&[
        ("DYSCHAT_NATS_URL", &nats.url()),
        ("DYSCHAT_REDIS_ADDR", &redis.addr()),
        ("DYSCHAT_CONNECT_TIMEOUT_SECS", "3"),
    ]);
    pairs.extend(vars(extra));
    Ok(dyschat_msg_writer::Config::from_env(&Env::from_pairs(
        pairs,
    ))?)
}

async fn connect_nats(config: &dyschat_msg_writer::Config) -> anyhow::Result<async_nats::Client> {
    Ok(connect::nats(&config.common, &config.nats, "security-test").await?)
}

async fn connect_redis(
    config: &dyschat_msg_writer::Config,
) -> Result<dyschat_runtime::redis_conn::RedisConn, connect::ConnectError> {
    connect::redis(&config.common, &config.redis).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_authenticate_to_nats_and_redis() -> anyhow::Result<()> {
    let nats = NatsServer::start_with_args(&["--user", "svc", "--pass", "s3cret-pw"]).await?;
    let redis = RedisServer::start_with_args(&["--requirepass", "redis-pw"]).await?;
    let cfg = |extra: &[(&str, &str)]| connect_config(&nats, &redis, extra);

    let good = cfg(&[
        ("DYSCHAT_NATS_USER", "svc"),
        ("DYSCHAT_NATS_PASSWORD", "s3cret-pw"),
    ])?;
    let client = connect_nats(&good).await?;
    client.flush().await?;
    // A refused credential stops at once instead of retrying until the connect timeout.
    for extra in [
        vec![
            ("DYSCHAT_NATS_USER", "svc"),
            ("DYSCHAT_NATS_PASSWORD", "wrong"),
        ],
        vec![],
    ] {
        let started = Instant::now();
        let config = cfg(&extra)?;
        let err = connect::nats(&config.common, &config.nats, "security-test")
            .await
            .expect_err("wrong credentials accepted");
        ensure!(
            matches!(err, connect::ConnectError::NatsRefused { .. }),
            "{err}"
        );
        ensure!(
            started.elapsed() < Duration::from_secs(3),
            "took {:?}",
            started.elapsed()
        );
    }

    let token_server = NatsServer::start_with_args(&["--auth", "t0ken-value"]).await?;
    let mut token_cfg = connect_config(
        &token_server,
        &redis,
        &[("DYSCHAT_NATS_TOKEN", "t0ken-value")],
    )?;
    connect_nats(&token_cfg).await?.flush().await?;
    token_cfg.nats.nats_token = "other".into();
    ensure!(
        connect_nats(&token_cfg).await.is_err(),
        "wrong token accepted"
    );

    connect_redis(&cfg(&[("DYSCHAT_REDIS_PASS", "redis-pw")])?).await?;
    connect_redis(&cfg(&[
        ("DYSCHAT_REDIS_USER", "default"),
        ("DYSCHAT_REDIS_PASS", "redis-pw"),
    ])?)
    .await?;
    ensure!(
        connect_redis(&cfg(&[("DYSCHAT_REDIS_PASS", "wrong")])?)
            .await
            .is_err(),
        "wrong Redis password accepted"
    );
    Ok(())
}
