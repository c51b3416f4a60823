//! The configuration dyschat-ws-agent reads: the shared sections it needs and its own, with the
//! rules of its abuse limits and allowed origins.

use std::fmt;
use std::time::Duration;

use dyschat_runtime::config::{
    check_auth_secret, check_log_level, redact, Common, ConfigError, NatsSettings, RedisSettings,
    Section, TopologySettings, DEV_AUTH_SECRET,
};
use serde::Deserialize;

dyschat_runtime::service_config! {
    /// What dyschat-ws-agent reads.
    pub struct Config {
        nats: NatsSettings,
        redis: RedisSettings,
        topology: TopologySettings,
        agent: AgentSettings,
    }
    log_level: agent.ws_agent_log_level
}

/// The longest interval between two sends the rate limiter can express (one send per hour).
const MIN_SEND_RATE: f64 = 1.0 / 3600.0;

/// The variables only ws-agent reads.
#[derive(Clone, Deserialize)]
#[serde(default)]
pub struct AgentSettings {
    /// JWT (HS256) secret the agent verifies tokens with (auth signs with the same).
    pub auth_secret: String,
    /// Listen address (`host:port`).
    pub ws_agent_port: String,
    pub ws_agent_log_level: String,
    /// The most messages a `join` with `since` replays; beyond it `recovered` is false.
    pub recovery_limit: u64,
    /// Outbound frames a socket may have queued before it is closed with 1013.
    pub socket_queue: usize,
    /// How long a socket's write may block before the socket is closed and freed.
    pub write_timeout_secs: u64,
    /// Silence after which the server pings a socket, and then waits as long for any answer.
    pub ping_idle_secs: u64,
    /// Timeout of a request to auth or rooms.
    pub request_timeout_ms: u64,
    /// Sustained sends (WebSocket `send` and HTTP post) one user may make per second.
    pub send_rate_per_sec: f64,
    /// Sends one user may make at once before the sustained rate applies.
    pub send_burst: u32,
    /// Bytes of messages and files one user may store per day.
    pub max_bytes_per_user_per_day: u64,
    /// `join` replays (`since`) one agent reads from the stream at once.
    pub max_concurrent_replays: usize,
    /// Sustained frames and HTTP requests of every other kind one user may make per second.
    pub request_rate_per_sec: f64,
    /// Such requests one user may make at once.
    pub request_burst: u32,
    /// Login and register attempts per minute per client address. Higher than auth's per-name
    /// limit because many people may share one address (an office behind NAT).
    pub login_attempts_per_addr_per_min: u32,
    /// Open WebSockets one user may hold on one agent.
    pub max_sockets_per_user: usize,
    /// HTTP and WebSocket connections one agent holds at once.
    pub max_connections: usize,
    /// Connections one client address (an IPv6 /64 as one) may hold on one agent.
    pub max_connections_per_addr: usize,
    /// How long a request head, or the next request on an idle connection, may take.
    pub http_head_timeout_secs: u64,
    /// Requests to auth and rooms one agent may have waiting for an answer at once.
    pub max_inflight_requests: usize,
    /// The largest file an upload may store, in bytes.
    pub max_file_bytes: u64,
    /// Uploads one agent streams into the object store at once; more wait briefly, then 503.
    pub max_concurrent_uploads: usize,
    /// Downloads one agent streams at once (each holds a few chunks); more wait briefly, then
    /// 503.
    pub max_concurrent_downloads: usize,
    /// Comma-separated origins allowed to open WebSockets and to make cross-origin HTTP calls;
    /// empty: any in dev, same-origin only in prod.
    pub allowed_origins: String,
}

impl Default for AgentSettings {
    fn default() -> Self {
        AgentSettings {
            auth_secret: DEV_AUTH_SECRET.into(),
            ws_agent_port: "127.0.0.1:8080".into(),
            ws_agent_log_level: "info".into(),
            recovery_limit: 10_000,
            socket_queue: 1024,
            request_timeout_ms: 5_000,
            write_timeout_secs: 10,
            ping_idle_secs: 30,
            send_rate_per_sec: 20.0,
            send_burst: 60,
            max_bytes_per_user_per_day: 200 * 1024 * 1024,
            max_concurrent_replays: 64,
            request_rate_per_sec: 20.0,
            request_burst: 100,
            login_attempts_per_addr_per_min: 60,
            max_sockets_per_user: 20,
            max_inflight_requests: 1024,
            max_connections: 100_000,
            max_connections_per_addr: 10_000,
            http_head_timeout_secs: 30,
            max_file_bytes: dyschat_protocol::files_layout::DEFAULT_MAX_FILE_BYTES,
            max_concurrent_uploads: 16,
            max_concurrent_downloads: 256,
            allowed_origins: String::new(),
        }
    }
}

impl Section for AgentSettings {
    fn validate(&self, common: &Common) -> Result<(), ConfigError> {
        let bad = |var: &str, why: &str| Err(ConfigError::var(var, why));
        check_auth_secret(&self.auth_secret, common)?;
        if self.ws_agent_port.rsplit_once(':').is_none() {
            return bad("WS_AGENT_PORT", "must be host:port, e.g. 127.0.0.1:8080");
        }
        check_log_level("WS_AGENT_LOG_LEVEL", &self.ws_agent_log_level)?;
        if self.recovery_limit < 1000 {
            return bad("RECOVERY_LIMIT", "must be at least 1000");
        }
        if !(16..=1_000_000).contains(&self.socket_queue) {
            return bad("SOCKET_QUEUE", "must be 16 to 1000000");
        }
        if !(1..=3600).contains(&self.write_timeout_secs) {
            return bad("WRITE_TIMEOUT_SECS", "must be 1 to 3600");
        }
        if !(1..=3600).contains(&self.ping_idle_secs) {
            return bad("PING_IDLE_SECS", "must be 1 to 3600");
        }
        if self.request_timeout_ms == 0 {
            return bad("REQUEST_TIMEOUT_MS", "must be positive");
        }
        if !self.send_rate_per_sec.is_finite() || self.send_rate_per_sec < MIN_SEND_RATE {
            return bad(
                "SEND_RATE_PER_SEC",
                "must be a positive number of sends per second",
            );
        }
        if self.send_burst == 0 {
            return bad("SEND_BURST", "must be at least 1");
        }
        if !self.request_rate_per_sec.is_finite() || self.request_rate_per_sec < MIN_SEND_RATE {
            return bad(
                "REQUEST_RATE_PER_SEC",
                "must be a positive number of requests per second",
            );
        }
        if !(1024..=u64::from(u32::MAX)).contains(&self.max_bytes_per_user_per_day) {
            return bad("MAX_BYTES_PER_USER_PER_DAY", "must be 1024 to 4294967295");
        }
        if !(1..=100_000).contains(&self.max_concurrent_replays) {
            return bad("MAX_CONCURRENT_REPLAYS", "must be 1 to 100000");
        }
        if self.request_burst == 0 {
            return bad("REQUEST_BURST", "must be at least 1");
        }
        if self.login_attempts_per_addr_per_min == 0 {
            return bad("LOGIN_ATTEMPTS_PER_ADDR_PER_MIN", "must be at least 1");
        }
        if self.max_sockets_per_user == 0 {
            return bad("MAX_SOCKETS_PER_USER", "must be at least 1");
        }
        if !(1..=10_000_000).contains(&self.max_connections) {
            return bad("MAX_CONNECTIONS", "must be 1 to 10000000");
        }
        if !(1..=10_000_000).contains(&self.max_connections_per_addr) {
            return bad("MAX_CONNECTIONS_PER_ADDR", "must be 1 to 10000000");
        }
        if !(1..=3600).contains(&self.http_head_timeout_secs) {
            return bad("HTTP_HEAD_TIMEOUT_SECS", "must be 1 to 3600");
        }
        if !(1..=1_000_000).contains(&self.max_inflight_requests) {
            return bad("MAX_INFLIGHT_REQUESTS", "must be 1 to 1000000");
        }
        if !(1..=1024 * 1024 * 1024).contains(&self.max_file_bytes) {
            return bad("MAX_FILE_BYTES", "must be 1 to 1073741824");
        }
        if !(1..=10_000).contains(&self.max_concurrent_uploads) {
            return bad("MAX_CONCURRENT_UPLOADS", "must be 1 to 10000");
        }
        if !(1..=100_000).contains(&self.max_concurrent_downloads) {
            return bad("MAX_CONCURRENT_DOWNLOADS", "must be 1 to 100000");
        }
        for origin in self.allowed_origins() {
            if let Err(why) = check_origin(&origin) {
                return Err(ConfigError::var(
                    "ALLOWED_ORIGINS",
                    format!("`{origin}` {why}"),
                ));
            }
        }
        Ok(())
    }
}

impl AgentSettings {
    /// The allowed origins, normalized (lower case, no trailing `/`); empty when none is set.
    pub(crate) fn allowed_origins(&self) -> Vec<String> {
        self.allowed_origins
            .split(',')
            .map(normalize_origin)
            .filter(|o| !o.is_empty())
            .collect()
    }

    pub(crate) fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }
}

/// The form origins are compared in: trimmed, lower case, without a trailing `/`. Browsers send
/// `scheme://host[:port]` exactly, so this is enough to compare a configured entry with a header.
pub(crate) fn normalize_origin(origin: &str) -> String {
    origin.trim().trim_end_matches('/').to_ascii_lowercase()
}

/// An allowed origin must be `http(s)://host[:port]`: a wildcard or a path would never match what
/// a browser sends, and `*` would defeat the allow-list.
fn check_origin(origin: &str) -> Result<(), &'static str> {
    let rest = origin
        .strip_prefix("https://")
        .or_else(|| origin.strip_prefix("http://"))
        .ok_or("must start with http:// or https://")?;
    if rest.is_empty()
        || rest.contains(['/', '*', '?', '#', '@'])
        || rest.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err("must be scheme://host[:port] with no path or wildcard");
    }
    Ok(())
}

impl fmt::Debug for AgentSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AgentSettings")
            .field("auth_secret", &redact(&self.auth_secret))
            .field("ws_agent_port", &self.ws_agent_port)
            .field("ws_agent_log_level", &self.ws_agent_log_level)
            .field("recovery_limit", &self.recovery_limit)
            .field("socket_queue", &self.socket_queue)
            .field("request_timeout_ms", &self.request_timeout_ms)
            .field("write_timeout_secs", &self.write_timeout_secs)
            .field("ping_idle_secs", &self.ping_idle_secs)
            .field("send_rate_per_sec", &self.send_rate_per_sec)
            .field("send_burst", &self.send_burst)
            .field(
                "max_bytes_per_user_per_day",
                &self.max_bytes_per_user_per_day,
            )
            .field("max_concurrent_replays", &self.max_concurrent_replays)
            .field("request_rate_per_sec", &self.request_rate_per_sec)
            .field("request_burst", &self.request_burst)
            .field(
                "login_attempts_per_addr_per_min",
                &self.login_attempts_per_addr_per_min,
            )
            .field("max_sockets_per_user", &self.max_sockets_per_user)
            .field("max_inflight_requests", &self.max_inflight_requests)
            .field("max_connections", &self.max_connections)
            .field("max_connections_per_addr", &self.max_connections_per_addr)
            .field("http_head_timeout_secs", &self.http_head_timeout_secs)
            .field("max_file_bytes", &self.max_file_bytes)
            .field("max_concurrent_uploads", &self.max_concurrent_uploads)
            .field("max_concurrent_downloads", &self.max_concurrent_downloads)
            .field("allowed_origins", &self.allowed_origins)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dyschat_runtime::Env;

    fn config(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        Config::from_env(&Env::from_pairs(pairs.iter().copied()))
    }

    #[test]
    fn limits_have_defaults_and_refuse_nonsense() {
        let c = config(&[]).unwrap().agent;
        assert_eq!(c.send_rate_per_sec, 20.0);
        assert_eq!(c.send_burst, 60);
        assert_eq!(c.max_sockets_per_user, 20);
        assert_eq!(c.max_inflight_requests, 1024);
        assert_eq!(c.ws_agent_port, "127.0.0.1:8080");
        assert!(c.allowed_origins().is_empty());
        for (var, value) in [
            ("DYSCHAT_SEND_RATE_PER_SEC", "0"),
            ("DYSCHAT_SEND_RATE_PER_SEC", "-1"),
            ("DYSCHAT_SEND_RATE_PER_SEC", "NaN"),
            ("DYSCHAT_SEND_BURST", "0"),
            ("DYSCHAT_MAX_SOCKETS_PER_USER", "0"),
            ("DYSCHAT_MAX_INFLIGHT_REQUESTS", "0"),
            ("DYSCHAT_RECOVERY_LIMIT", "10"),
            ("DYSCHAT_SOCKET_QUEUE", "1"),
            ("DYSCHAT_WS_AGENT_PORT", "8080"),
        ] {
            let err = config(&[(var, value)]).unwrap_err().to_string();
            assert!(err.contains(var), "{var}={value}: {err}");
        }
        let c = config(&[("DYSCHAT_SEND_RATE_PER_SEC", "0.5")]).unwrap();
        assert_eq!(c.agent.send_rate_per_sec, 0.5);
    }

    #[test]
    fn origins_are_exact_and_never_wildcards() {
        let c = config(&[(
            "DYSCHAT_ALLOWED_ORIGINS",
            " https://Chat.Example.com/ , http://localhost:8080,",
        )])
        .unwrap();
        assert_eq!(
            c.agent.allowed_origins(),
            vec!["https://chat.example.com", "http://localhost:8080"]
        );
        for bad in [
            "*",
            "chat.example.com",
            "https://*.example.com",
            "https://a.com/x",
        ] {
            let err = config(&[("DYSCHAT_ALLOWED_ORIGINS", bad)]).unwrap_err();
            assert!(err.to_string().contains("DYSCHAT_ALLOWED_ORIGINS"), "{bad}");
        }
    }

    #[test]
    fn prod_refuses_weak_secrets_and_debug_hides_them() {
        let err = config(&[("DYSCHAT_ENV_MODE", "prod")]).unwrap_err();
        assert!(err.to_string().contains("DYSCHAT_AUTH_SECRET"));
        let c = config(&[("DYSCHAT_AUTH_SECRET", "s3cret-auth")]).unwrap();
        assert!(!format!("{c:?}").contains("s3cret"));
    }
}
