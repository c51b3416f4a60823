//! What the DYSCHAT services and their clients agree on, defined once: wire types (HTTP bodies,
//! WebSocket frames, NATS payloads), NATS subjects (built and parsed here), the layout of streams,
//! buckets and Redis keys, error codes, ids and times.
//!
//! It depends on serde and little else, so a client, a tool or a test can speak the protocol
//! without linking a NATS client, Redis or a web framework. A service never spells a subject, a
//! bucket name, a key or an error code itself; it asks this crate, so the mesh changes in one place.

pub mod error;
pub mod files_layout;
pub mod ids;
pub mod layout;
pub mod mentions;
pub mod permissions;
pub mod policy;
pub mod search;
pub mod search_layout;
pub mod streams;
pub mod subjects;
pub mod text;
pub mod time;
pub mod wire;

pub use error::{ApiError, ErrorCode};

#[cfg(test)]
mod fuzz_tests;
