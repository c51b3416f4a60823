//! Connections to NATS and Redis with a bounded start-up retry.
//!
//! At start a service keeps trying for `DYSCHAT_CONNECT_TIMEOUT_SECS`, then gives up with one line
//! naming what it could not reach. Once connected, both clients reconnect on their own.
//!
//! Credentials and TLS come from the configuration (`DYSCHAT_NATS_USER`/`_PASSWORD`, `_TOKEN` or
//! `_CREDS_FILE`; `DYSCHAT_NATS_TLS_CA`/`_CERT`/`_KEY`; `DYSCHAT_REDIS_USER`/`_PASS`). A refused
//! credential or a broken TLS setup will not heal by retrying, so it stops the service at once
//! with a line naming the cause instead of retrying until the connect timeout.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use async_nats::ConnectErrorKind;

#[cfg(feature = "redis")]
use crate::redis_conn::RedisConn;
#[cfg(feature = "redis")]
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
#[cfg(feature = "redis")]
use redis::IntoConnectionInfo;

#[cfg(feature = "redis")]
use crate::config::RedisSettings;
use crate::config::{Common, NatsSettings};

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
    /// A credential or TLS file named by `var` cannot be used.
    #[error("{var}: {detail}")]
    Setup { var: &'static str, detail: String },
    /// The server refused the credentials or the TLS handshake; retrying would not help.
    #[error("NATS at {url} refused the connection ({kind}): {detail}; check DYSCHAT_NATS_USER/PASSWORD/TOKEN/CREDS_FILE and DYSCHAT_NATS_TLS_*")]
    NatsRefused {
        url: String,
        kind: String,
        detail: String,
    },
}

const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// Connects to NATS as `name` (shown in the server's connection list).
pub async fn nats(
    common: &Common,
    config: &NatsSettings,
    name: &str,
) -> Result<async_nats::Client, ConnectError> {
    nats_with_reconnects(common, config, name)
        .await
        .map(|(client, _)| client)
}

/// Counts the client's (re)connections, so a service can redo what a restarted server forgot
/// (see [`crate::topology::keep`]).
#[derive(Clone, Debug)]
pub struct Reconnects(tokio::sync::watch::Receiver<u64>);

impl Reconnects {
    /// Waits for the next (re)connection after the ones already seen; `None` once the client is
    /// gone.
    pub async fn next(&mut self) -> Option<u64> {
        self.0.changed().await.ok()?;
        Some(*self.0.borrow_and_update())
    }
}

/// Like [`nats`], with the client's [`Reconnects`].
pub async fn nats_with_reconnects(
    common: &Common,
    config: &NatsSettings,
    name: &str,
) -> Result<(async_nats::Client, Reconnects), ConnectError> {
    let (connected, mut reconnects) = tokio::sync::watch::channel(0u64);
    let connected = std::sync::Arc::new(connected);
    let servers = config.servers();
    let security = NatsSecurity::load(config).await?;
    let deadline = Instant::now() + common.connect_timeout();
    let mut backoff = FIRST_BACKOFF;
    loop {
        let options = security
            .apply(async_nats::ConnectOptions::new())?
            .name(name)
            // Replies come back under the client's own prefix, which its NATS user may read
            // (see `dyschat_protocol::permissions`).
            .custom_inbox_prefix(dyschat_protocol::permissions::inbox_prefix(name))
            .connection_timeout(Duration::from_secs(2))
            .max_reconnects(None)
            .event_callback({
                let connected = connected.clone();
                move |event| {
                    let connected = connected.clone();
                    async move {
                        match event {
                            async_nats::Event::Disconnected => tracing::warn!("NATS disconnected"),
                            async_nats::Event::Connected => {
                                tracing::info!("NATS connected");
                                connected.send_modify(|n| *n += 1);
                            }
                            // A permissions violation or another refusal of the server.
                            async_nats::Event::ServerError(e) => {
                                tracing::error!(error = %e, "NATS server error")
                            }
                            other => tracing::debug!(event = %other, "NATS event"),
                        }
                    }
                }
            });
        match options.connect(servers.as_slice()).await {
            Ok(client) => {
                // The connection made now is not a *re*connection.
                reconnects.mark_unchanged();
                return Ok((client, Reconnects(reconnects)));
            }
            Err(e) if is_refusal(e.kind()) => {
                return Err(ConnectError::NatsRefused {
                    url: config.nats_url.clone(),
                    kind: e.kind().to_string(),
                    detail: e.to_string(),
                })
            }
            Err(e) if Instant::now() + backoff >= deadline => {
                return Err(ConnectError::Nats {
                    url: config.nats_url.clone(),
                    secs: common.connect_timeout_secs,
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

/// Errors of the handshake itself, as opposed to a server not being reachable (yet).
fn is_refusal(kind: ConnectErrorKind) -> bool {
    matches!(
        kind,
        ConnectErrorKind::AuthorizationViolation
            | ConnectErrorKind::Authentication
            | ConnectErrorKind::Tls
    )
}

/// How this service authenticates to NATS and secures the connection, checked and loaded once
/// before the first attempt (files are read here, so a missing one is reported by name).
#[derive(Default)]
struct NatsSecurity {
    user_password: Option<(String, String)>,
    token: Option<String>,
    /// The contents of the `.creds` file.
    creds: Option<String>,
    root_ca: Option<PathBuf>,
    client_cert: Option<(PathBuf, PathBuf)>,
}

impl NatsSecurity {
    async fn load(config: &NatsSettings) -> Result<Self, ConnectError> {
        let given = |s: &str| Some(s.trim()).filter(|s| !s.is_empty()).map(String::from);
        let mut security = NatsSecurity {
            token: given(&config.nats_token),
            ..Default::default()
        };
        if let (Some(user), Some(_)) = (given(&config.nats_user), given(&config.nats_password)) {
            // The password is used as given: surrounding spaces may be part of it.
            security.user_password = Some((user, config.nats_password.clone()));
        }
        if let Some(path) = given(&config.nats_creds_file) {
            let contents =
                tokio::fs::read_to_string(&path)
                    .await
                    .map_err(|e| ConnectError::Setup {
                        var: "DYSCHAT_NATS_CREDS_FILE",
                        detail: format!("cannot read {path}: {e}"),
                    })?;
            security.creds = Some(contents);
        }
        security.root_ca = readable("DYSCHAT_NATS_TLS_CA", &config.nats_tls_ca)?;
        let cert = readable("DYSCHAT_NATS_TLS_CERT", &config.nats_tls_cert)?;
        let key = readable("DYSCHAT_NATS_TLS_KEY", &config.nats_tls_key)?;
        security.client_cert = cert.zip(key);
        Ok(security)
    }

    fn apply(
        &self,
        mut options: async_nats::ConnectOptions,
    ) -> Result<async_nats::ConnectOptions, ConnectError> {
        if let Some((user, password)) = &self.user_password {
            options = options.user_and_password(user.clone(), password.clone());
        }
        if let Some(token) = &self.token {
            options = options.token(token.clone());
        }
        if let Some(creds) = &self.creds {
            options = options
                .credentials(creds)
                .map_err(|e| ConnectError::Setup {
                    var: "DYSCHAT_NATS_CREDS_FILE",
                    detail: format!("not a valid credentials file: {e}"),
                })?;
        }
        if let Some(ca) = &self.root_ca {
            options = options.add_root_certificates(ca.clone()).require_tls(true);
        }
        if let Some((cert, key)) = &self.client_cert {
            options = options.add_client_certificate(cert.clone(), key.clone());
        }
        Ok(options)
    }
}

/// `Some(path)` when `value` names a readable file, `None` when empty, an error naming `var`
/// otherwise.
fn readable(var: &'static str, value: &str) -> Result<Option<PathBuf>, ConnectError> {
    let value = value.trim();
    if value.is_empty() {
        return Ok(None);
    }
    match std::fs::File::open(value) {
        Ok(_) => Ok(Some(PathBuf::from(value))),
        Err(e) => Err(ConnectError::Setup {
            var,
            detail: format!("cannot read {value}: {e}"),
        }),
    }
}

/// Connects to Redis (database and password from the configuration), or to the Redis Cluster
/// `DYSCHAT_REDIS_CLUSTER_NODES` names. Either connection reconnects by itself after a failure.
#[cfg(feature = "redis")]
pub async fn redis(common: &Common, config: &RedisSettings) -> Result<RedisConn, ConnectError> {
    if config.cluster_nodes().is_empty() {
        single_redis(common, config).await.map(RedisConn::Single)
    } else {
        redis_cluster(common, config).await.map(RedisConn::Cluster)
    }
}

/// Connects to a Redis Cluster through redis-rs's own cluster client: it reads the slot map
/// from the nodes given, routes each command to its slot's master and follows failovers.
#[cfg(feature = "redis")]
async fn redis_cluster(
    common: &Common,
    config: &RedisSettings,
) -> Result<redis::cluster_async::ClusterConnection, ConnectError> {
    let nodes = config.cluster_nodes();
    let fail = |detail: String| ConnectError::Redis {
        addr: nodes.join(","),
        secs: common.connect_timeout_secs,
        detail,
    };
    let mut builder = redis::cluster::ClusterClientBuilder::new(nodes.clone())
        .response_timeout(config.timeout())
        .connection_timeout(Duration::from_secs(2))
        // A command is retried on another node (redirects, a failover) a few times, then
        // fails: the writer retries its chunk, the agents answer from the stream.
        .retries(CLUSTER_RETRIES)
        .overall_response_timeout(Some(config.timeout()));
    if !config.redis_pass.is_empty() {
        builder = builder.password(&config.redis_pass);
    }
    if !config.redis_user.trim().is_empty() {
        builder = builder.username(config.redis_user.trim());
    }
    let client = builder.build().map_err(|e| fail(e.to_string()))?;
    let deadline = Instant::now() + common.connect_timeout();
    let mut backoff = FIRST_BACKOFF;
    loop {
        let attempt =
            tokio::time::timeout(Duration::from_secs(5), client.get_async_connection()).await;
        let err = match attempt {
            Ok(Ok(conn)) => return Ok(conn),
            Ok(Err(e)) => e.to_string(),
            Err(_) => "timed out".to_string(),
        };
        if Instant::now() + backoff >= deadline {
            return Err(fail(err));
        }
        tracing::warn!(error = %err, "Redis Cluster not reachable yet, retrying");
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// How often the cluster client retries one command (redirects, reconnections).
#[cfg(feature = "redis")]
const CLUSTER_RETRIES: u32 = 3;

#[cfg(feature = "redis")]
async fn single_redis(
    common: &Common,
    config: &RedisSettings,
) -> Result<ConnectionManager, ConnectError> {
    let fail = |detail: String| ConnectError::Redis {
        addr: config.redis_addr.clone(),
        secs: common.connect_timeout_secs,
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
    if !config.redis_user.trim().is_empty() {
        settings = settings.set_username(config.redis_user.trim());
    }
    let info = info.set_redis_settings(settings);
    let client = redis::Client::open(info).map_err(|e| fail(e.to_string()))?;
    let deadline = Instant::now() + common.connect_timeout();
    let mut backoff = FIRST_BACKOFF;
    loop {
        let attempt = tokio::time::timeout(
            Duration::from_secs(2),
            ConnectionManager::new_with_config(client.clone(), manager_config(config)),
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

/// The Redis client's own default fails a command after 500 ms, which a busy Redis (a history
/// rebuild, an AOF rewrite) or a loaded host exceeds without anything being wrong.
#[cfg(feature = "redis")]
fn manager_config(config: &RedisSettings) -> ConnectionManagerConfig {
    ConnectionManagerConfig::new()
        .set_response_timeout(Some(Duration::from_millis(config.redis_timeout_ms)))
        .set_connection_timeout(Some(Duration::from_secs(2)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(pairs: &[(&str, &str)]) -> NatsSettings {
        let env = crate::config::Env::from_pairs(
            pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())),
        );
        let common = env.common().expect("valid configuration");
        env.section(&common).expect("valid configuration")
    }

    #[tokio::test]
    async fn a_missing_file_is_reported_by_its_variable() {
        for var in [
            "DYSCHAT_NATS_CREDS_FILE",
            "DYSCHAT_NATS_TLS_CA",
            "DYSCHAT_NATS_TLS_CERT",
        ] {
            let mut pairs = vec![(var, "/nonexistent/dyschat/file.pem")];
            if var == "DYSCHAT_NATS_TLS_CERT" {
                pairs.push(("DYSCHAT_NATS_TLS_KEY", "/nonexistent/dyschat/key.pem"));
            }
            let err = match NatsSecurity::load(&config(&pairs)).await {
                Err(e) => e.to_string(),
                Ok(_) => panic!("{var}: a missing file was accepted"),
            };
            assert!(err.starts_with(var), "{err}");
        }
    }

    #[tokio::test]
    async fn a_malformed_creds_file_is_refused_before_connecting() {
        let dir = std::env::temp_dir().join(format!("dyschat-creds-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("bad.creds");
        std::fs::write(&path, "not a creds file").unwrap();
        let c = config(&[("DYSCHAT_NATS_CREDS_FILE", path.to_str().unwrap())]);
        let security = NatsSecurity::load(&c).await.expect("the file is readable");
        let Err(err) = security.apply(async_nats::ConnectOptions::new()) else {
            panic!("malformed credentials accepted");
        };
        assert!(err.to_string().contains("DYSCHAT_NATS_CREDS_FILE"), "{err}");
        let _ = std::fs::remove_dir_all(dir);
    }

    #[tokio::test]
    async fn no_credentials_means_plain_options() {
        let security = NatsSecurity::load(&config(&[])).await.unwrap();
        assert!(security.user_password.is_none() && security.token.is_none());
        assert!(security.creds.is_none() && security.root_ca.is_none());
        assert!(security.apply(async_nats::ConnectOptions::new()).is_ok());
    }
}
