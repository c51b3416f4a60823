//! The real implementations of the [ports](crate::ports): JetStream, Redis, the auth and rooms
//! services, core NATS and the presence bucket. Nothing outside this module (and the wiring in
//! `lib.rs`) touches a client library.

mod direct;
pub(crate) mod jetstream;
pub(crate) mod nats;
pub(crate) mod presence;
pub(crate) mod redis;
pub(crate) mod services;
