//! The security side of [`Config`]: abuse limits, allowed origins and the NATS/Redis credentials,
//! their validation, and a `Debug` that never prints a secret.
//!
//! Kept apart from `config.rs` so the plain settings stay readable; the rules here are the ones an
//! operator is most likely to get wrong, so each failure names its variable and says what to do.

use std::fmt;

use super::{Config, ConfigError};

/// The longest interval between two sends the rate limiter can express (one send per hour).
const MIN_SEND_RATE: f64 = 1.0 / 3600.0;

impl Config {
    /// Checks the limits, origins and credentials (called by [`Config::validate`]).
    pub(super) fn validate_security(&self) -> Result<(), ConfigError> {
        let bad = |var: &str, why: &str| Err(ConfigError(format!("DYSCHAT_{var}: {why}")));
        if !self.send_rate_per_sec.is_finite() || self.send_rate_per_sec < MIN_SEND_RATE {
            return bad(
                "SEND_RATE_PER_SEC",
                "must be a positive number of sends per second",
            );
        }
        if self.send_burst == 0 {
            return bad("SEND_BURST", "must be at least 1");
        }
        if self.login_attempts_per_min == 0 {
            return bad("LOGIN_ATTEMPTS_PER_MIN", "must be at least 1");
        }
        if self.login_attempts_per_addr_per_min == 0 {
            return bad("LOGIN_ATTEMPTS_PER_ADDR_PER_MIN", "must be at least 1");
        }
        if self.max_sockets_per_user == 0 {
            return bad("MAX_SOCKETS_PER_USER", "must be at least 1");
        }
        if !(1..=1_000_000).contains(&self.max_inflight_requests) {
            return bad("MAX_INFLIGHT_REQUESTS", "must be 1 to 1000000");
        }
        for origin in self.allowed_origins() {
            if let Err(why) = check_origin(&origin) {
                return Err(ConfigError(format!(
                    "DYSCHAT_ALLOWED_ORIGINS: `{origin}` {why}"
                )));
            }
        }
        self.validate_credentials()
    }

    fn validate_credentials(&self) -> Result<(), ConfigError> {
        let bad = |var: &str, why: &str| Err(ConfigError(format!("DYSCHAT_{var}: {why}")));
        let set = |s: &str| !s.trim().is_empty();
        if set(&self.nats_user) != set(&self.nats_password) {
            return bad("NATS_USER / DYSCHAT_NATS_PASSWORD", "give both or neither");
        }
        let methods = [
            set(&self.nats_user),
            set(&self.nats_token),
            set(&self.nats_creds_file),
        ];
        if methods.iter().filter(|m| **m).count() > 1 {
            return bad(
                "NATS_USER / DYSCHAT_NATS_TOKEN / DYSCHAT_NATS_CREDS_FILE",
                "use at most one way to authenticate to NATS",
            );
        }
        if set(&self.nats_tls_cert) != set(&self.nats_tls_key) {
            return bad(
                "NATS_TLS_CERT / DYSCHAT_NATS_TLS_KEY",
                "a client certificate needs its key: give both or neither",
            );
        }
        if set(&self.redis_user) && self.redis_pass.is_empty() {
            return bad("REDIS_USER", "needs DYSCHAT_REDIS_PASS");
        }
        Ok(())
    }

    /// The allowed origins, normalized (lower case, no trailing `/`); empty when none is set.
    pub fn allowed_origins(&self) -> Vec<String> {
        self.allowed_origins
            .split(',')
            .map(normalize_origin)
            .filter(|o| !o.is_empty())
            .collect()
    }

    /// Whether connections to NATS must use TLS: a root CA is configured.
    pub fn nats_tls_required(&self) -> bool {
        !self.nats_tls_ca.trim().is_empty()
    }
}

/// The form origins are compared in: trimmed, lower case, without a trailing `/`. Browsers send
/// `scheme://host[:port]` exactly, so this is enough to compare a configured entry with a header.
pub fn normalize_origin(origin: &str) -> String {
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

/// Shows `<set>` or `""` for a secret, never its value.
fn redact(secret: &str) -> &'static str {
    if secret.is_empty() {
        "\"\""
    } else {
        "<redacted>"
    }
}

struct Raw(&'static str);

impl fmt::Debug for Raw {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("env_mode", &self.env_mode)
            .field("nats_url", &self.nats_url)
            .field("redis_addr", &self.redis_addr)
            .field("redis_user", &self.redis_user)
            .field("redis_pass", &Raw(redact(&self.redis_pass)))
            .field("redis_database", &self.redis_database)
            .field("jaeger_url", &self.jaeger_url)
            .field("auth_secret", &Raw(redact(&self.auth_secret)))
            .field("ws_agent_port", &self.ws_agent_port)
            .field("auth_log_level", &self.auth_log_level)
            .field("rooms_log_level", &self.rooms_log_level)
            .field("msg_writer_log_level", &self.msg_writer_log_level)
            .field("ws_agent_log_level", &self.ws_agent_log_level)
            .field("connect_timeout_secs", &self.connect_timeout_secs)
            .field("stream_replicas", &self.stream_replicas)
            .field("recovery_limit", &self.recovery_limit)
            .field("socket_queue", &self.socket_queue)
            .field("request_timeout_ms", &self.request_timeout_ms)
            .field("redis_timeout_ms", &self.redis_timeout_ms)
            .field("token_ttl_secs", &self.token_ttl_secs)
            .field("dedupe_window_secs", &self.dedupe_window_secs)
            .field("drain_timeout_secs", &self.drain_timeout_secs)
            .field("send_rate_per_sec", &self.send_rate_per_sec)
            .field("send_burst", &self.send_burst)
            .field("login_attempts_per_min", &self.login_attempts_per_min)
            .field(
                "login_attempts_per_addr_per_min",
                &self.login_attempts_per_addr_per_min,
            )
            .field("max_sockets_per_user", &self.max_sockets_per_user)
            .field("max_inflight_requests", &self.max_inflight_requests)
            .field("allowed_origins", &self.allowed_origins)
            .field("nats_user", &self.nats_user)
            .field("nats_password", &Raw(redact(&self.nats_password)))
            .field("nats_token", &Raw(redact(&self.nats_token)))
            .field("nats_creds_file", &self.nats_creds_file)
            .field("nats_tls_ca", &self.nats_tls_ca)
            .field("nats_tls_cert", &self.nats_tls_cert)
            .field("nats_tls_key", &self.nats_tls_key)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        Config::from_iter(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())))
    }

    #[test]
    fn limits_have_defaults_and_refuse_nonsense() {
        let c = config(&[]).unwrap();
        assert_eq!(c.send_rate_per_sec, 20.0);
        assert_eq!(c.send_burst, 60);
        assert_eq!(c.login_attempts_per_min, 10);
        assert_eq!(c.max_sockets_per_user, 20);
        assert_eq!(c.max_inflight_requests, 1024);
        assert!(c.allowed_origins().is_empty());
        for (var, value) in [
            ("DYSCHAT_SEND_RATE_PER_SEC", "0"),
            ("DYSCHAT_SEND_RATE_PER_SEC", "-1"),
            ("DYSCHAT_SEND_RATE_PER_SEC", "NaN"),
            ("DYSCHAT_SEND_BURST", "0"),
            ("DYSCHAT_LOGIN_ATTEMPTS_PER_MIN", "0"),
            ("DYSCHAT_MAX_SOCKETS_PER_USER", "0"),
            ("DYSCHAT_MAX_INFLIGHT_REQUESTS", "0"),
        ] {
            let err = config(&[(var, value)]).unwrap_err().to_string();
            assert!(err.contains(var), "{var}={value}: {err}");
        }
        let c = config(&[("DYSCHAT_SEND_RATE_PER_SEC", "0.5")]).unwrap();
        assert_eq!(c.send_rate_per_sec, 0.5);
    }

    #[test]
    fn origins_are_exact_and_never_wildcards() {
        let c = config(&[(
            "DYSCHAT_ALLOWED_ORIGINS",
            " https://Chat.Example.com/ , http://localhost:8080,",
        )])
        .unwrap();
        assert_eq!(
            c.allowed_origins(),
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
    fn nats_credentials_are_one_method_at_most() {
        assert!(config(&[("DYSCHAT_NATS_USER", "svc")]).is_err());
        assert!(config(&[("DYSCHAT_NATS_PASSWORD", "pw")]).is_err());
        assert!(config(&[
            ("DYSCHAT_NATS_USER", "svc"),
            ("DYSCHAT_NATS_PASSWORD", "pw")
        ])
        .is_ok());
        assert!(config(&[("DYSCHAT_NATS_TOKEN", "t")]).is_ok());
        let err = config(&[
            ("DYSCHAT_NATS_TOKEN", "t"),
            ("DYSCHAT_NATS_CREDS_FILE", "x"),
        ])
        .unwrap_err();
        assert!(err.to_string().contains("at most one"), "{err}");
        assert!(config(&[
            ("DYSCHAT_NATS_USER", "svc"),
            ("DYSCHAT_NATS_PASSWORD", "pw"),
            ("DYSCHAT_NATS_TOKEN", "t")
        ])
        .is_err());
        assert!(config(&[("DYSCHAT_NATS_TLS_CERT", "c.pem")]).is_err());
        let c = config(&[("DYSCHAT_NATS_TLS_CA", "ca.pem")]).unwrap();
        assert!(c.nats_tls_required());
        assert!(config(&[("DYSCHAT_REDIS_USER", "app")]).is_err());
        assert!(config(&[("DYSCHAT_REDIS_USER", "app"), ("DYSCHAT_REDIS_PASS", "pw")]).is_ok());
    }

    #[test]
    fn debug_never_shows_secrets() {
        let c = config(&[
            ("DYSCHAT_AUTH_SECRET", "s3cret-auth"),
            ("DYSCHAT_REDIS_PASS", "s3cret-redis"),
            ("DYSCHAT_NATS_TOKEN", "s3cret-nats"),
        ])
        .unwrap();
        let shown = format!("{c:?}");
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("<redacted>") && shown.contains("nats_url"));
    }
}
