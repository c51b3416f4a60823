//! Consuming one chunk: check each entry ([`crate::batch::prepare`]), write the chunk room by
//! room (see [`crate::store`] for the rules), ack what was stored.
//!
//! Only an entry that can never be stored is set aside in the dead-letter stream, at first
//! sight: retrying it cannot help. Everything else is written until it is stored, whatever the
//! store answers.
//!
//! Each entry gets its own `chat.store` span, a child of the sender's `chat.send` (its context
//! is in the stored message's headers), covering the chunk's write and the entry's ack; spans
//! are only built while traces are exported.

use async_nats::jetstream::{message::Message as JsMessage, AckKind};
use dyschat_protocol::{layout, subjects, wire::DeadLetter};
use dyschat_runtime::{metric, telemetry};
use tokio_util::sync::CancellationToken;

use crate::batch::{group_by_room, prepare, stored_day, Item, Prepared};
use crate::redis_store::RedisHistory;
use crate::store::{self, Settle};

/// Where a consumed entry ends up: stored, or (poison only) set aside. Cheap to clone (both
/// handles share their connection), one clone per chunk in flight.
#[derive(Clone)]
pub struct Writer {
    pub(crate) js: async_nats::jetstream::Context,
    pub(crate) history: RedisHistory,
}

/// Acks the messages of one chunk by their position in it.
struct ChunkSettle<'a> {
    batch: &'a [Item<JsMessage>],
}

impl Settle for ChunkSettle<'_> {
    async fn ack(&self, index: usize) {
        if let Some(Item { message, .. }) = self.batch.get(index) {
            // A lost ack only causes a redelivery, which the history layout makes harmless.
            if let Err(e) = message.ack().await {
                tracing::warn!(error = %e, "ack failed; the message will be redelivered");
            }
        }
    }

    async fn progress(&self, index: usize) {
        if let Some(Item { message, .. }) = self.batch.get(index) {
            let _ = message.ack_with(AckKind::Progress).await;
        }
    }
}

impl Writer {
    /// Stores `messages` and acks them once stored; see the module documentation. At shutdown
    /// the unstored ones are left unacked: the consumer delivers them again, without a limit.
    pub async fn store_and_ack(&mut self, messages: Vec<JsMessage>, shutdown: &CancellationToken) {
        let exporting = telemetry::exporting();
        let mut batch = Vec::with_capacity(messages.len());
        let mut spans = Vec::with_capacity(if exporting { messages.len() } else { 0 });
        for message in messages {
            let (seq, day) = match message.info() {
                Ok(info) => (info.stream_sequence, stored_day(info.published)),
                Err(e) => {
                    tracing::warn!(error = %e, "message without JetStream metadata ignored");
                    continue;
                }
            };
            match prepare(&message.subject, seq, &message.payload) {
                Prepared::Poison(reason) => self.dead_letter(message, seq, reason).await,
                prepared => {
                    if let Some(item) = Item::new(prepared, day, message) {
                        if exporting {
                            spans.push(store_span(&item.room_id, seq, &item.message));
                        }
                        batch.push(item);
                    }
                }
            }
        }
        if batch.is_empty() {
            return;
        }
        let (rooms, indices) = group_by_room(&batch, |m: &JsMessage| m.payload.as_ref());
        let settle = ChunkSettle { batch: &batch };
        let outcome = store::write_chunk(
            &mut self.history,
            &settle,
            rooms,
            indices,
            store::RETRY,
            shutdown.cancelled(),
        )
        .await;
        metrics::counter!(metric::WRITER_MESSAGES_STORED_TOTAL).increment(outcome.stored as u64);
        metrics::counter!(metric::WRITER_STORE_REFUSED_TOTAL)
            .increment(u64::from(outcome.refused_attempts));
        metrics::histogram!(metric::WRITER_BATCH_SIZE).record(batch.len() as f64);
        let result = if outcome.interrupted {
            "interrupted"
        } else {
            "stored"
        };
        for span in &spans {
            span.record("outcome", result);
        }
    }

    /// Sets a poison message aside: stores it with the reason in the dead-letter stream, then
    /// terminates its delivery so it no longer holds anything up. If the dead-letter store
    /// fails, the message is left for redelivery instead, so it is never dropped silently.
    async fn dead_letter(&mut self, message: JsMessage, seq: u64, reason: String) {
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
        // The high water covers every message the writer settles, or the next check would take
        // this one's ack for a lost write and rebuild.
        let stored = stored && self.history.raise_high_water(seq).await.is_ok();
        let kind = if stored {
            AckKind::Term
        } else {
            tracing::warn!(seq, "dead-letter store failed; redelivering");
            AckKind::Nak(Some(store::RETRY.max))
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
