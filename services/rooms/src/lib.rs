//! The DYSCHAT rooms service: rooms and their member sets over NATS request-reply.
//!
//! Rooms live in the `dyschat_rooms` KV bucket and member sets in `dyschat_room_members`, both
//! keyed by room id. Member sets change only by compare-and-set on the entry's revision, so any
//! number of service instances may join and leave users concurrently without losing an update.
//! Who is online comes from the `dyschat_presence` bucket, which ws-agents write.
//!
//! [`records`] holds the pure data logic, [`store`] the buckets, [`handlers`] the six
//! operations and [`service`] the NATS wiring.

pub mod config;
pub mod error;
pub mod handlers;
pub mod records;
pub mod service;
pub mod store;

pub use config::Config;
pub use error::{Error, RoomsError};
pub use service::run;
