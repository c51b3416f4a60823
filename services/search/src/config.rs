//! The configuration dyschat-search reads: the shared sections it needs and its own.

use dyschat_runtime::config::{
    check_log_level, check_optional_addr, Common, ConfigError, NatsSettings, Section,
    TopologySettings,
};
use serde::Deserialize;

dyschat_runtime::service_config! {
    /// What dyschat-search reads.
    pub struct Config {
        nats: NatsSettings,
        topology: TopologySettings,
        search: SearchSettings,
    }
    log_level: search.search_log_level
}

/// The variables only dyschat-search reads.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct SearchSettings {
    pub search_log_level: String,
    /// Where `/metrics` is served (`host:port`); empty (the default): nowhere.
    pub search_metrics_addr: String,
    /// The directory of this instance's index (made if missing). Each instance needs its own:
    /// an empty or missing directory is rebuilt from the stream.
    pub search_index_dir: String,
    /// The instance's name (an id): its durable consumer is `search-<instance>`.
    pub search_instance: String,
    /// How long entries wait for the next index commit at most (milliseconds): a new or edited
    /// text is searchable this long after the stream holds it, plus the commit itself.
    pub search_commit_ms: u64,
}

impl Default for SearchSettings {
    fn default() -> Self {
        SearchSettings {
            search_log_level: "info".into(),
            search_metrics_addr: String::new(),
            search_index_dir: "data/search".into(),
            search_instance: "0".into(),
            search_commit_ms: 300,
        }
    }
}

impl Section for SearchSettings {
    fn validate(&self, _common: &Common) -> Result<(), ConfigError> {
        check_log_level("SEARCH_LOG_LEVEL", &self.search_log_level)?;
        check_optional_addr("SEARCH_METRICS_ADDR", &self.search_metrics_addr)?;
        if self.search_index_dir.trim().is_empty() {
            return Err(ConfigError::var(
                "SEARCH_INDEX_DIR",
                "must name a directory",
            ));
        }
        if !dyschat_protocol::ids::is_valid_id(&self.search_instance) {
            return Err(ConfigError::var(
                "SEARCH_INSTANCE",
                "must be 1 to 64 of A-Z a-z 0-9 _ -",
            ));
        }
        if !(10..=2_000).contains(&self.search_commit_ms) {
            return Err(ConfigError::var("SEARCH_COMMIT_MS", "must be 10 to 2000"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dyschat_runtime::config::Env;

    #[test]
    fn defaults_and_bad_values() {
        let c = Config::from_env(&Env::from_pairs([("DYSCHAT_ENV_MODE", "prod")])).unwrap();
        assert_eq!(c.search.search_instance, "0");
        for (var, value) in [
            ("DYSCHAT_SEARCH_INSTANCE", "a.b"),
            ("DYSCHAT_SEARCH_INDEX_DIR", " "),
            ("DYSCHAT_SEARCH_COMMIT_MS", "0"),
            ("DYSCHAT_SEARCH_LOG_LEVEL", "loud[["),
        ] {
            assert!(
                Config::from_env(&Env::from_pairs([(var, value)])).is_err(),
                "{var}"
            );
        }
    }
}
