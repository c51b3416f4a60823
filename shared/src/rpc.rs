//! Request-reply between ws-agent and the auth and rooms services.
//!
//! Payloads are the JSON wire types; replies are [`Reply`] (`{"ok": ..}` or `{"error": ..}`), so a
//! domain error crosses NATS as the same [`ApiError`] the edge will show. Transport failures (no
//! responder, timeout) become `unavailable`.

use std::future::Future;
use std::time::Duration;

use async_nats::service::{endpoint::Endpoint, Request};
use bytes::Bytes;
use futures::StreamExt;
use serde::{de::DeserializeOwned, Serialize};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::error::ApiError;
use crate::wire::Reply;

/// The largest request payload a service accepts.
pub const MAX_REQUEST_BYTES: usize = 64 * 1024;

/// Sends `body` to `subject` and decodes the typed reply.
pub async fn request<Req, Resp>(
    client: &async_nats::Client,
    subject: String,
    body: &Req,
    timeout: Duration,
) -> Result<Resp, ApiError>
where
    Req: Serialize,
    Resp: DeserializeOwned,
{
    let payload = serde_json::to_vec(body).map_err(|e| ApiError::internal(e.to_string()))?;
    let reply = match tokio::time::timeout(timeout, client.request(subject.clone(), payload.into()))
        .await
    {
        Err(_) => {
            return Err(ApiError::unavailable(format!(
                "no answer from {subject} in time"
            )))
        }
        Ok(Err(e)) => {
            tracing::warn!(%subject, error = %e, "request failed");
            return Err(ApiError::unavailable(format!(
                "service behind {subject} is unavailable"
            )));
        }
        Ok(Ok(message)) => message,
    };
    let decoded: Reply<Resp> = serde_json::from_slice(&reply.payload)
        .map_err(|e| ApiError::internal(format!("bad reply from {subject}: {e}")))?;
    decoded.into()
}

/// Serves one endpoint until `shutdown`: each request is decoded, handled on its own task (tracked
/// so shutdown can drain it) and answered with a [`Reply`].
pub async fn serve<Req, Resp, H, Fut>(
    mut endpoint: Endpoint,
    tracker: TaskTracker,
    shutdown: CancellationToken,
    handler: H,
) where
    Req: DeserializeOwned + Send + 'static,
    Resp: Serialize + Send + 'static,
    H: Fn(Req) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<Resp, ApiError>> + Send + 'static,
{
    loop {
        let request = tokio::select! {
            _ = shutdown.cancelled() => break,
            next = endpoint.next() => match next {
                Some(request) => request,
                None => break,
            },
        };
        let handler = handler.clone();
        tracker.spawn(async move {
            let result = match decode::<Req>(&request) {
                Ok(body) => handler(body).await,
                Err(e) => Err(e),
            };
            respond(&request, result).await;
        });
    }
    if let Err(e) = endpoint.stop().await {
        tracing::debug!(error = %e, "endpoint stop");
    }
}

fn decode<Req: DeserializeOwned>(request: &Request) -> Result<Req, ApiError> {
    let payload = &request.message.payload;
    if payload.len() > MAX_REQUEST_BYTES {
        return Err(ApiError::bad_request("request too large"));
    }
    serde_json::from_slice(payload).map_err(|e| ApiError::bad_request(format!("invalid body: {e}")))
}

async fn respond<Resp: Serialize>(request: &Request, result: Result<Resp, ApiError>) {
    if let Err(e) = &result {
        if e.code == crate::ErrorCode::Internal {
            tracing::error!(error = %e.message, subject = %request.message.subject, "request failed");
        }
    }
    let reply: Reply<Resp> = result.into();
    let bytes = match serde_json::to_vec(&reply) {
        Ok(b) => Bytes::from(b),
        Err(e) => {
            tracing::error!(error = %e, "could not encode a reply");
            return;
        }
    };
    if let Err(e) = request.respond(Ok(bytes)).await {
        tracing::warn!(error = %e, "could not send a reply");
    }
}
