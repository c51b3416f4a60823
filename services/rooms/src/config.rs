//! The configuration dyschat-rooms reads: the shared sections it needs and its own.

use dyschat_runtime::config::{
    check_log_level, check_optional_addr, Common, ConfigError, NatsSettings, Section,
    TopologySettings,
};
use serde::Deserialize;

dyschat_runtime::service_config! {
    /// What dyschat-rooms reads.
    pub struct Config {
        nats: NatsSettings,
        topology: TopologySettings,
        rooms: RoomsSettings,
    }
    log_level: rooms.rooms_log_level
}

/// The variables only rooms reads.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct RoomsSettings {
    pub rooms_log_level: String,
    /// Where `/metrics` is served (`host:port`, port 0 picks a free one); empty (the default):
    /// nowhere, so two meshes on one machine never collide.
    pub rooms_metrics_addr: String,
}

impl Default for RoomsSettings {
    fn default() -> Self {
        RoomsSettings {
            rooms_log_level: "info".into(),
            rooms_metrics_addr: String::new(),
        }
    }
}

impl Section for RoomsSettings {
    fn validate(&self, _common: &Common) -> Result<(), ConfigError> {
        check_log_level("ROOMS_LOG_LEVEL", &self.rooms_log_level)?;
        check_optional_addr("ROOMS_METRICS_ADDR", &self.rooms_metrics_addr)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dyschat_runtime::Env;

    #[test]
    fn reads_only_its_own_variables() {
        let env = Env::from_pairs([
            ("DYSCHAT_ENV_MODE", "prod"),
            ("DYSCHAT_ROOMS_METRICS_ADDR", ""),
        ]);
        // prod without a strong DYSCHAT_AUTH_SECRET: not rooms' concern.
        let c = Config::from_env(&env).unwrap();
        assert!(c.rooms.rooms_metrics_addr.is_empty());
        let bad = Env::from_pairs([("DYSCHAT_ROOMS_LOG_LEVEL", "loud[")]);
        assert!(Config::from_env(&bad).is_err());
    }
}
