//! The DYSCHAT auth service: `register`, `login`, `logout`, user `search` and `user` lookups
//! over NATS request-reply.
//!
//! Users live in the `dyschat_users` KV bucket, keyed by their lower-cased username so that
//! uniqueness ignoring case is enforced by one atomic `create`. Passwords are stored as argon2id
//! PHC strings; a successful login returns a JWT that ws-agent verifies locally.
//!
//! The crate is split so that the logic can be tested without a transport:
//! [`password`] (hashing), [`store`] (the bucket), [`directory`] (the public usernames index
//! and user directory: user search, lookups by id), [`handlers`] (the operations) and
//! [`service`] (NATS wiring and shutdown); [`throttle`] limits failed logins per username;
//! [`logout`] revokes a token in the revoked bucket every ws-agent watches.

pub mod config;
pub mod directory;
pub mod error;
pub mod handlers;
pub mod logout;
pub mod password;
pub mod service;
pub mod store;
pub mod throttle;

pub use config::Config;
pub use error::{AuthError, Error};
pub use service::run;
