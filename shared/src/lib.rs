//! Everything the DYSCHAT services agree on, defined once: configuration, identifiers, NATS
//! subjects and JetStream topology, wire types, error codes, the Redis history layout, tokens,
//! connection set-up, telemetry and shutdown.
//!
//! A service crate should never spell a subject, a bucket name or an error code itself; it asks
//! this crate, so that the whole mesh changes in one place.

pub mod config;
pub mod connect;
pub mod error;
pub mod history;
pub mod ids;
pub mod prometheus;
pub mod ratelimit;
pub mod rpc;
pub mod service;
pub mod shutdown;
pub mod subjects;
pub mod telemetry;
pub mod time;
pub mod token;
pub mod topology;
pub mod wire;

pub use config::{Config, EnvMode};

#[cfg(test)]
mod fuzz_tests;
pub use error::{ApiError, ErrorCode};
