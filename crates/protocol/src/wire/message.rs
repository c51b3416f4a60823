//! Room messages: what is stored in JetStream and Redis, and what clients see.

use serde::{Deserialize, Serialize};

/// The payload published to JetStream and kept verbatim in Redis. It carries no sequence numbers:
/// the stream assigns `seq`, and `prev_seq` follows from the room's order, so stored bytes never
/// need rewriting and a redelivery or rebuild writes exactly the same bytes again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredMessage {
    pub room_id: String,
    pub message_id: String,
    pub client_msg_id: String,
    pub sender_id: String,
    pub sender_name: String,
    pub body: String,
    pub sent_at: String,
}

/// A message as the contract shows it: the stored payload plus its place in the room's order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Message {
    pub room_id: String,
    pub seq: u64,
    pub prev_seq: u64,
    pub message_id: String,
    pub client_msg_id: String,
    pub sender_id: String,
    pub sender_name: String,
    pub body: String,
    pub sent_at: String,
}

impl Message {
    pub fn from_stored(stored: StoredMessage, seq: u64, prev_seq: u64) -> Self {
        Message {
            room_id: stored.room_id,
            seq,
            prev_seq,
            message_id: stored.message_id,
            client_msg_id: stored.client_msg_id,
            sender_id: stored.sender_id,
            sender_name: stored.sender_name,
            body: stored.body,
            sent_at: stored.sent_at,
        }
    }
}

/// The `Nats-Msg-Id` of a send: the same `(sender, room, client_msg_id)` always maps to the same
/// id, so JetStream drops a retried publish and answers with the first message's sequence.
pub fn dedupe_id(sender_id: &str, room_id: &str, client_msg_id: &str) -> String {
    format!("{sender_id}:{room_id}:{client_msg_id}")
}
