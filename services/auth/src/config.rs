//! The configuration dyschat-auth reads: the shared sections it needs and its own.

use std::fmt;

use dyschat_runtime::config::{
    check_auth_secret, check_log_level, check_optional_addr, redact, Common, ConfigError,
    NatsSettings, Section, TopologySettings, DEV_AUTH_SECRET,
};
use serde::Deserialize;

dyschat_runtime::service_config! {
    /// What dyschat-auth reads.
    pub struct Config {
        nats: NatsSettings,
        topology: TopologySettings,
        auth: AuthSettings,
    }
    log_level: auth.auth_log_level
}

/// The variables only auth reads.
#[derive(Clone, Deserialize)]
#[serde(default)]
pub struct AuthSettings {
    /// JWT (HS256) signing secret, shared with ws-agent.
    pub auth_secret: String,
    /// Lifetime of an issued token.
    pub token_ttl_secs: u64,
    /// Failed logins per minute per username.
    pub login_attempts_per_min: u32,
    pub auth_log_level: String,
    /// Password hashes (argon2id, 19 MiB each) computed at once; 0: one per CPU.
    pub auth_hash_concurrency: usize,
    /// How long a register or login waits for a hashing slot before it is answered
    /// `unavailable` (below ws-agent's request timeout, after which nobody waits for the answer).
    pub auth_hash_wait_ms: u64,
    /// Where `/metrics` is served (`host:port`, port 0 picks a free one); empty (the default):
    /// nowhere, so two meshes on one machine never collide.
    pub auth_metrics_addr: String,
}

impl Default for AuthSettings {
    fn default() -> Self {
        AuthSettings {
            auth_secret: DEV_AUTH_SECRET.into(),
            token_ttl_secs: 24 * 3600,
            login_attempts_per_min: 10,
            auth_log_level: "info".into(),
            auth_hash_concurrency: 0,
            auth_hash_wait_ms: 3_000,
            auth_metrics_addr: String::new(),
        }
    }
}

impl Section for AuthSettings {
    fn validate(&self, common: &Common) -> Result<(), ConfigError> {
        check_auth_secret(&self.auth_secret, common)?;
        if self.token_ttl_secs == 0 {
            return Err(ConfigError::var("TOKEN_TTL_SECS", "must be positive"));
        }
        if self.login_attempts_per_min == 0 {
            return Err(ConfigError::var(
                "LOGIN_ATTEMPTS_PER_MIN",
                "must be at least 1",
            ));
        }
        check_log_level("AUTH_LOG_LEVEL", &self.auth_log_level)?;
        if self.auth_hash_concurrency > 1024 {
            return Err(ConfigError::var(
                "AUTH_HASH_CONCURRENCY",
                "must be 0 to 1024",
            ));
        }
        if self.auth_hash_wait_ms == 0 {
            return Err(ConfigError::var("AUTH_HASH_WAIT_MS", "must be positive"));
        }
        check_optional_addr("AUTH_METRICS_ADDR", &self.auth_metrics_addr)
    }
}

impl fmt::Debug for AuthSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthSettings")
            .field("auth_secret", &redact(&self.auth_secret))
            .field("token_ttl_secs", &self.token_ttl_secs)
            .field("login_attempts_per_min", &self.login_attempts_per_min)
            .field("auth_log_level", &self.auth_log_level)
            .field("auth_hash_concurrency", &self.auth_hash_concurrency)
            .field("auth_hash_wait_ms", &self.auth_hash_wait_ms)
            .field("auth_metrics_addr", &self.auth_metrics_addr)
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
    fn defaults_and_rules() {
        let c = config(&[]).unwrap();
        assert_eq!(c.auth.login_attempts_per_min, 10);
        assert!(config(&[("DYSCHAT_ENV_MODE", "prod")]).is_err());
        assert!(config(&[("DYSCHAT_LOGIN_ATTEMPTS_PER_MIN", "0")]).is_err());
        // Variables of other services are not auth's business.
        assert!(config(&[("DYSCHAT_REDIS_DATABASE", "seven")]).is_ok());
        assert!(!format!("{c:?}").contains(DEV_AUTH_SECRET));
    }
}
