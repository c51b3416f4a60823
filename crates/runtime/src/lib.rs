//! How a DYSCHAT service runs: configuration sections, connections to NATS and Redis, JetStream
//! topology, batched direct get, request-reply serving, telemetry, metrics, rate limits and
//! shutdown.
//!
//! Everything a service needs to run but that is not the protocol itself (that is
//! `dyschat-protocol`). Optional pieces are features, so a service links only what it uses:
//! `redis` (connections and history reads and writes) and `token` (JWT issue and verify).

pub mod config;
pub mod connect;
pub mod direct;
#[cfg(feature = "redis")]
pub mod history;
pub mod metric;
pub mod process;
pub mod prometheus;
pub mod ratelimit;
#[cfg(feature = "redis")]
pub mod redis_conn;
pub mod rpc;
pub mod service;
pub mod shutdown;
pub mod telemetry;
#[cfg(feature = "token")]
pub mod token;
pub mod topology;

pub use config::{Common, ConfigError, Env, EnvMode};
pub use telemetry::ServiceName;
