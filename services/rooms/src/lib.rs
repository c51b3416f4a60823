//! The DYSCHAT rooms service: rooms and their members over NATS request-reply.
//!
//! Built so that a room of 100,000 members costs the same per join, leave, membership check and
//! member page as a room of 10: one KV record per (room, member), a NATS counter for the member
//! count, and batched direct gets for pages (members, their presence, the room list) instead of
//! reading whole sets. The `store` module documents the layout.
//!
//! Who may do what is decided by `dyschat_protocol::policy` over the user's standing in the
//! room, which this service reads and answers (`access`) so every ws-agent decides with the
//! same function; a kick, ban or deletion is answered only after the live agents confirmed the
//! sockets concerned left the room.
//!
//! `records` holds what is stored, `rules` the rules that are not authorization and `paging`
//! the cursor and page logic (pure, unit-tested), `store` the buckets and streams, `users` the
//! auth service's user lookups, `endpoints` the operations, `feed` each user's notifications,
//! `files` a deleted room's files and the sweep of unattached ones, and `service` the NATS wiring.

mod config;
mod endpoints;
mod error;
mod feed;
mod files;
mod paging;
mod records;
mod rules;
mod service;
mod store;
mod users;

pub use config::{Config, RoomsSettings};
pub use error::Error;
pub use service::run;
