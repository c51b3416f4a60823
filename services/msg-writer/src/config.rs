//! The configuration dyschat-msg-writer reads: the shared sections it needs and its own.

use dyschat_runtime::config::{
    check_log_level, check_optional_addr, Common, ConfigError, Env, NatsSettings, RedisSettings,
    Section, TopologySettings,
};
use serde::Deserialize;

#[derive(Debug, Clone)]
pub struct Config {
    pub common: Common,
    pub nats: NatsSettings,
    pub redis: RedisSettings,
    pub topology: TopologySettings,
    pub writer: WriterSettings,
}

impl Config {
    pub fn from_env(env: &Env) -> Result<Config, ConfigError> {
        let common = env.common()?;
        Ok(Config {
            nats: env.section(&common)?,
            redis: env.section(&common)?,
            topology: env.section(&common)?,
            writer: env.section(&common)?,
            common,
        })
    }
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

impl dyschat_runtime::process::ServiceConfig for Config {
    fn common(&self) -> &Common {
        &self.common
    }

    fn log_level(&self) -> &str {
        &self.writer.msg_writer_log_level
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prod_needs_no_auth_secret() {
        // The writer never signs or checks a token, so prod must not ask it for a secret.
        let env = Env::from_pairs([("DYSCHAT_ENV_MODE", "prod")]);
        assert!(Config::from_env(&env).is_ok());
        let bad = Env::from_pairs([("DYSCHAT_REDIS_TIMEOUT_MS", "0")]);
        assert!(Config::from_env(&bad).is_err());
    }
}
