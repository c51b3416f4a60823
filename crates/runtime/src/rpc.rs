//! Request-reply between ws-agent and the auth and rooms services.
//!
//! Payloads are the JSON wire types; replies are [`Reply`] (`{"ok": ..}` or `{"error": ..}`), so a
//! domain error crosses NATS as the same [`ApiError`] the edge will show. Transport failures (no
//! responder, timeout) become `unavailable`.
//!
//! Both sides are traced: the request is a client span named after the endpoint (`auth.login`,
//! `rooms.join`) whose context travels in the request's headers, and the responder's server span
//! of the same name is its child, in the answering service. Each answer also counts in
//! `dyschat_requests_total{endpoint, outcome}` and `dyschat_request_seconds{endpoint}`.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::service::{endpoint::Endpoint, Request};
use bytes::Bytes;
use futures::future::{BoxFuture, FutureExt};
use futures::StreamExt;
use serde::{de::DeserializeOwned, Serialize};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use crate::telemetry;
use dyschat_protocol::wire::Reply;
use dyschat_protocol::ApiError;

/// The low-cardinality name of a request subject: `dyschat.auth.login` is `auth.login`.
pub fn endpoint_name(subject: &str) -> &str {
    subject.strip_prefix("dyschat.").unwrap_or(subject)
}

/// The service that answers `subject` (its group is the service's), for the responder's span.
fn responder(subject: &str) -> &'static str {
    if subject.starts_with(dyschat_protocol::subjects::auth::GROUP) {
        dyschat_protocol::subjects::auth::SERVICE
    } else if subject.starts_with(dyschat_protocol::subjects::rooms::GROUP) {
        dyschat_protocol::subjects::rooms::SERVICE
    } else if subject.starts_with(dyschat_protocol::subjects::search::GROUP) {
        dyschat_protocol::subjects::search::SERVICE
    } else {
        ""
    }
}

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
    let span = tracing::info_span!(
        "rpc.request",
        otel.name = endpoint_name(&subject),
        otel.kind = "client",
        messaging.system = "nats",
        messaging.destination.name = %subject,
    );
    let result = async {
        let headers = telemetry::headers_with_context().unwrap_or_default();
        let sent = client.request_with_headers(subject.clone(), headers, payload.into());
        tokio::time::timeout(timeout, sent).await
    }
    .instrument(span)
    .await;
    let reply = match result {
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

/// A request handler with its request and reply types erased: the request payload in, the encoded
/// `{"ok": ..}` reply (or the error) out. Erased so that endpoints of different types fit in one
/// table ([`crate::service::Endpoints`]); [`handler`] makes one from a typed function.
pub type Handler =
    Arc<dyn Fn(Bytes) -> BoxFuture<'static, Result<Bytes, ApiError>> + Send + Sync + 'static>;

/// A typed request handler: a function from the decoded request to the future of its answer, whose
/// error maps to the contract's [`ApiError`]. The bounds live here once, so [`handler`], [`serve`]
/// and [`crate::service::Endpoints::route`] accept the same functions.
pub trait TypedHandler<Req, Resp, E>: Send + Sync + 'static {
    /// Erases the types: decodes the request (400 for a body that is not one), runs the handler,
    /// maps its error to [`ApiError`] and encodes the reply.
    fn erase(self) -> Handler;
}

impl<Req, Resp, E, H, Fut> TypedHandler<Req, Resp, E> for H
where
    Req: DeserializeOwned + Send + 'static,
    Resp: Serialize + Send + 'static,
    E: Into<ApiError> + Send + 'static,
    H: Fn(Req) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Resp, E>> + Send + 'static,
{
    fn erase(self) -> Handler {
        Arc::new(move |payload: Bytes| match decode::<Req>(&payload) {
            Ok(request) => {
                let answer = self(request);
                async move { encode_ok(&answer.await.map_err(Into::into)?) }.boxed()
            }
            Err(e) => futures::future::ready(Err(e)).boxed(),
        })
    }
}

/// Erases a typed handler; see [`TypedHandler::erase`].
pub fn handler<Req, Resp, E>(handler: impl TypedHandler<Req, Resp, E>) -> Handler {
    handler.erase()
}

/// Serves one endpoint with a typed handler; see [`serve_with`].
pub async fn serve<Req, Resp>(
    endpoint: Endpoint,
    tracker: TaskTracker,
    shutdown: CancellationToken,
    handler: impl TypedHandler<Req, Resp, ApiError>,
) {
    serve_with(endpoint, tracker, shutdown, handler.erase()).await
}

/// Serves one endpoint until `shutdown`: each request is handled on its own task (tracked so
/// shutdown can drain it), traced as a server span, counted, and answered with a [`Reply`].
pub async fn serve_with(
    mut endpoint: Endpoint,
    tracker: TaskTracker,
    shutdown: CancellationToken,
    handler: Handler,
) {
    loop {
        let request = tokio::select! {
            _ = shutdown.cancelled() => break,
            next = endpoint.next() => match next {
                Some(request) => request,
                None => break,
            },
        };
        let handler = handler.clone();
        let subject = request.message.subject.to_string();
        let span = tracing::info_span!(
            "rpc.serve",
            otel.name = endpoint_name(&subject),
            otel.kind = "server",
            messaging.system = "nats",
            messaging.destination.name = %subject,
            dyschat.service = responder(&subject),
            outcome = tracing::field::Empty,
        );
        telemetry::set_parent(&span, request.message.headers.as_ref());
        tracker.spawn(
            async move {
                let started = Instant::now();
                let result = handler(request.message.payload.clone()).await;
                let outcome = match &result {
                    Ok(_) => "ok",
                    Err(e) => e.code.as_str(),
                };
                tracing::Span::current().record("outcome", outcome);
                let endpoint = endpoint_name(&subject).to_string();
                metrics::counter!(crate::metric::REQUESTS_TOTAL, "endpoint" => endpoint.clone(), "outcome" => outcome)
                    .increment(1);
                metrics::histogram!(crate::metric::REQUEST_SECONDS, "endpoint" => endpoint)
                    .record(started.elapsed().as_secs_f64());
                respond(&request, result).await;
            }
            .instrument(span),
        );
    }
    if let Err(e) = endpoint.stop().await {
        tracing::debug!(error = %e, "endpoint stop");
    }
}

fn decode<Req: DeserializeOwned>(payload: &[u8]) -> Result<Req, ApiError> {
    if payload.len() > MAX_REQUEST_BYTES {
        return Err(ApiError::bad_request("request too large"));
    }
    serde_json::from_slice(payload).map_err(|e| ApiError::bad_request(format!("invalid body: {e}")))
}

fn encode_ok<Resp: Serialize>(response: &Resp) -> Result<Bytes, ApiError> {
    serde_json::to_vec(&Reply::Ok(response))
        .map(Bytes::from)
        .map_err(|e| ApiError::internal(format!("could not encode a reply: {e}")))
}

async fn respond(request: &Request, result: Result<Bytes, ApiError>) {
    let bytes = match result {
        Ok(bytes) => bytes,
        Err(e) => {
            if e.code == dyschat_protocol::ErrorCode::Internal {
                tracing::error!(error = %e.message, subject = %request.message.subject, "request failed");
            }
            match serde_json::to_vec(&Reply::<()>::Error(e)) {
                Ok(b) => Bytes::from(b),
                Err(e) => {
                    tracing::error!(error = %e, "could not encode a reply");
                    return;
                }
            }
        }
    };
    if let Err(e) = request.respond(Ok(bytes)).await {
        tracing::warn!(error = %e, "could not send a reply");
    }
}
