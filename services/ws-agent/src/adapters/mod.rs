//! The real implementations of the [ports](crate::ports): JetStream, Redis, the auth and rooms
//! services, core NATS and the presence bucket. Outside this module only the wiring in `lib.rs`
//! and the readiness probe (`state.rs`) hold a client; the core and the hub see ports.

pub(crate) mod agents;
pub(crate) mod jetstream;
pub(crate) mod nats;
pub(crate) mod presence;
pub(crate) mod redis;
pub(crate) mod services;

use std::future::Future;
use std::time::Duration;

use crate::ports::{PortError, PortResult};

/// How long handing a command (subscribe, publish) to the NATS client may take: it waits only
/// while the client's queue is full, and every wait has a deadline.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(5);

/// `command`, or [`PortError::Timeout`] after [`COMMAND_TIMEOUT`].
pub(crate) async fn bounded<T, E: std::fmt::Display>(
    command: impl Future<Output = Result<T, E>>,
) -> PortResult<T> {
    match tokio::time::timeout(COMMAND_TIMEOUT, command).await {
        Ok(result) => result.map_err(PortError::failed),
        Err(_) => Err(PortError::Timeout),
    }
}
