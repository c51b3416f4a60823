//! One chunk of consumed messages: check each, group them by room, write them (see [`crate::store`]
//! for the rules), ack what was stored.
//!
//! Only a payload that can never be a room message (not a stored message, or one naming another
//! room than its subject) is set aside in the dead-letter stream, at first sight: retrying it
//! cannot help. Everything else is written until it is stored, whatever the store answers.
//!
//! Each message gets its own `chat.store` span, a child of the sender's `chat.send` (its context
//! is in the stored message's headers), covering the chunk's write and the message's ack; spans
//! are only built while traces are exported.

use std::collections::HashMap;

use async_nats::jetstream::{message::Message as JsMessage, AckKind};
use dyschat_protocol::{layout, subjects, wire::DeadLetter, wire::StoredMessage};
use dyschat_runtime::{metric, telemetry};
use tokio_util::sync::CancellationToken;

use crate::redis_store::RedisHistory;
use crate::store::{self, RoomWrite, Settle};

/// A message ready to store, or the reason it can never be stored.
#[derive(Debug, PartialEq, Eq)]
pub enum Prepared {
    Store {
        room_id: String,
        seq: u64,
        /// Its field in the retried-send index (`<sender>:<client_msg_id>`).
        sent_as: String,
    },
    Poison(String),
}

/// One message of a chunk, checked, with what the writes need.
#[derive(Debug)]
pub(crate) struct Item<T> {
    pub room_id: String,
    pub seq: u64,
    pub sent_as: String,
    /// The UTC day it was stored (for the retried-send index).
    pub day: u64,
    pub message: T,
}

/// The UTC day of a consumed message, from the time JetStream stored it.
pub(crate) fn stored_day(published: time::OffsetDateTime) -> u64 {
    let ms = published.unix_timestamp_nanos() / 1_000_000;
    layout::history::day_of(i64::try_from(ms).unwrap_or(0))
}

/// Checks one consumed message: its subject names a room, its payload is a [`StoredMessage`] of
/// that room. Pure, so it is unit-tested without servers.
pub fn prepare(subject: &str, stream_seq: u64, payload: &[u8]) -> Prepared {
    let Some(room_id) = subjects::parse_room_messages(subject) else {
        return Prepared::Poison(format!("subject {subject} names no valid room"));
    };
    match serde_json::from_slice::<StoredMessage>(payload) {
        Ok(m) if m.room_id == room_id => Prepared::Store {
            room_id: room_id.to_string(),
            seq: stream_seq,
            sent_as: layout::history::dedupe_field(&m.sender_id, &m.client_msg_id),
        },
        Ok(m) => Prepared::Poison(format!(
            "payload room {} does not match subject room {room_id}",
            m.room_id
        )),
        Err(e) => Prepared::Poison(format!("payload is not a stored message: {e}")),
    }
}

/// The messages of a chunk grouped by room, in order of first appearance: one write per room,
/// and for each room the positions (in `batch`) of its messages, to ack them.
pub(crate) fn group_by_room<'a, T>(
    batch: &'a [Item<T>],
    payload: impl Fn(&'a T) -> &'a [u8],
) -> (Vec<RoomWrite<'a>>, Vec<Vec<usize>>) {
    let mut position: HashMap<&str, usize> = HashMap::new();
    let mut rooms: Vec<RoomWrite<'a>> = Vec::new();
    let mut indices: Vec<Vec<usize>> = Vec::new();
    for (i, item) in batch.iter().enumerate() {
        let at = *position.entry(item.room_id.as_str()).or_insert_with(|| {
            rooms.push(RoomWrite {
                room_id: item.room_id.as_str(),
                messages: Vec::new(),
                sends: Vec::new(),
            });
            indices.push(Vec::new());
            rooms.len() - 1
        });
        rooms[at].messages.push((item.seq, payload(&item.message)));
        rooms[at]
            .sends
            .push((item.day, item.sent_as.as_str(), item.seq));
        indices[at].push(i);
    }
    (rooms, indices)
}

/// Where a consumed message ends up: stored, or (poison only) set aside. Cheap to clone (both
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
                Prepared::Store {
                    room_id,
                    seq,
                    sent_as,
                } => {
                    if exporting {
                        spans.push(store_span(&room_id, seq, &message));
                    }
                    batch.push(Item {
                        room_id,
                        seq,
                        sent_as,
                        day,
                        message,
                    });
                }
                Prepared::Poison(reason) => self.dead_letter(message, seq, reason).await,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(room: &str) -> Vec<u8> {
        serde_json::to_vec(&StoredMessage::sent(
            room.into(),
            "m".into(),
            "c".into(),
            "u".into(),
            "alice".into(),
            "hi".into(),
            "2026-11-23T00:00:00.000Z".into(),
        ))
        .unwrap()
    }

    #[test]
    fn valid_messages_are_stored_by_seq() {
        assert_eq!(
            prepare("dyschat.msg.room.r1", 7, &payload("r1")),
            Prepared::Store {
                room_id: "r1".into(),
                seq: 7,
                sent_as: "u:c".into(),
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
        assert!(matches!(
            prepare("dyschat.other.r1", 7, &payload("r1")),
            Prepared::Poison(_)
        ));
    }

    #[test]
    fn messages_are_grouped_by_room_in_order() {
        let item = |room: &str, seq: u64, payload: &[u8]| Item {
            room_id: room.to_string(),
            seq,
            sent_as: format!("u:{seq}"),
            day: 20_000,
            message: payload.to_vec(),
        };
        let batch = vec![item("a", 1, b"1"), item("b", 2, b"2"), item("a", 3, b"3")];
        let (rooms, indices) = group_by_room(&batch, |p: &Vec<u8>| p.as_slice());
        assert_eq!(rooms.len(), 2);
        assert_eq!(rooms[0].room_id, "a");
        assert_eq!(rooms[0].messages, vec![(1, &b"1"[..]), (3, &b"3"[..])]);
        assert_eq!(rooms[0].sends, vec![(20_000, "u:1", 1), (20_000, "u:3", 3)]);
        assert_eq!(indices, vec![vec![0, 2], vec![1]]);
    }
}
