//! The real implementations of the [ports](crate::ports): JetStream, Redis, the auth and rooms
//! services, core NATS, the presence, revoked and read-marker buckets, the feed. Outside this module only the wiring in `lib.rs`
//! and the readiness probe (`state.rs`) hold a client; the core and the hub see ports.

pub(crate) mod agents;
pub(crate) mod changes;
pub(crate) mod evictions;
pub(crate) mod feed;
pub(crate) mod files;
pub(crate) mod jetstream;
pub(crate) mod live;
pub(crate) mod nats;
pub(crate) mod presence;
pub(crate) mod read;
pub(crate) mod redis;
pub(crate) mod revoked;
pub(crate) mod services;

use std::future::Future;
use std::time::Duration;

use async_nats::jetstream::kv::Operation;
use dyschat_protocol::layout;
use dyschat_runtime::direct::DirectGet;
use serde::Serialize;

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

/// `request`'s own result (for its error kinds), or [`PortError::Timeout`] after
/// [`COMMAND_TIMEOUT`].
pub(crate) async fn deadline<T>(request: impl Future<Output = T>) -> PortResult<T> {
    tokio::time::timeout(COMMAND_TIMEOUT, request)
        .await
        .map_err(|_| PortError::Timeout)
}

/// Publishes `event` as JSON on `subject`, bounded like every command: how the agent announces
/// presence and typing.
pub(crate) async fn publish_json(
    client: &async_nats::Client,
    subject: String,
    event: &impl Serialize,
) -> PortResult<()> {
    let bytes = serde_json::to_vec(event).map_err(|e| PortError::Decode(e.to_string()))?;
    bounded(client.publish(subject, bytes.into())).await
}

/// The stream subjects of the keys of `bucket` matching `pattern` (a key or a filter such as
/// `<user_id>.*`) that hold a value (a delete or purge marker is a key gone), at most `max`, in
/// one batched direct get taking at most `timeout`: how the agents are counted and how a user's
/// sockets on other agents are found.
pub(crate) async fn live_keys(
    client: &async_nats::Client,
    bucket: &str,
    pattern: &str,
    max: usize,
    timeout: Duration,
) -> PortResult<Vec<String>> {
    let filter = layout::kv_subject(bucket, pattern);
    let entries = DirectGet::new(client.clone(), timeout)
        .multi_last(&layout::kv_stream(bucket), &[filter], max, None)
        .await
        .map_err(PortError::failed)?;
    Ok(entries
        .messages
        .into_iter()
        .filter(|m| m.operation == Operation::Put)
        .map(|m| m.subject)
        .collect())
}
