//! Connections to NATS and Redis with a bounded start-up retry.
//!
//! At start a service keeps trying for `DYSCHAT_CONNECT_TIMEOUT_SECS`, then gives up with one line
//! naming what it could not reach. Once connected, both clients reconnect on their own.

use std::time::{Duration, Instant};

use redis::aio::ConnectionManager;
use redis::IntoConnectionInfo;

use crate::config::Config;

#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("could not reach NATS at {url} within {secs}s: {detail}")]
    Nats {
        url: String,
        secs: u64,
        detail: String,
    },
    #[error("could not reach Redis at {addr} within {secs}s: {detail}")]
    Redis {
        addr: String,
        secs: u64,
        detail: String,
    },
}

const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// Connects to NATS as `name` (shown in the server's connection list).
pub async fn nats(config: &Config, name: &str) -> Result<async_nats::Client, ConnectError> {
    let servers = config.nats_servers();
    let deadline = Instant::now() + config.connect_timeout();
    let mut backoff = FIRST_BACKOFF;
    loop {
        let options = async_nats::ConnectOptions::new()
            .name(name)
            .connection_timeout(Duration::from_secs(2))
            .max_reconnects(None)
            .event_callback(|event| async move {
                match event {
                    async_nats::Event::Disconnected => tracing::warn!("NATS disconnected"),
                    async_nats::Event::Connected => tracing::info!("NATS connected"),
                    other => tracing::debug!(event = %other, "NATS event"),
                }
            });
        match options.connect(servers.as_slice()).await {
            Ok(client) => return Ok(client),
            Err(e) if Instant::now() + backoff >= deadline => {
                return Err(ConnectError::Nats {
                    url: config.nats_url.clone(),
                    secs: config.connect_timeout_secs,
                    detail: e.to_string(),
                })
            }
            Err(e) => {
                tracing::warn!(error = %e, "NATS not reachable yet, retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

/// Connects to Redis (database and password from the configuration). The manager reconnects by
/// itself after a failure.
pub async fn redis(config: &Config) -> Result<ConnectionManager, ConnectError> {
    let fail = |detail: String| ConnectError::Redis {
        addr: config.redis_addr.clone(),
        secs: config.connect_timeout_secs,
        detail,
    };
    let info = format!("redis://{}/", config.redis_addr)
        .into_connection_info()
        .map_err(|e| fail(e.to_string()))?;
    let mut settings = info
        .redis_settings()
        .clone()
        .set_db(config.redis_database.into());
    if !config.redis_pass.is_empty() {
        settings = settings.set_password(&config.redis_pass);
    }
    let info = info.set_redis_settings(settings);
    let client = redis::Client::open(info).map_err(|e| fail(e.to_string()))?;
    let deadline = Instant::now() + config.connect_timeout();
    let mut backoff = FIRST_BACKOFF;
    loop {
        let attempt = tokio::time::timeout(
            Duration::from_secs(2),
            ConnectionManager::new(client.clone()),
        )
        .await;
        let err = match attempt {
            Ok(Ok(manager)) => return Ok(manager),
            Ok(Err(e)) => e.to_string(),
            Err(_) => "timed out".to_string(),
        };
        if Instant::now() + backoff >= deadline {
            return Err(fail(err));
        }
        tracing::warn!(error = %err, "Redis not reachable yet, retrying");
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}
