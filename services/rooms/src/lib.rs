//! The DYSCHAT rooms service: rooms and their members over NATS request-reply.
//!
//! Built so that a room of 100,000 members costs the same per join, leave, membership check and
//! member page as a room of 10: one KV record per (room, member), a NATS counter for the member
//! count, and batched direct gets for pages (members, their presence, the room list) instead of
//! reading whole sets. The `store` module documents the layout.
//!
//! `records` holds what is stored and `paging` the cursor and page logic (pure, unit-tested),
//! `store` the buckets and streams, `handlers` the operations and `service` the NATS wiring.

mod config;
mod error;
mod handlers;
mod paging;
mod records;
mod service;
mod store;

pub use config::{Config, RoomsSettings};
pub use error::Error;
pub use service::run;
