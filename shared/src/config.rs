//! Configuration from `DYSCHAT_*` environment variables (read with `envy`).
//!
//! Every service reads the same struct so that one variable means one thing everywhere; a service
//! simply ignores what it does not use. Errors name the variable, so an operator can fix it from the
//! one line the service prints before it exits.

use std::time::Duration;

use serde::Deserialize;

mod security;

pub use security::normalize_origin;

/// The JWT secret used when none is configured. `prod` refuses to start with it.
pub const DEV_AUTH_SECRET: &str = "dyschat-dev-secret-do-not-use-in-production";

/// The shortest secret `prod` accepts, in bytes.
pub const MIN_PROD_SECRET_LEN: usize = 32;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum EnvMode {
    #[default]
    Dev,
    Prod,
}

/// Which service is asking; selects the `DYSCHAT_<SERVICE>_LOG_LEVEL` variable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServiceName {
    Auth,
    Rooms,
    MsgWriter,
    WsAgent,
}

impl ServiceName {
    pub const ALL: [ServiceName; 4] = [
        ServiceName::Auth,
        ServiceName::Rooms,
        ServiceName::MsgWriter,
        ServiceName::WsAgent,
    ];

    /// The service called `name` (as [`as_str`](Self::as_str) spells it).
    pub fn from_name(name: &str) -> Option<ServiceName> {
        Self::ALL.into_iter().find(|s| s.as_str() == name)
    }

    /// The `service.name` used in logs and traces.
    pub fn as_str(self) -> &'static str {
        match self {
            ServiceName::Auth => "dyschat-auth",
            ServiceName::Rooms => "dyschat-rooms",
            ServiceName::MsgWriter => "dyschat-msg-writer",
            ServiceName::WsAgent => "dyschat-ws-agent",
        }
    }
}

/// Secrets (`auth_secret`, passwords, tokens) are redacted from its `Debug` output
/// (see [`security`]), so a logged configuration never leaks them.
#[derive(Clone, Deserialize)]
#[serde(default)]
pub struct Config {
    #[serde(deserialize_with = "env_mode")]
    pub env_mode: EnvMode,
    /// One URL or a comma-separated list (a cluster).
    pub nats_url: String,
    pub redis_addr: String,
    pub redis_pass: String,
    pub redis_database: u32,
    pub jaeger_url: String,
    pub auth_secret: String,
    /// Listen address (`host:port`) of the ws-agent.
    pub ws_agent_port: String,
    pub auth_log_level: String,
    pub rooms_log_level: String,
    pub msg_writer_log_level: String,
    pub ws_agent_log_level: String,

    // Additions beyond the contract's table, each documented in the README.
    /// How long a service keeps trying to reach NATS or Redis at start before giving up.
    pub connect_timeout_secs: u64,
    /// Replicas of every stream and bucket (3 on a three-node cluster).
    pub stream_replicas: usize,
    /// The most messages a `join` with `since` replays; beyond it `recovered` is false.
    pub recovery_limit: u64,
    /// Outbound frames a socket may have queued before it is closed with 1013.
    pub socket_queue: usize,
    /// Timeout of a request from ws-agent to auth or rooms.
    pub request_timeout_ms: u64,
    /// How long one Redis command may take before it fails (and is retried or answered 503).
    pub redis_timeout_ms: u64,
    /// Lifetime of an issued token.
    pub token_ttl_secs: u64,
    /// JetStream de-duplication window for `client_msg_id` retries.
    pub dedupe_window_secs: u64,
    /// How long SIGTERM waits for in-flight work before exiting anyway.
    pub drain_timeout_secs: u64,

    // Abuse limits (ws-agent and auth); see `security` for their rules.
    /// Sustained sends (WebSocket `send` and HTTP post) one user may make per second, per agent.
    pub send_rate_per_sec: f64,
    /// Sends one user may make at once before the sustained rate applies.
    pub send_burst: u32,
    /// Failed logins per minute per username (auth).
    pub login_attempts_per_min: u32,
    /// Login and register attempts per minute per client address (ws-agent). Higher than the
    /// per-name limit because many people may share one address (an office behind NAT).
    pub login_attempts_per_addr_per_min: u32,
    /// Open WebSockets one user may hold on one agent.
    pub max_sockets_per_user: usize,
    /// Requests to auth and rooms one agent may have waiting for an answer at once.
    pub max_inflight_requests: usize,
    /// Comma-separated origins (`https://chat.example.com`) allowed to open WebSockets and to
    /// make cross-origin HTTP calls; empty: any in dev, same-origin only in prod.
    pub allowed_origins: String,

    // NATS and Redis credentials; empty means not used.
    pub nats_user: String,
    pub nats_password: String,
    pub nats_token: String,
    /// A `.creds` file (user JWT and NKey seed).
    pub nats_creds_file: String,
    /// Root CA (PEM) that the NATS server's certificate must chain to; setting it requires TLS.
    pub nats_tls_ca: String,
    /// Client certificate and key (PEM) for mutual TLS; both or neither.
    pub nats_tls_cert: String,
    pub nats_tls_key: String,
    /// Redis ACL user (needs `DYSCHAT_REDIS_PASS`).
    pub redis_user: String,

    // Prometheus endpoints of the services without an HTTP port (ws-agent serves `/metrics` on
    // `DYSCHAT_WS_AGENT_PORT`). `host:port`; empty turns the endpoint off.
    pub auth_metrics_addr: String,
    pub rooms_metrics_addr: String,
    pub msg_writer_metrics_addr: String,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            env_mode: EnvMode::Dev,
            nats_url: "nats://127.0.0.1:4222".into(),
            redis_addr: "127.0.0.1:6379".into(),
            redis_pass: String::new(),
            redis_database: 0,
            jaeger_url: String::new(),
            auth_secret: DEV_AUTH_SECRET.into(),
            ws_agent_port: "127.0.0.1:8080".into(),
            auth_log_level: "info".into(),
            rooms_log_level: "info".into(),
            msg_writer_log_level: "info".into(),
            ws_agent_log_level: "info".into(),
            connect_timeout_secs: 30,
            stream_replicas: 1,
            recovery_limit: 10_000,
            socket_queue: 1024,
            request_timeout_ms: 5_000,
            redis_timeout_ms: 5_000,
            token_ttl_secs: 24 * 3600,
            dedupe_window_secs: 600,
            drain_timeout_secs: 10,
            send_rate_per_sec: 20.0,
            send_burst: 60,
            login_attempts_per_min: 10,
            login_attempts_per_addr_per_min: 60,
            max_sockets_per_user: 20,
            max_inflight_requests: 1024,
            allowed_origins: String::new(),
            nats_user: String::new(),
            nats_password: String::new(),
            nats_token: String::new(),
            nats_creds_file: String::new(),
            nats_tls_ca: String::new(),
            nats_tls_cert: String::new(),
            nats_tls_key: String::new(),
            redis_user: String::new(),
            auth_metrics_addr: "127.0.0.1:9101".into(),
            rooms_metrics_addr: "127.0.0.1:9102".into(),
            msg_writer_metrics_addr: "127.0.0.1:9103".into(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {0}")]
pub struct ConfigError(pub String);

impl Config {
    /// Reads the `DYSCHAT_*` variables of this process.
    pub fn from_env() -> Result<Config, ConfigError> {
        Self::from_iter(std::env::vars())
    }

    /// Reads configuration from explicit pairs (tests use this instead of touching the process
    /// environment).
    #[allow(clippy::should_implement_trait)] // a fallible constructor, not `FromIterator`
    pub fn from_iter<I: IntoIterator<Item = (String, String)>>(
        vars: I,
    ) -> Result<Config, ConfigError> {
        let config: Config = envy::prefixed("DYSCHAT_")
            .from_iter(vars)
            .map_err(|e| ConfigError(name_the_variable(&e.to_string())))?;
        config.validate()?;
        Ok(config)
    }

    /// Checks what serde cannot: ranges and the `prod` rules.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |var: &str, why: &str| Err(ConfigError(format!("DYSCHAT_{var}: {why}")));
        if self.nats_url.split(',').all(|u| u.trim().is_empty()) {
            return bad("NATS_URL", "must name at least one server");
        }
        if self.redis_addr.trim().is_empty() {
            return bad("REDIS_ADDR", "must not be empty");
        }
        if self.ws_agent_port.rsplit_once(':').is_none() {
            return bad("WS_AGENT_PORT", "must be host:port, e.g. 127.0.0.1:8080");
        }
        if self.auth_secret.is_empty() {
            return bad("AUTH_SECRET", "must not be empty");
        }
        if self.env_mode == EnvMode::Prod {
            if self.auth_secret == DEV_AUTH_SECRET {
                return bad("AUTH_SECRET", "the development secret is refused in prod");
            }
            if self.auth_secret.len() < MIN_PROD_SECRET_LEN {
                return bad("AUTH_SECRET", "must be at least 32 bytes in prod");
            }
        }
        if !(1..=5).contains(&self.stream_replicas) {
            return bad("STREAM_REPLICAS", "must be 1 to 5");
        }
        if self.recovery_limit < 1000 {
            return bad("RECOVERY_LIMIT", "must be at least 1000");
        }
        if !(16..=1_000_000).contains(&self.socket_queue) {
            return bad("SOCKET_QUEUE", "must be 16 to 1000000");
        }
        if self.request_timeout_ms == 0 || self.token_ttl_secs == 0 || self.redis_timeout_ms == 0 {
            return bad(
                "REQUEST_TIMEOUT_MS / TOKEN_TTL_SECS / REDIS_TIMEOUT_MS",
                "must be positive",
            );
        }
        if self.dedupe_window_secs == 0 {
            return bad("DEDUPE_WINDOW_SECS", "must be positive");
        }
        self.validate_security()?;
        for (var, addr) in [
            ("AUTH_METRICS_ADDR", &self.auth_metrics_addr),
            ("ROOMS_METRICS_ADDR", &self.rooms_metrics_addr),
            ("MSG_WRITER_METRICS_ADDR", &self.msg_writer_metrics_addr),
        ] {
            if !addr.trim().is_empty() && addr.rsplit_once(':').is_none() {
                return bad(
                    var,
                    "must be host:port, e.g. 127.0.0.1:9101, or empty for none",
                );
            }
        }
        for (var, level) in [
            ("AUTH_LOG_LEVEL", &self.auth_log_level),
            ("ROOMS_LOG_LEVEL", &self.rooms_log_level),
            ("MSG_WRITER_LOG_LEVEL", &self.msg_writer_log_level),
            ("WS_AGENT_LOG_LEVEL", &self.ws_agent_log_level),
        ] {
            if level
                .parse::<tracing_subscriber::filter::EnvFilter>()
                .is_err()
            {
                return bad(
                    var,
                    "must be a level (error, warn, info, debug, trace) or a filter",
                );
            }
        }
        Ok(())
    }

    pub fn log_level(&self, service: ServiceName) -> &str {
        match service {
            ServiceName::Auth => &self.auth_log_level,
            ServiceName::Rooms => &self.rooms_log_level,
            ServiceName::MsgWriter => &self.msg_writer_log_level,
            ServiceName::WsAgent => &self.ws_agent_log_level,
        }
    }

    /// Where `service` serves `/metrics` of its own, if anywhere (ws-agent: on its HTTP port).
    pub fn metrics_addr(&self, service: ServiceName) -> Option<&str> {
        let addr = match service {
            ServiceName::Auth => &self.auth_metrics_addr,
            ServiceName::Rooms => &self.rooms_metrics_addr,
            ServiceName::MsgWriter => &self.msg_writer_metrics_addr,
            ServiceName::WsAgent => return None,
        };
        Some(addr.trim()).filter(|a| !a.is_empty())
    }

    pub fn nats_servers(&self) -> Vec<String> {
        self.nats_url
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect()
    }

    pub fn connect_timeout(&self) -> Duration {
        Duration::from_secs(self.connect_timeout_secs)
    }

    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
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

/// envy reports a bad value as "... provided by redis_database"; turn that into the variable name
/// an operator actually set.
fn name_the_variable(message: &str) -> String {
    match message.rsplit_once("provided by ") {
        Some((head, key)) => format!(
            "DYSCHAT_{}: {}",
            key.trim().to_uppercase(),
            head.trim_end()
                .trim_end_matches("while parsing value")
                .trim_end()
        ),
        None => message.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_match_the_contract() {
        let c = Config::from_iter(Vec::new()).expect("defaults are valid");
        assert_eq!(c.env_mode, EnvMode::Dev);
        assert_eq!(c.nats_url, "nats://127.0.0.1:4222");
        assert_eq!(c.redis_addr, "127.0.0.1:6379");
        assert_eq!(c.redis_database, 0);
        assert_eq!(c.ws_agent_port, "127.0.0.1:8080");
        assert_eq!(c.ws_agent_log_level, "info");
    }

    #[test]
    fn a_bad_value_names_its_variable() {
        let err = Config::from_iter(vars(&[("DYSCHAT_REDIS_DATABASE", "seven")])).unwrap_err();
        assert!(err.to_string().contains("DYSCHAT_REDIS_DATABASE"), "{err}");
        let err = Config::from_iter(vars(&[("DYSCHAT_ENV_MODE", "staging")])).unwrap_err();
        assert!(err.to_string().contains("DYSCHAT_ENV_MODE"), "{err}");
    }

    #[test]
    fn prod_refuses_weak_secrets() {
        let err = Config::from_iter(vars(&[("DYSCHAT_ENV_MODE", "prod")])).unwrap_err();
        assert!(err.to_string().contains("DYSCHAT_AUTH_SECRET"));
        let err = Config::from_iter(vars(&[
            ("DYSCHAT_ENV_MODE", "prod"),
            ("DYSCHAT_AUTH_SECRET", "short"),
        ]))
        .unwrap_err();
        assert!(err.to_string().contains("32 bytes"));
        let ok = Config::from_iter(vars(&[
            ("DYSCHAT_ENV_MODE", "prod"),
            ("DYSCHAT_AUTH_SECRET", "0123456789abcdef0123456789abcdef!"),
        ]));
        assert!(ok.is_ok());
    }

    #[test]
    fn cluster_urls_split_on_commas() {
        let c = Config::from_iter(vars(&[(
            "DYSCHAT_NATS_URL",
            "nats://a:4222, nats://b:4222,",
        )]))
        .unwrap();
        assert_eq!(c.nats_servers(), vec!["nats://a:4222", "nats://b:4222"]);
    }
}
