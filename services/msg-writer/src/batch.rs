//! One chunk of consumed messages: validate, write in one Redis pipeline, then ack.

use std::time::Duration;

use async_nats::jetstream::{message::Message as JsMessage, AckKind};
use dyschat_shared::{history, subjects, wire::DeadLetter, wire::StoredMessage};
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

/// Stores `messages` and acks them. A Redis failure is retried (the messages are kept in progress
/// so the server does not hand them to another writer meanwhile) until it succeeds or shutdown
/// begins, in which case they are left unacked for redelivery.
pub async fn store_and_ack(
    client: &async_nats::Client,
    redis: &mut ConnectionManager,
    messages: Vec<JsMessage>,
    shutdown: &CancellationToken,
) {
    let mut pipe = redis::pipe();
    let mut to_ack = Vec::with_capacity(messages.len());
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
                history::queue_store(&mut pipe, &room_id, seq, &message.payload);
                to_ack.push(message);
            }
            Prepared::Poison(reason) => dead_letter(client, message, seq, reason).await,
        }
    }
    if to_ack.is_empty() {
        return;
    }
    let mut backoff = RETRY_FIRST;
    loop {
        match pipe.query_async::<()>(redis).await {
            Ok(()) => break,
            Err(e) => {
                tracing::warn!(error = %e, batch = to_ack.len(), "Redis write failed, retrying");
                for m in &to_ack {
                    let _ = m.ack_with(AckKind::Progress).await;
                }
                tokio::select! {
                    _ = shutdown.cancelled() => {
                        for m in &to_ack {
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
    for message in &to_ack {
        // An ack that gets lost only causes a redelivery, which the layout makes harmless.
        if let Err(e) = message.ack().await {
            tracing::warn!(error = %e, "ack failed; the message will be redelivered");
        }
    }
}

/// Sets a message aside: publishes it with the reason on the dead-letter subject and terminates
/// its delivery so it no longer blocks anything.
async fn dead_letter(client: &async_nats::Client, message: JsMessage, seq: u64, reason: String) {
    tracing::error!(seq, %reason, "message cannot be stored, dead-lettered");
    let letter = DeadLetter {
        stream_seq: seq,
        subject: message.subject.to_string(),
        reason,
        payload: String::from_utf8_lossy(&message.payload).into_owned(),
    };
    match serde_json::to_vec(&letter) {
        Ok(bytes) => {
            if let Err(e) = client.publish(subjects::DEAD_LETTER, bytes.into()).await {
                tracing::warn!(error = %e, "dead-letter publish failed");
            }
        }
        Err(e) => tracing::error!(error = %e, "dead letter not encodable"),
    }
    if let Err(e) = message.ack_with(AckKind::Term).await {
        tracing::warn!(error = %e, "term failed");
    }
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
