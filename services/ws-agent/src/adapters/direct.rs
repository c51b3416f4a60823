//! Batched direct gets (`$JS.API.DIRECT.GET.<stream>` with `batch`): one request, several
//! replies, the last a status-204 end-of-batch marker. async-nats has no client call for them,
//! so this is the one place that speaks the protocol.

use std::time::Duration;

use async_nats::StatusCode;
use futures::StreamExt;

use super::bounded;
use crate::ports::{PortError, PortResult};

/// The status of the end-of-batch marker.
const END_OF_BATCH: u16 = 204;

/// Whether a KV entry message (of a batch over a bucket's stream) is a delete or purge marker.
pub(crate) fn is_kv_removal(message: &async_nats::Message) -> bool {
    message
        .headers
        .as_ref()
        .and_then(|h| h.get("KV-Operation"))
        .is_some_and(|op| matches!(op.as_str(), "DEL" | "PURGE"))
}

/// Sends `request` (a direct-get JSON body with `batch`) to `stream` and collects the messages
/// it answers, until the end-of-batch marker, within `timeout`. "Nothing matched" (404) is an
/// empty answer.
pub(crate) async fn batch(
    client: &async_nats::Client,
    stream: &str,
    request: serde_json::Value,
    timeout: Duration,
) -> PortResult<Vec<async_nats::Message>> {
    let inbox = client.new_inbox();
    let mut replies = bounded(client.subscribe(inbox.clone())).await?;
    bounded(client.publish_with_reply(
        format!("$JS.API.DIRECT.GET.{stream}"),
        inbox,
        request.to_string().into(),
    ))
    .await?;
    let deadline = tokio::time::Instant::now() + timeout;
    let mut out = Vec::new();
    loop {
        let next = tokio::time::timeout_at(deadline, replies.next())
            .await
            .map_err(|_| PortError::Timeout)?;
        let Some(message) = next else {
            return Err(PortError::Failed("direct get replies ended early".into()));
        };
        match message.status {
            None => out.push(message),
            Some(status) if status.as_u16() == END_OF_BATCH => return Ok(out),
            Some(StatusCode::NOT_FOUND) => return Ok(out),
            Some(status) => {
                return Err(PortError::Failed(format!(
                    "direct get answered {}: {}",
                    status.as_u16(),
                    message.description.unwrap_or_default()
                )))
            }
        }
    }
}
