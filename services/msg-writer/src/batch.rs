//! One chunk of consumed messages: validate, write in one Redis pipeline, then ack.
//!
//! Each message gets its own `chat.store` span, a child of the sender's `chat.send` (its context
//! is in the stored message's headers), covering the chunk's write and the message's ack; spans
//! are only built while traces are exported.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use async_nats::jetstream::{message::Message as JsMessage, AckKind};
use dyschat_protocol::layout;
use dyschat_protocol::{subjects, wire::DeadLetter, wire::StoredMessage};
use dyschat_runtime::{history, metric, prometheus, telemetry};
use redis::aio::ConnectionManager;
use tokio_util::sync::CancellationToken;

/// A message ready to store, or the reason it can never be stored.
#[derive(Debug, PartialEq, Eq)]
pub enum Prepared {
    Store { room_id: String, seq: u64 },
    Poison(String),
}

/// Checks one consumed message: its subject names a room, its payload is a [`StoredMessage`] of
/// that room. Pure, so it is unit-tested without servers.
pub fn prepare(subject: &str, stream_seq: u64, payload: &[u8]) -> Prepared {
    let Some(room_id) = subjects::last_token(subject) else {
        return Prepared::Poison(format!("subject {subject} names no valid room"));
    };
    match serde_json::from_slice::<StoredMessage>(payload) {
        Ok(m) if m.room_id == room_id => Prepared::Store {
            room_id: room_id.to_string(),
            seq: stream_seq,
        },
        Ok(m) => Prepared::Poison(format!(
            "payload room {} does not match subject room {room_id}",
            m.room_id
        )),
        Err(e) => Prepared::Poison(format!("payload is not a stored message: {e}")),
    }
}

const RETRY_FIRST: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(5);
/// How long a message Redis refused waits before its next delivery.
const POISON_REDELIVERY_DELAY: Duration = Duration::from_secs(1);

/// One pipeline for a chunk: one `ZADD` per room holding all of the room's messages.
fn chunk_pipeline(batch: &[(String, u64, JsMessage)]) -> redis::Pipeline {
    let mut rooms: HashMap<&str, Vec<(u64, &[u8])>> = HashMap::new();
    for (room_id, seq, message) in batch {
        rooms
            .entry(room_id.as_str())
            .or_default()
            .push((*seq, message.payload.as_ref()));
    }
    let mut pipe = redis::pipe();
    for (room_id, messages) in &rooms {
        history::queue_store_room(&mut pipe, room_id, messages);
    }
    pipe
}

/// Where a consumed message ends up: stored, set aside, or delivered again. Cheap to clone (both
/// handles share their connection), one clone per chunk in flight.
#[derive(Clone)]
pub struct Writer {
    pub js: async_nats::jetstream::Context,
    pub redis: ConnectionManager,
}

/// Whether a Redis error is Redis being unavailable for a while (connection lost, loading,
/// read-only replica, ...), which a retry of the same write fixes, as opposed to Redis refusing
/// the write itself (e.g. `WRONGTYPE`, which redis-rs reports for a pipeline as an extension
/// error listing the failed commands).
fn is_transient(e: &redis::RedisError) -> bool {
    use redis::{ErrorKind, ServerErrorKind};
    e.is_io_error()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || e.is_timeout()
        || matches!(
            e.kind(),
            ErrorKind::Server(
                ServerErrorKind::BusyLoading
                    | ServerErrorKind::TryAgain
                    | ServerErrorKind::MasterDown
                    | ServerErrorKind::ReadOnly
                    | ServerErrorKind::ClusterDown
            )
        )
}

impl Writer {
    /// Stores `messages` and acks them. While Redis is unavailable the chunk is retried (kept in
    /// progress so the server does not hand it to another writer meanwhile) until it succeeds or
    /// shutdown begins, when it is left for redelivery. If Redis refuses the chunk itself, the
    /// messages are written one by one so that one poison message cannot hold back the others.
    pub async fn store_and_ack(&mut self, messages: Vec<JsMessage>, shutdown: &CancellationToken) {
        let mut batch = Vec::with_capacity(messages.len());
        let mut spans = Vec::with_capacity(if telemetry::exporting() {
            messages.len()
        } else {
            0
        });
        for message in messages {
            let seq = match message.info() {
                Ok(info) => info.stream_sequence,
                Err(e) => {
                    tracing::warn!(error = %e, "message without JetStream metadata ignored");
                    continue;
                }
            };
            match prepare(&message.subject, seq, &message.payload) {
                Prepared::Store { room_id, seq } => {
                    if telemetry::exporting() {
                        spans.push(store_span(&room_id, seq, &message));
                    }
                    batch.push((room_id, seq, message));
                }
                Prepared::Poison(reason) => self.dead_letter(message, seq, reason).await,
            }
        }
        if batch.is_empty() {
            return;
        }
        let pipe = chunk_pipeline(&batch);
        let mut backoff = RETRY_FIRST;
        loop {
            let started = Instant::now();
            let written = pipe.query_async::<()>(&mut self.redis).await;
            prometheus::redis_timing("store", started);
            match written {
                Ok(()) => break,
                Err(e) if !is_transient(&e) => {
                    for span in &spans {
                        span.record("outcome", "refused");
                    }
                    tracing::warn!(error = %e, "Redis refused a chunk; storing one by one");
                    return self.store_one_by_one(batch).await;
                }
                Err(e) => {
                    tracing::warn!(error = %e, batch = batch.len(), "Redis write failed, retrying");
                    for (_, _, m) in &batch {
                        let _ = m.ack_with(AckKind::Progress).await;
                    }
                    tokio::select! {
                        _ = shutdown.cancelled() => {
                            for (_, _, m) in &batch {
                                let _ = m.ack_with(AckKind::Nak(None)).await;
                            }
                            return;
                        }
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(RETRY_MAX);
                }
            }
        }
        metrics::counter!(metric::WRITER_MESSAGES_STORED_TOTAL).increment(batch.len() as u64);
        metrics::histogram!(metric::WRITER_BATCH_SIZE).record(batch.len() as f64);
        for (_, _, message) in &batch {
            // A lost ack only causes a redelivery, which the history layout makes harmless.
            if let Err(e) = message.ack().await {
                tracing::warn!(error = %e, "ack failed; the message will be redelivered");
            }
        }
        for span in &spans {
            span.record("outcome", "stored");
        }
    }

    /// Stores each message of the failed chunk on its own, so the one Redis refuses is set aside
    /// and the others are acked.
    async fn store_one_by_one(&mut self, batch: Vec<(String, u64, JsMessage)>) {
        for (room_id, seq, message) in batch {
            let mut pipe = redis::pipe();
            history::queue_store(&mut pipe, &room_id, seq, &message.payload);
            match pipe.query_async::<()>(&mut self.redis).await {
                Ok(()) => {
                    metrics::counter!(metric::WRITER_MESSAGES_STORED_TOTAL).increment(1);
                    let _ = message.ack().await;
                }
                Err(e) if !is_transient(&e) => {
                    let delivered = message.info().map_or(0, |i| i.delivered);
                    if delivered >= layout::WRITER_POISON_ATTEMPTS {
                        let reason = format!("Redis refused it {delivered} times: {e}");
                        self.dead_letter(message, seq, reason).await;
                    } else {
                        tracing::warn!(seq, delivered, error = %e, "Redis refused a message; redelivering later");
                        let _ = message
                            .ack_with(AckKind::Nak(Some(POISON_REDELIVERY_DELAY)))
                            .await;
                    }
                }
                Err(e) => {
                    // Redis went away mid-way: leave the rest for redelivery.
                    tracing::warn!(seq, error = %e, "Redis write failed; redelivering");
                    let _ = message.ack_with(AckKind::Nak(None)).await;
                }
            }
        }
    }

    /// Sets a message aside: stores it with the reason in the dead-letter stream, then terminates
    /// its delivery so it no longer holds anything up. If the dead-letter store fails, the message
    /// is left for redelivery instead, so it is never dropped silently.
    async fn dead_letter(&self, message: JsMessage, seq: u64, reason: String) {
        tracing::error!(seq, %reason, "message cannot be stored, dead-lettering");
        metrics::counter!(metric::WRITER_DEAD_LETTERED_TOTAL).increment(1);
        let letter = DeadLetter {
            stream_seq: seq,
            subject: message.subject.to_string(),
            reason,
            payload: String::from_utf8_lossy(&message.payload).into_owned(),
        };
        let stored = match serde_json::to_vec(&letter) {
            Ok(bytes) => match self.js.publish(subjects::DEAD_LETTER, bytes.into()).await {
                Ok(ack) => ack.await.is_ok(),
                Err(_) => false,
            },
            Err(_) => false,
        };
        let kind = if stored {
            AckKind::Term
        } else {
            tracing::warn!(seq, "dead-letter store failed; redelivering");
            AckKind::Nak(Some(POISON_REDELIVERY_DELAY))
        };
        if let Err(e) = message.ack_with(kind).await {
            tracing::warn!(error = %e, "could not settle a dead-lettered message");
        }
    }
}

/// The `chat.store` span of one consumed message, child of the sender's span.
fn store_span(room_id: &str, seq: u64, message: &JsMessage) -> tracing::Span {
    let span = tracing::info_span!(
        "chat.store",
        otel.kind = "consumer",
        messaging.system = "nats",
        messaging.operation.type = "process",
        messaging.destination.name = %message.subject,
        messaging.consumer.group.name = layout::WRITER_CONSUMER,
        room.id = %room_id,
        message.seq = seq,
        dyschat.service = "dyschat-msg-writer",
        outcome = tracing::field::Empty,
    );
    telemetry::set_parent(&span, message.headers.as_ref());
    span
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(room: &str) -> Vec<u8> {
        serde_json::to_vec(&StoredMessage {
            room_id: room.into(),
            message_id: "m".into(),
            client_msg_id: "c".into(),
            sender_id: "u".into(),
            sender_name: "alice".into(),
            body: "hi".into(),
            sent_at: "2026-11-23T00:00:00.000Z".into(),
        })
        .unwrap()
    }

    #[test]
    fn valid_messages_are_stored_by_seq() {
        assert_eq!(
            prepare("dyschat.msg.room.r1", 7, &payload("r1")),
            Prepared::Store {
                room_id: "r1".into(),
                seq: 7
            }
        );
    }

    #[test]
    fn poison_is_recognised() {
        assert!(matches!(
            prepare("dyschat.msg.room.r1", 7, b"not json"),
            Prepared::Poison(_)
        ));
        assert!(matches!(
            prepare("dyschat.msg.room.r1", 7, &payload("r2")),
            Prepared::Poison(_)
        ));
    }
}
