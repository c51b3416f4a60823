//! The configuration dyschat-msg-writer reads: the shared sections it needs and its own.

use dyschat_runtime::config::{
    check_log_level, check_optional_addr, Common, ConfigError, NatsSettings, RedisSettings,
    Section, TopologySettings,
};
use serde::Deserialize;

dyschat_runtime::service_config! {
    /// What dyschat-msg-writer reads.
    pub struct Config {
        nats: NatsSettings,
        redis: RedisSettings,
        topology: TopologySettings,
        writer: WriterSettings,
    }
    log_level: writer.msg_writer_log_level
}

/// The variables only msg-writer reads.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct WriterSettings {
    pub msg_writer_log_level: String,
    /// Where `/metrics` is served (`host:port`, port 0 picks a free one); empty (the default):
    /// nowhere, so two meshes on one machine never collide.
    pub msg_writer_metrics_addr: String,
}

impl Default for WriterSettings {
    fn default() -> Self {
        WriterSettings {
            msg_writer_log_level: "info".into(),
            msg_writer_metrics_addr: String::new(),
        }
    }
}

impl Section for WriterSettings {
    fn validate(&self, _common: &Common) -> Result<(), ConfigError> {
        check_log_level("MSG_WRITER_LOG_LEVEL", &self.msg_writer_log_level)?;
        check_optional_addr("MSG_WRITER_METRICS_ADDR", &self.msg_writer_metrics_addr)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dyschat_runtime::config::Env;

    #[test]
    fn prod_needs_no_auth_secret() {
        // The writer never signs or checks a token, so prod must not ask it for a secret.
        let env = Env::from_pairs([("DYSCHAT_ENV_MODE", "prod")]);
        assert!(Config::from_env(&env).is_ok());
        let bad = Env::from_pairs([("DYSCHAT_REDIS_TIMEOUT_MS", "0")]);
        assert!(Config::from_env(&bad).is_err());
    }
}
