//! The sections most services share: the mode and telemetry ([`Common`]), how to reach NATS and
//! Redis, and how streams and buckets are replicated. Each validates itself and keeps its secrets
//! out of `Debug`.

use std::fmt;
use std::time::Duration;

use dyschat_protocol::streams::{MessageStreams, MAX_STREAM_PARTITIONS};
use serde::Deserialize;

use super::{redact, ConfigError, EnvMode, Section};

/// Read by every service.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct Common {
    #[serde(deserialize_with = "env_mode")]
    pub env_mode: EnvMode,
    /// OTLP gRPC endpoint of Jaeger; empty: no trace export.
    pub jaeger_url: String,
    /// How long a starting service keeps trying to reach NATS or Redis before giving up.
    pub connect_timeout_secs: u64,
    /// How long SIGTERM waits for in-flight work before exiting anyway.
    pub drain_timeout_secs: u64,
}

impl Default for Common {
    fn default() -> Self {
        Common {
            env_mode: EnvMode::Dev,
            jaeger_url: String::new(),
            connect_timeout_secs: 30,
            drain_timeout_secs: 10,
        }
    }
}

impl Section for Common {}

impl Common {
    pub fn connect_timeout(&self) -> Duration {
        Duration::from_secs(self.connect_timeout_secs)
    }

    pub fn drain_timeout(&self) -> Duration {
        Duration::from_secs(self.drain_timeout_secs)
    }
}

fn env_mode<'de, D: serde::Deserializer<'de>>(d: D) -> Result<EnvMode, D::Error> {
    let raw = String::deserialize(d)?;
    match raw.as_str() {
        "dev" => Ok(EnvMode::Dev),
        "prod" => Ok(EnvMode::Prod),
        other => Err(serde::de::Error::custom(format!(
            "DYSCHAT_ENV_MODE: must be `dev` or `prod`, not `{other}`"
        ))),
    }
}

/// How to reach and authenticate to NATS. Empty credentials mean not used.
#[derive(Clone, Deserialize)]
#[serde(default)]
pub struct NatsSettings {
    /// One URL or a comma-separated list (a cluster).
    pub nats_url: String,
    pub nats_user: String,
    pub nats_password: String,
    pub nats_token: String,
    /// A `.creds` file (user JWT and NKey seed).
    pub nats_creds_file: String,
    /// Root CA (PEM) that the server's certificate must chain to; setting it requires TLS.
    pub nats_tls_ca: String,
    /// Client certificate and key (PEM) for mutual TLS; both or neither.
    pub nats_tls_cert: String,
    pub nats_tls_key: String,
}

impl Default for NatsSettings {
    fn default() -> Self {
        NatsSettings {
            nats_url: "nats://127.0.0.1:4222".into(),
            nats_user: String::new(),
            nats_password: String::new(),
            nats_token: String::new(),
            nats_creds_file: String::new(),
            nats_tls_ca: String::new(),
            nats_tls_cert: String::new(),
            nats_tls_key: String::new(),
        }
    }
}

fn set(s: &str) -> bool {
    !s.trim().is_empty()
}

impl Section for NatsSettings {
    fn validate(&self, _common: &super::Common) -> Result<(), ConfigError> {
        if self.servers().is_empty() {
            return Err(ConfigError::var(
                "NATS_URL",
                "must name at least one server",
            ));
        }
        if set(&self.nats_user) != set(&self.nats_password) {
            return Err(ConfigError::var(
                "NATS_USER / DYSCHAT_NATS_PASSWORD",
                "give both or neither",
            ));
        }
        let methods = [
            set(&self.nats_user),
            set(&self.nats_token),
            set(&self.nats_creds_file),
        ];
        if methods.iter().filter(|m| **m).count() > 1 {
            return Err(ConfigError::var(
                "NATS_USER / DYSCHAT_NATS_TOKEN / DYSCHAT_NATS_CREDS_FILE",
                "use at most one way to authenticate to NATS",
            ));
        }
        if set(&self.nats_tls_cert) != set(&self.nats_tls_key) {
            return Err(ConfigError::var(
                "NATS_TLS_CERT / DYSCHAT_NATS_TLS_KEY",
                "a client certificate needs its key: give both or neither",
            ));
        }
        Ok(())
    }
}

impl NatsSettings {
    pub fn servers(&self) -> Vec<String> {
        self.nats_url
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect()
    }

    /// Whether connections must use TLS: a root CA is configured.
    pub fn tls_required(&self) -> bool {
        set(&self.nats_tls_ca)
    }
}

impl fmt::Debug for NatsSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NatsSettings")
            .field("nats_url", &self.nats_url)
            .field("nats_user", &self.nats_user)
            .field("nats_password", &redact(&self.nats_password))
            .field("nats_token", &redact(&self.nats_token))
            .field("nats_creds_file", &self.nats_creds_file)
            .field("nats_tls_ca", &self.nats_tls_ca)
            .field("nats_tls_cert", &self.nats_tls_cert)
            .field("nats_tls_key", &self.nats_tls_key)
            .finish()
    }
}

/// How to reach Redis.
#[derive(Clone, Deserialize)]
#[serde(default)]
pub struct RedisSettings {
    pub redis_addr: String,
    /// A Redis Cluster instead of one Redis: some of its nodes, comma-separated `redis://` (or
    /// `rediss://`) URLs (`DYSCHAT_REDIS_CLUSTER_NODES`); the client finds the others. Empty
    /// (the default): one Redis at `redis_addr`.
    pub redis_cluster_nodes: String,
    /// Redis ACL user (needs the password).
    pub redis_user: String,
    pub redis_pass: String,
    pub redis_database: u32,
    /// How long one Redis command may take before it fails (and is retried or answered 503).
    pub redis_timeout_ms: u64,
}

impl Default for RedisSettings {
    fn default() -> Self {
        RedisSettings {
            redis_addr: "127.0.0.1:6379".into(),
            redis_cluster_nodes: String::new(),
            redis_user: String::new(),
            redis_pass: String::new(),
            redis_database: 0,
            redis_timeout_ms: 5_000,
        }
    }
}

impl Section for RedisSettings {
    fn validate(&self, _common: &super::Common) -> Result<(), ConfigError> {
        if self.redis_addr.trim().is_empty() {
            return Err(ConfigError::var("REDIS_ADDR", "must not be empty"));
        }
        if set(&self.redis_user) && self.redis_pass.is_empty() {
            return Err(ConfigError::var("REDIS_USER", "needs DYSCHAT_REDIS_PASS"));
        }
        if self.redis_timeout_ms == 0 {
            return Err(ConfigError::var("REDIS_TIMEOUT_MS", "must be positive"));
        }
        if set(&self.redis_cluster_nodes) {
            for node in self.cluster_nodes() {
                if !(node.starts_with("redis://") || node.starts_with("rediss://")) {
                    return Err(ConfigError::var(
                        "REDIS_CLUSTER_NODES",
                        "must be comma-separated redis:// or rediss:// URLs",
                    ));
                }
                // The variable is logged and shown in errors; secrets have their own variables.
                if node.contains('@') {
                    return Err(ConfigError::var(
                        "REDIS_CLUSTER_NODES",
                        "must not hold credentials (use DYSCHAT_REDIS_USER and DYSCHAT_REDIS_PASS)",
                    ));
                }
            }
            if self.redis_database != 0 {
                return Err(ConfigError::var(
                    "REDIS_DATABASE",
                    "a Redis Cluster has only database 0",
                ));
            }
        }
        Ok(())
    }
}

impl RedisSettings {
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.redis_timeout_ms)
    }

    /// The cluster nodes named by `DYSCHAT_REDIS_CLUSTER_NODES` (none: one Redis).
    pub fn cluster_nodes(&self) -> Vec<&str> {
        self.redis_cluster_nodes
            .split(',')
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .collect()
    }
}

impl fmt::Debug for RedisSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisSettings")
            .field("redis_addr", &self.redis_addr)
            .field("redis_cluster_nodes", &self.redis_cluster_nodes)
            .field("redis_user", &self.redis_user)
            .field("redis_pass", &redact(&self.redis_pass))
            .field("redis_database", &self.redis_database)
            .field("redis_timeout_ms", &self.redis_timeout_ms)
            .finish()
    }
}

/// How the streams and buckets a service ensures are configured. Every service that ensures the
/// message stream must agree on these, or the second one to start refuses the stream.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct TopologySettings {
    /// Replicas of every stream and bucket (3 on a three-node cluster).
    pub stream_replicas: usize,
    /// How long a retried send (same sender, room and `client_msg_id`) is recognised as a
    /// duplicate: the stream's own window covers the first minutes, the retried-send index in
    /// Redis the rest.
    pub dedupe_window_secs: u64,
    /// How many message streams the rooms are spread over (`DYSCHAT_STREAM_PARTITIONS`, see
    /// `dyschat_protocol::streams`): 1 is the single stream `DYSCHAT_MESSAGES`; more needs the
    /// NATS server's subject mapping for the same number. Fixed for a deployment.
    pub stream_partitions: u16,
}

impl Default for TopologySettings {
    fn default() -> Self {
        TopologySettings {
            stream_replicas: 1,
            dedupe_window_secs: 86_400,
            stream_partitions: 1,
        }
    }
}

impl TopologySettings {
    /// The message streams of the mesh (validated, so never out of range).
    pub fn message_streams(&self) -> MessageStreams {
        MessageStreams::new(self.stream_partitions).unwrap_or_default()
    }
}

impl Section for TopologySettings {
    fn validate(&self, _common: &super::Common) -> Result<(), ConfigError> {
        if !(1..=5).contains(&self.stream_replicas) {
            return Err(ConfigError::var("STREAM_REPLICAS", "must be 1 to 5"));
        }
        if self.dedupe_window_secs == 0 {
            return Err(ConfigError::var("DEDUPE_WINDOW_SECS", "must be positive"));
        }
        if MessageStreams::new(self.stream_partitions).is_none() {
            return Err(ConfigError::var(
                "STREAM_PARTITIONS",
                format!("must be 1 to {MAX_STREAM_PARTITIONS}"),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::Env;
    use super::*;

    fn read<T: Section>(pairs: &[(&str, &str)]) -> Result<T, ConfigError> {
        let env = Env::from_pairs(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let common = env.common()?;
        env.section(&common)
    }

    #[test]
    fn stream_partitions_default_to_one_and_are_bounded() {
        let one = read::<TopologySettings>(&[]).unwrap();
        assert_eq!(one.message_streams(), MessageStreams::SINGLE);
        let three = read::<TopologySettings>(&[("DYSCHAT_STREAM_PARTITIONS", "3")]).unwrap();
        assert_eq!(three.message_streams().count(), 3);
        for bad in ["0", "9", "many"] {
            let err = read::<TopologySettings>(&[("DYSCHAT_STREAM_PARTITIONS", bad)]).unwrap_err();
            assert!(
                err.to_string().contains("DYSCHAT_STREAM_PARTITIONS"),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn nats_credentials_are_one_method_at_most() {
        assert!(read::<NatsSettings>(&[("DYSCHAT_NATS_USER", "svc")]).is_err());
        assert!(read::<NatsSettings>(&[("DYSCHAT_NATS_PASSWORD", "pw")]).is_err());
        assert!(read::<NatsSettings>(&[
            ("DYSCHAT_NATS_USER", "svc"),
            ("DYSCHAT_NATS_PASSWORD", "pw")
        ])
        .is_ok());
        assert!(read::<NatsSettings>(&[("DYSCHAT_NATS_TOKEN", "t")]).is_ok());
        let err = read::<NatsSettings>(&[
            ("DYSCHAT_NATS_TOKEN", "t"),
            ("DYSCHAT_NATS_CREDS_FILE", "x"),
        ])
        .unwrap_err();
        assert!(err.to_string().contains("at most one"), "{err}");
        assert!(read::<NatsSettings>(&[("DYSCHAT_NATS_TLS_CERT", "c.pem")]).is_err());
        let c = read::<NatsSettings>(&[("DYSCHAT_NATS_TLS_CA", "ca.pem")]).unwrap();
        assert!(c.tls_required());
        assert!(read::<NatsSettings>(&[("DYSCHAT_NATS_URL", " , ")]).is_err());
        assert!(read::<RedisSettings>(&[("DYSCHAT_REDIS_USER", "app")]).is_err());
        assert!(read::<RedisSettings>(&[
            ("DYSCHAT_REDIS_USER", "app"),
            ("DYSCHAT_REDIS_PASS", "pw")
        ])
        .is_ok());
    }

    #[test]
    fn cluster_urls_split_on_commas() {
        let c =
            read::<NatsSettings>(&[("DYSCHAT_NATS_URL", "nats://a:4222, nats://b:4222,")]).unwrap();
        assert_eq!(c.servers(), vec!["nats://a:4222", "nats://b:4222"]);
    }

    #[test]
    fn redis_cluster_nodes_are_urls_on_database_0() {
        let one = read::<RedisSettings>(&[]).unwrap();
        assert!(one.cluster_nodes().is_empty(), "one Redis by default");
        let c = read::<RedisSettings>(&[(
            "DYSCHAT_REDIS_CLUSTER_NODES",
            "redis://a:7000, rediss://b:7001,",
        )])
        .unwrap();
        assert_eq!(c.cluster_nodes(), vec!["redis://a:7000", "rediss://b:7001"]);
        let err = read::<RedisSettings>(&[("DYSCHAT_REDIS_CLUSTER_NODES", "a:7000")]).unwrap_err();
        assert!(err.to_string().contains("REDIS_CLUSTER_NODES"), "{err}");
        let err = read::<RedisSettings>(&[("DYSCHAT_REDIS_CLUSTER_NODES", "redis://:pw@a:7000")])
            .unwrap_err();
        assert!(!err.to_string().contains("pw@"), "{err}");
        let err = read::<RedisSettings>(&[
            ("DYSCHAT_REDIS_CLUSTER_NODES", "redis://a:7000"),
            ("DYSCHAT_REDIS_DATABASE", "2"),
        ])
        .unwrap_err();
        assert!(err.to_string().contains("REDIS_DATABASE"), "{err}");
    }

    #[test]
    fn topology_ranges() {
        assert!(read::<TopologySettings>(&[("DYSCHAT_STREAM_REPLICAS", "0")]).is_err());
        assert!(read::<TopologySettings>(&[("DYSCHAT_STREAM_REPLICAS", "3")]).is_ok());
        assert!(read::<TopologySettings>(&[("DYSCHAT_DEDUPE_WINDOW_SECS", "0")]).is_err());
    }

    #[test]
    fn debug_never_shows_secrets() {
        let n = read::<NatsSettings>(&[("DYSCHAT_NATS_TOKEN", "s3cret-nats")]).unwrap();
        let r = read::<RedisSettings>(&[("DYSCHAT_REDIS_PASS", "s3cret-redis")]).unwrap();
        let shown = format!("{n:?} {r:?}");
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("<redacted>") && shown.contains("nats_url"));
    }
}
