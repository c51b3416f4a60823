//! The harness itself: both servers start, answer, stop, and keep their data across restarts.

use std::time::Duration;

use async_nats::jetstream;
use dyschat_tests::{env, env_with, free_port, NatsServer, RedisServer};

/// Whether something accepts TCP connections on `127.0.0.1:port`.
async fn port_open(port: u16) -> bool {
    tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_ok()
}

async fn redis_conn(redis: &RedisServer) -> anyhow::Result<redis::aio::MultiplexedConnection> {
    let client = redis::Client::open(redis.url())?;
    Ok(client.get_multiplexed_async_connection().await?)
}

#[test]
fn free_port_is_bindable() {
    let port = free_port();
    assert_ne!(port, 0);
    std::net::TcpListener::bind(("127.0.0.1", port)).expect("the port is free");
}

#[tokio::test]
async fn nats_starts_answers_and_stops() -> anyhow::Result<()> {
    let mut nats = NatsServer::start().await?;
    assert!(nats.is_running());
    assert!(nats.pid().is_some());
    assert_eq!(nats.url(), format!("nats://127.0.0.1:{}", nats.port()));

    let client = async_nats::connect(nats.url()).await?;
    let info = client.server_info();
    assert!(info.jetstream, "JetStream is enabled: {info:?}");
    let mut sub = client.subscribe("harness.ping").await?;
    client.publish("harness.ping", "hello".into()).await?;
    client.flush().await?;
    let msg = tokio::time::timeout(Duration::from_secs(5), futures::StreamExt::next(&mut sub))
        .await?
        .expect("a message");
    assert_eq!(&msg.payload[..], b"hello");
    drop(sub);
    drop(client);

    let port = nats.port();
    nats.stop().await;
    assert!(!nats.is_running());
    assert!(nats.pid().is_none());
    assert!(!port_open(port).await, "nothing listens after stop");
    Ok(())
}

#[tokio::test]
async fn redis_starts_answers_and_stops() -> anyhow::Result<()> {
    let mut redis = RedisServer::start().await?;
    assert!(redis.is_running());
    assert_eq!(redis.addr(), format!("127.0.0.1:{}", redis.port()));

    let mut conn = redis_conn(&redis).await?;
    let pong: String = redis::cmd("PING").query_async(&mut conn).await?;
    assert_eq!(pong, "PONG");
    drop(conn);

    let port = redis.port();
    redis.stop().await;
    assert!(!redis.is_running());
    assert!(!port_open(port).await, "nothing listens after stop");
    Ok(())
}

#[tokio::test]
async fn redis_keeps_data_across_restart_and_kill() -> anyhow::Result<()> {
    let mut redis = RedisServer::start().await?;
    let port = redis.port();
    let mut conn = redis_conn(&redis).await?;
    let _: () = redis::cmd("SET")
        .arg("k")
        .arg("v1")
        .query_async(&mut conn)
        .await?;
    drop(conn);

    redis.restart().await?;
    assert_eq!(redis.port(), port, "restart keeps the port");
    let mut conn = redis_conn(&redis).await?;
    let v: String = redis::cmd("GET").arg("k").query_async(&mut conn).await?;
    assert_eq!(v, "v1");
    let _: () = redis::cmd("SET")
        .arg("k")
        .arg("v2")
        .query_async(&mut conn)
        .await?;
    drop(conn);

    // A crash loses no acknowledged write (appendfsync always).
    redis.kill();
    assert!(!redis.is_running());
    redis.start_again().await?;
    let mut conn = redis_conn(&redis).await?;
    let v: String = redis::cmd("GET").arg("k").query_async(&mut conn).await?;
    assert_eq!(v, "v2");
    Ok(())
}

#[tokio::test]
async fn nats_restart_keeps_the_jetstream_store() -> anyhow::Result<()> {
    let mut nats = NatsServer::start().await?;
    let port = nats.port();
    {
        let client = async_nats::connect(nats.url()).await?;
        let js = jetstream::new(client);
        js.create_stream(jetstream::stream::Config {
            name: "HARNESS".into(),
            subjects: vec!["harness.>".into()],
            storage: jetstream::stream::StorageType::File,
            ..Default::default()
        })
        .await?;
        js.publish("harness.one", "first".into()).await?.await?;
    }
    assert!(nats.store_dir().join("jetstream").is_dir());

    nats.restart().await?;
    assert_eq!(nats.port(), port, "restart keeps the port");

    let client = async_nats::connect(nats.url()).await?;
    let js = jetstream::new(client);
    let stream = js.get_stream("HARNESS").await?;
    let info = stream.get_info().await?;
    assert_eq!(info.state.messages, 1, "the stored message survived");
    let msg = stream.get_raw_message(1).await?;
    assert_eq!(&msg.payload[..], b"first");

    // And after a crash too.
    nats.kill();
    nats.start_again().await?;
    let client = async_nats::connect(nats.url()).await?;
    let js = jetstream::new(client);
    let info = js.get_stream("HARNESS").await?.get_info().await?;
    assert_eq!(info.state.messages, 1);
    Ok(())
}

#[tokio::test]
async fn dropping_the_handles_kills_the_servers() -> anyhow::Result<()> {
    let nats = NatsServer::start().await?;
    let redis = RedisServer::start().await?;
    let (nats_port, redis_port) = (nats.port(), redis.port());
    let store = nats.store_dir();
    assert!(port_open(nats_port).await && port_open(redis_port).await);
    drop(nats);
    drop(redis);
    assert!(!port_open(nats_port).await);
    assert!(!port_open(redis_port).await);
    assert!(!store.exists(), "the temporary store is removed");
    Ok(())
}

#[tokio::test]
async fn extra_arguments_reach_the_servers() -> anyhow::Result<()> {
    let nats = NatsServer::start_with_args(&["--server_name", "harness-extra"]).await?;
    let client = async_nats::connect(nats.url()).await?;
    assert_eq!(client.server_info().server_name, "harness-extra");

    let redis = RedisServer::start_with_args(&["--requirepass", "sesame"]).await?;
    let url = format!("redis://:sesame@{}/", redis.addr());
    let mut conn = redis::Client::open(url)?
        .get_multiplexed_async_connection()
        .await?;
    let pong: String = redis::cmd("PING").query_async(&mut conn).await?;
    assert_eq!(pong, "PONG");
    Ok(())
}

#[tokio::test]
async fn config_points_at_the_servers() -> anyhow::Result<()> {
    let nats = NatsServer::start().await?;
    let redis = RedisServer::start().await?;
    let cfg = dyschat_ws_agent::Config::from_env(&env(&nats, &redis))?;
    assert_eq!(cfg.nats.nats_url, nats.url());
    assert_eq!(cfg.redis.redis_addr, redis.addr());
    assert_eq!(cfg.agent.ws_agent_port, "127.0.0.1:0");
    assert_eq!(cfg.common.connect_timeout_secs, 10);

    let cfg = dyschat_ws_agent::Config::from_env(&env_with(
        &nats,
        &redis,
        &[("DYSCHAT_CONNECT_TIMEOUT_SECS", "3")],
    ))?;
    assert_eq!(cfg.common.connect_timeout_secs, 3);
    Ok(())
}
