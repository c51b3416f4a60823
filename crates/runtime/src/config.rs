//! Configuration from `DYSCHAT_*` environment variables, read with `envy`, one section per concern.
//!
//! A service reads only the sections it uses ([`Common`], [`NatsSettings`], [`RedisSettings`],
//! [`TopologySettings`] and its own), so it never refuses to start over a variable it does not
//! need. Each section is deserialized from the same variables on its own (envy ignores the ones a
//! section does not name) and then validated; an error names the variable, so an operator can fix
//! it from the one line the service prints before it exits.

use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Deserialize;

mod sections;

pub use sections::{Common, NatsSettings, RedisSettings, TopologySettings};

/// The JWT secret used when none is configured. `prod` refuses it.
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

/// A configuration problem, already phrased for the operator (`DYSCHAT_X: why`).
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {0}")]
pub struct ConfigError(pub String);

impl ConfigError {
    /// `DYSCHAT_<var>: <why>`.
    pub fn var(var: &str, why: impl std::fmt::Display) -> ConfigError {
        ConfigError(format!("DYSCHAT_{var}: {why}"))
    }
}

/// One section of a service's configuration: the fields it deserializes and the rules serde
/// cannot check. `common` is there for rules that depend on the mode (`prod` is stricter).
pub trait Section: DeserializeOwned {
    fn validate(&self, _common: &Common) -> Result<(), ConfigError> {
        Ok(())
    }
}

/// The `DYSCHAT_*` variables of a process (or of a test, which passes them explicitly instead of
/// touching the process environment).
#[derive(Debug, Clone, Default)]
pub struct Env {
    vars: Vec<(String, String)>,
}

impl Env {
    /// The `DYSCHAT_*` variables of this process.
    pub fn from_process() -> Env {
        Env::from_pairs(std::env::vars())
    }

    /// Explicit pairs; only `DYSCHAT_*` names are kept.
    pub fn from_pairs<I, K, V>(pairs: I) -> Env
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        let vars = pairs
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .filter(|(k, _)| k.starts_with("DYSCHAT_"))
            .collect();
        Env { vars }
    }

    /// The same variables with `key` set to `value` (replacing an earlier value).
    pub fn with(mut self, key: &str, value: impl Into<String>) -> Env {
        self.vars.retain(|(k, _)| k != key);
        self.vars.push((key.to_string(), value.into()));
        self
    }

    /// The value of one variable, if set.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.vars
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Deserializes one section without validating it.
    fn raw<T: DeserializeOwned>(&self) -> Result<T, ConfigError> {
        envy::prefixed("DYSCHAT_")
            .from_iter(self.vars.iter().cloned())
            .map_err(|e| ConfigError(name_the_variable(&e.to_string())))
    }

    /// The [`Common`] section, validated.
    pub fn common(&self) -> Result<Common, ConfigError> {
        let common: Common = self.raw()?;
        common.validate(&common)?;
        Ok(common)
    }

    /// Reads and validates one section.
    pub fn section<T: Section>(&self, common: &Common) -> Result<T, ConfigError> {
        let section: T = self.raw()?;
        section.validate(common)?;
        Ok(section)
    }
}

/// Declares a service's `Config`: `common` plus the sections the service reads, a `from_env`
/// that reads `common` first (the other sections' rules depend on the mode) and then each section,
/// validated, and the [`ServiceConfig`](crate::process::ServiceConfig) the process around the
/// service asks for (the log level is a field of the service's own section). Every service reads
/// its configuration this one way, and only its own sections' variables.
///
/// ```
/// use dyschat_runtime::config::{NatsSettings, Section};
///
/// #[derive(Debug, Clone, Default, serde::Deserialize)]
/// #[serde(default)]
/// pub struct DemoSettings {
///     pub demo_log_level: String,
/// }
/// impl Section for DemoSettings {}
///
/// dyschat_runtime::service_config! {
///     /// What the demo service reads.
///     pub struct Config {
///         nats: NatsSettings,
///         demo: DemoSettings,
///     }
///     log_level: demo.demo_log_level
/// }
///
/// let env = dyschat_runtime::Env::from_pairs([("DYSCHAT_DEMO_LOG_LEVEL", "debug")]);
/// let config = Config::from_env(&env).unwrap();
/// assert_eq!(config.demo.demo_log_level, "debug");
/// ```
#[macro_export]
macro_rules! service_config {
    (
        $(#[$meta:meta])*
        pub struct $name:ident {
            $($field:ident: $section:ty),+ $(,)?
        }
        log_level: $own:ident.$level:ident
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone)]
        pub struct $name {
            pub common: $crate::config::Common,
            $(pub $field: $section,)+
        }

        impl $name {
            /// Reads and validates `common`, then each section; an error names the variable.
            pub fn from_env(
                env: &$crate::config::Env,
            ) -> ::std::result::Result<$name, $crate::config::ConfigError> {
                let common = env.common()?;
                ::std::result::Result::Ok($name {
                    $($field: env.section(&common)?,)+
                    common,
                })
            }
        }

        impl $crate::process::ServiceConfig for $name {
            fn common(&self) -> &$crate::config::Common {
                &self.common
            }

            fn log_level(&self) -> &str {
                &self.$own.$level
            }
        }
    };
}

/// Checks a log level variable (a level or a tracing filter).
pub fn check_log_level(var: &str, level: &str) -> Result<(), ConfigError> {
    level
        .parse::<tracing_subscriber::filter::EnvFilter>()
        .map(drop)
        .map_err(|_| {
            ConfigError::var(
                var,
                "must be a level (error, warn, info, debug, trace) or a filter",
            )
        })
}

/// Checks an optional `host:port` (empty turns the thing off).
pub fn check_optional_addr(var: &str, addr: &str) -> Result<(), ConfigError> {
    if addr.trim().is_empty() || addr.rsplit_once(':').is_some() {
        Ok(())
    } else {
        Err(ConfigError::var(
            var,
            "must be host:port, e.g. 127.0.0.1:9101, or empty for none",
        ))
    }
}

/// Checks the JWT secret: never empty, and in `prod` neither the dev value nor short.
pub fn check_auth_secret(secret: &str, common: &Common) -> Result<(), ConfigError> {
    if secret.is_empty() {
        return Err(ConfigError::var("AUTH_SECRET", "must not be empty"));
    }
    if common.env_mode == EnvMode::Prod {
        if secret == DEV_AUTH_SECRET {
            return Err(ConfigError::var(
                "AUTH_SECRET",
                "the development secret is refused in prod",
            ));
        }
        if secret.len() < MIN_PROD_SECRET_LEN {
            return Err(ConfigError::var(
                "AUTH_SECRET",
                "must be at least 32 bytes in prod",
            ));
        }
    }
    Ok(())
}

/// Milliseconds as a duration.
pub fn millis(ms: u64) -> Duration {
    Duration::from_millis(ms)
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

/// Shows `<redacted>` or `""` for a secret, never its value (for `Debug` impls of sections).
pub fn redact(secret: &str) -> &'static str {
    if secret.is_empty() {
        "\"\""
    } else {
        "<redacted>"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Env {
        Env::from_pairs(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())))
    }

    #[test]
    fn defaults_match_the_contract() {
        let e = env(&[]);
        let common = e.common().expect("defaults are valid");
        assert_eq!(common.env_mode, EnvMode::Dev);
        let nats: NatsSettings = e.section(&common).unwrap();
        assert_eq!(nats.nats_url, "nats://127.0.0.1:4222");
        let redis: RedisSettings = e.section(&common).unwrap();
        assert_eq!(redis.redis_addr, "127.0.0.1:6379");
        assert_eq!(redis.redis_database, 0);
    }

    #[test]
    fn a_bad_value_names_its_variable() {
        let e = env(&[("DYSCHAT_REDIS_DATABASE", "seven")]);
        let common = e.common().unwrap();
        let err = e.section::<RedisSettings>(&common).unwrap_err();
        assert!(err.to_string().contains("DYSCHAT_REDIS_DATABASE"), "{err}");
        let err = env(&[("DYSCHAT_ENV_MODE", "staging")])
            .common()
            .unwrap_err();
        assert!(err.to_string().contains("DYSCHAT_ENV_MODE"), "{err}");
    }

    #[test]
    fn a_section_ignores_variables_it_does_not_read() {
        // A nonsense value for a variable only ws-agent reads does not stop a NATS-only service.
        let e = env(&[("DYSCHAT_SOCKET_QUEUE", "lots")]);
        let common = e.common().unwrap();
        assert!(e.section::<NatsSettings>(&common).is_ok());
    }

    #[test]
    fn prod_refuses_weak_secrets() {
        let prod = env(&[("DYSCHAT_ENV_MODE", "prod")]).common().unwrap();
        let err = check_auth_secret(DEV_AUTH_SECRET, &prod).unwrap_err();
        assert!(err.to_string().contains("DYSCHAT_AUTH_SECRET"));
        let err = check_auth_secret("short", &prod).unwrap_err();
        assert!(err.to_string().contains("32 bytes"));
        assert!(check_auth_secret("0123456789abcdef0123456789abcdef!", &prod).is_ok());
        let dev = env(&[]).common().unwrap();
        assert!(check_auth_secret(DEV_AUTH_SECRET, &dev).is_ok());
    }

    #[test]
    fn env_overrides_replace_earlier_values() {
        let e = env(&[("DYSCHAT_NATS_URL", "nats://a:1")]).with("DYSCHAT_NATS_URL", "nats://b:2");
        assert_eq!(e.get("DYSCHAT_NATS_URL"), Some("nats://b:2"));
        let common = e.common().unwrap();
        let nats: NatsSettings = e.section(&common).unwrap();
        assert_eq!(nats.nats_url, "nats://b:2");
    }
}
