//! The configuration dyschat-rooms reads: the shared sections it needs and its own.

use dyschat_runtime::config::{
    check_log_level, check_optional_addr, Common, ConfigError, NatsSettings, Section,
    TopologySettings,
};
use serde::Deserialize;
use std::time::Duration;

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
    /// `DYSCHAT_MAX_ROOMS_PER_USER`: rooms one user owns at once; past it, creating (or being
    /// handed) one more is 429 for that user.
    pub max_rooms_per_user: u64,
    /// `DYSCHAT_MAX_ROOMS_JOINED`: rooms (direct ones included) one user is a member of; past
    /// it, joining, creating or opening one more is 429 for that user.
    pub max_rooms_joined: u64,
    /// How long a kick, ban or deletion waits for every live ws-agent to confirm that the
    /// sockets concerned stopped receiving the room, before it is answered anyway.
    pub rooms_evict_timeout_ms: u64,
    /// How many entries of the room index one list request reads at most (a list with a rare
    /// `q` answers a short page with a `next_cursor` after this many, so no request scans every
    /// room).
    pub rooms_list_scan: usize,
    /// `DYSCHAT_FILE_UNATTACHED_SECS`: how long an uploaded file may stay attached to no
    /// message before the sweep removes it.
    pub file_unattached_secs: u64,
    /// `DYSCHAT_FILE_SWEEP_SECS`: how often the sweep of unattached files runs.
    pub file_sweep_secs: u64,
}

impl Default for RoomsSettings {
    fn default() -> Self {
        RoomsSettings {
            rooms_log_level: "info".into(),
            rooms_metrics_addr: String::new(),
            max_rooms_per_user: 100,
            max_rooms_joined: 1000,
            rooms_evict_timeout_ms: 2000,
            rooms_list_scan: 5000,
            file_unattached_secs: 86_400,
            file_sweep_secs: 60,
        }
    }
}

impl RoomsSettings {
    pub(crate) fn file_sweep(&self) -> crate::files::SweepSettings {
        crate::files::SweepSettings {
            period: Duration::from_secs(self.file_sweep_secs),
            unattached: Duration::from_secs(self.file_unattached_secs),
        }
    }

    pub fn evict_timeout(&self) -> Duration {
        Duration::from_millis(self.rooms_evict_timeout_ms)
    }
}

impl Section for RoomsSettings {
    fn validate(&self, _common: &Common) -> Result<(), ConfigError> {
        check_log_level("ROOMS_LOG_LEVEL", &self.rooms_log_level)?;
        check_optional_addr("ROOMS_METRICS_ADDR", &self.rooms_metrics_addr)?;
        if self.max_rooms_per_user == 0 {
            return Err(ConfigError::var("MAX_ROOMS_PER_USER", "must be at least 1"));
        }
        if self.max_rooms_joined == 0 {
            return Err(ConfigError::var("MAX_ROOMS_JOINED", "must be at least 1"));
        }
        if !(1..=365 * 86_400).contains(&self.file_unattached_secs) {
            return Err(ConfigError::var(
                "FILE_UNATTACHED_SECS",
                "must be 1 to 31536000",
            ));
        }
        if !(1..=86_400).contains(&self.file_sweep_secs) {
            return Err(ConfigError::var("FILE_SWEEP_SECS", "must be 1 to 86400"));
        }
        if !(1..=1_000_000).contains(&self.rooms_list_scan) {
            return Err(ConfigError::var("ROOMS_LIST_SCAN", "must be 1 to 1000000"));
        }
        if !(1..=60_000).contains(&self.rooms_evict_timeout_ms) {
            return Err(ConfigError::var(
                "ROOMS_EVICT_TIMEOUT_MS",
                "must be 1 to 60000 (milliseconds)",
            ));
        }
        Ok(())
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

    #[test]
    fn quotas_default_to_the_contract_and_must_be_positive() {
        let c = Config::from_env(&Env::default()).unwrap();
        assert_eq!(
            (c.rooms.max_rooms_per_user, c.rooms.max_rooms_joined),
            (100, 1000)
        );
        assert_eq!(c.rooms.evict_timeout(), Duration::from_secs(2));
        let set = Env::from_pairs([
            ("DYSCHAT_MAX_ROOMS_PER_USER", "3"),
            ("DYSCHAT_MAX_ROOMS_JOINED", "7"),
        ]);
        let c = Config::from_env(&set).unwrap();
        assert_eq!(
            (c.rooms.max_rooms_per_user, c.rooms.max_rooms_joined),
            (3, 7)
        );
        for (var, value) in [
            ("DYSCHAT_MAX_ROOMS_PER_USER", "0"),
            ("DYSCHAT_MAX_ROOMS_JOINED", "x"),
            ("DYSCHAT_ROOMS_EVICT_TIMEOUT_MS", "0"),
        ] {
            let err = Config::from_env(&Env::from_pairs([(var, value)])).unwrap_err();
            let var = var.trim_start_matches("DYSCHAT_");
            assert!(err.to_string().contains(var), "{err}");
        }
    }
}
