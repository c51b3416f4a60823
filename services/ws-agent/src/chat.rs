//! Room messages against JetStream and Redis: publish a send, read the newest `seq`, replay a
//! range, read history. Plain async functions over the clients, so the socket and HTTP edges stay
//! thin and share one implementation.
//!
//! A publish carries the trace context of the caller's `chat.send` span in its headers; JetStream
//! stores them with the message, so the writer's `chat.store` and every agent's `chat.deliver`
//! join the same trace.

use std::time::{Duration, Instant};

use async_nats::jetstream::{
    self,
    consumer::{pull::OrderedConfig, DeliverPolicy},
    context::PublishAckFuture,
    message::PublishMessage,
    stream::{LastRawMessageErrorKind, Stream},
};
use bytes::Bytes;
use dyschat_protocol::{
    ids, subjects, time,
    wire::{dedupe_id, Message, MessagePage, StoredMessage},
    ApiError,
};
use dyschat_runtime::{
    history::{self, PageQuery},
    prometheus, telemetry,
};
use futures::StreamExt;
use redis::aio::ConnectionManager;

/// How long one step of a JetStream read may take before the read is abandoned.
const READ_STEP_TIMEOUT: Duration = Duration::from_secs(5);

/// What a client asked to send, after authentication.
#[derive(Debug, Clone)]
pub struct SendRequest {
    pub room_id: String,
    pub sender_id: String,
    pub sender_name: String,
    pub body: String,
    pub client_msg_id: Option<String>,
}

/// The outcome of a send once JetStream stored it.
#[derive(Debug, Clone)]
pub struct Sent {
    pub room_id: String,
    pub seq: u64,
    pub message_id: String,
    pub client_msg_id: String,
    pub sent_at: String,
    pub duplicate: bool,
    /// The message as stored (for a duplicate: the first one).
    pub stored: StoredMessage,
}

/// A publish on its way: the frame is on the wire, the store acknowledgement is not yet in.
pub struct PendingSend {
    ack: PublishAckFuture,
    stored: StoredMessage,
    published: Instant,
}

#[derive(Clone)]
pub struct Chat {
    js: jetstream::Context,
    stream: Stream,
    redis: ConnectionManager,
}

fn unavailable(what: &str, e: impl std::fmt::Display) -> ApiError {
    tracing::warn!(error = %e, "{what} failed");
    ApiError::unavailable(format!("{what} failed, try again"))
}

impl Chat {
    pub fn new(js: jetstream::Context, stream: Stream, redis: ConnectionManager) -> Self {
        Chat { js, stream, redis }
    }

    pub fn redis(&self) -> ConnectionManager {
        self.redis.clone()
    }

    /// Validates and publishes a send. The `Nats-Msg-Id` makes a retry with the same
    /// `client_msg_id` a duplicate that JetStream drops.
    pub async fn publish(&self, req: SendRequest) -> Result<PendingSend, ApiError> {
        ids::validate_id("room_id", &req.room_id)?;
        ids::validate_body(&req.body)?;
        let client_msg_id = match req.client_msg_id {
            Some(id) => {
                ids::validate_id("client_msg_id", &id)?;
                id
            }
            None => ids::new_id(),
        };
        let stored = StoredMessage {
            room_id: req.room_id,
            message_id: ids::new_id(),
            client_msg_id,
            sender_id: req.sender_id,
            sender_name: req.sender_name,
            body: req.body,
            sent_at: time::now(),
        };
        let payload = serde_json::to_vec(&stored).map_err(|e| ApiError::internal(e.to_string()))?;
        let span = tracing::Span::current();
        span.record("message.id", stored.message_id.as_str());
        span.record("message.client_id", stored.client_msg_id.as_str());
        let publish = PublishMessage::build()
            .headers(telemetry::headers_with_context().unwrap_or_default())
            .payload(Bytes::from(payload))
            .message_id(dedupe_id(
                &stored.sender_id,
                &stored.room_id,
                &stored.client_msg_id,
            ));
        let ack = self
            .js
            .send_publish(subjects::room_messages(&stored.room_id), publish)
            .await
            .map_err(|e| unavailable("publish", e))?;
        Ok(PendingSend {
            ack,
            stored,
            published: Instant::now(),
        })
    }

    /// Waits for JetStream to store a published message.
    pub async fn confirm(&self, pending: PendingSend) -> Result<Sent, ApiError> {
        let ack = pending
            .ack
            .await
            .map_err(|e| unavailable("message store", e))?;
        metrics::histogram!(dyschat_runtime::metric::PUBLISH_ACK_SECONDS)
            .record(pending.published.elapsed().as_secs_f64());
        let span = tracing::Span::current();
        span.record("message.seq", ack.sequence);
        span.record("duplicate", ack.duplicate);
        let stored = if ack.duplicate {
            self.stored(ack.sequence).await?
        } else {
            pending.stored
        };
        metrics::counter!(dyschat_runtime::metric::MESSAGES_PUBLISHED_TOTAL, "duplicate" => ack.duplicate.to_string())
            .increment(1);
        Ok(Sent {
            room_id: stored.room_id.clone(),
            seq: ack.sequence,
            message_id: stored.message_id.clone(),
            client_msg_id: stored.client_msg_id.clone(),
            sent_at: stored.sent_at.clone(),
            duplicate: ack.duplicate,
            stored,
        })
    }

    pub async fn send(&self, req: SendRequest) -> Result<Sent, ApiError> {
        let pending = self.publish(req).await?;
        self.confirm(pending).await
    }

    /// The stored message at `seq`. Read from the stream leader: a replica answering a direct
    /// get may not have a message that was just acked yet.
    pub async fn stored(&self, seq: u64) -> Result<StoredMessage, ApiError> {
        let raw = self
            .stream
            .get_raw_message(seq)
            .await
            .map_err(|e| unavailable("message lookup", e))?;
        serde_json::from_slice(&raw.payload).map_err(|e| ApiError::internal(e.to_string()))
    }

    /// The room's newest `seq`, 0 for an empty room. Read from the stream leader, not with a
    /// direct get: on a cluster a replica may lag, and a join or catch-up check that starts from
    /// a stale position only repairs itself on a later message.
    pub async fn last_seq(&self, room_id: &str) -> Result<u64, ApiError> {
        match self
            .stream
            .get_last_raw_message_by_subject(&subjects::room_messages(room_id))
            .await
        {
            Ok(m) => Ok(m.sequence),
            Err(e) if e.kind() == LastRawMessageErrorKind::NoMessageFound => Ok(0),
            Err(e) => Err(unavailable("room position lookup", e)),
        }
    }

    /// The room's messages with `after < seq <= up_to`, oldest first, or `None` when there are
    /// more than `limit` of them. `prev_of_first` is the `prev_seq` of the first one.
    pub async fn replay(
        &self,
        room_id: &str,
        after: u64,
        up_to: u64,
        prev_of_first: u64,
        limit: u64,
    ) -> Result<Option<Vec<Message>>, ApiError> {
        if up_to <= after {
            return Ok(Some(Vec::new()));
        }
        let consumer = self
            .stream
            .create_consumer(OrderedConfig {
                filter_subject: subjects::room_messages(room_id),
                deliver_policy: DeliverPolicy::ByStartSequence {
                    start_sequence: after + 1,
                },
                ..Default::default()
            })
            .await
            .map_err(|e| unavailable("replay", e))?;
        if consumer.cached_info().num_pending > limit {
            return Ok(None);
        }
        let mut messages = consumer
            .messages()
            .await
            .map_err(|e| unavailable("replay", e))?;
        let mut out = Vec::new();
        let mut prev = prev_of_first;
        loop {
            let next = tokio::time::timeout(READ_STEP_TIMEOUT, messages.next())
                .await
                .map_err(|e| unavailable("replay", e))?;
            let Some(next) = next else { break };
            let message = next.map_err(|e| unavailable("replay", e))?;
            let seq = message
                .info()
                .map_err(|e| unavailable("replay", e))?
                .stream_sequence;
            if seq > up_to {
                break;
            }
            let stored: StoredMessage = match serde_json::from_slice(&message.payload) {
                Ok(s) => s,
                Err(e) => {
                    tracing::error!(seq, error = %e, "undecodable stored message skipped");
                    continue;
                }
            };
            out.push(Message::from_stored(stored, seq, prev));
            prev = seq;
            if seq == up_to || out.len() as u64 > limit {
                break;
            }
        }
        Ok(Some(out))
    }

    /// The `prev_seq` of a message at `seq` known only by its seq: the newest stored before it.
    pub async fn seq_before(&self, room_id: &str, seq: u64) -> Result<u64, ApiError> {
        let mut redis = self.redis.clone();
        let started = Instant::now();
        let result = history::seq_before(&mut redis, room_id, seq).await;
        prometheus::redis_timing("seq_before", started);
        result.map_err(|e| unavailable("history", e))
    }

    pub async fn history(
        &self,
        room_id: &str,
        query: PageQuery,
        limit: usize,
    ) -> Result<MessagePage, ApiError> {
        let mut redis = self.redis.clone();
        let started = Instant::now();
        let result = history::page(&mut redis, room_id, query, limit).await;
        prometheus::redis_timing("history", started);
        result.map_err(|e| unavailable("history", e))
    }
}

/// The `chat.send` span of one send: the root of the message's trace (a child of the HTTP request
/// for a post). Publish and confirm run in it; `message.id` and `message.seq` are filled in then.
pub fn send_span(room_id: &str) -> tracing::Span {
    tracing::info_span!(
        "chat.send",
        otel.kind = "producer",
        messaging.system = "nats",
        messaging.operation.type = "publish",
        messaging.destination.name = subjects::ROOM_MESSAGES_WILDCARD,
        room.id = %room_id,
        message.id = tracing::field::Empty,
        message.client_id = tracing::field::Empty,
        message.seq = tracing::field::Empty,
        duplicate = tracing::field::Empty,
        dyschat.service = "dyschat-ws-agent",
    )
}

/// Validates a `limit` parameter: default 50, 1..=100.
pub fn page_limit(limit: Option<i64>) -> Result<usize, ApiError> {
    match limit {
        None => Ok(history::DEFAULT_PAGE),
        Some(n) if (1..=history::MAX_PAGE as i64).contains(&n) => Ok(n as usize),
        Some(_) => Err(ApiError::bad_request("limit must be 1 to 100")),
    }
}
