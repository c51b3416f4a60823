//! Room messages: what is stored in JetStream and Redis, and what clients see.

use serde::{Deserialize, Serialize};

/// The payload published to JetStream, and a message's state as Redis keeps it. It carries no
/// sequence numbers of its own place: the stream assigns `seq`, and `prev_seq` follows from the
/// room's order, so a redelivery or rebuild writes exactly the same bytes again.
///
/// A send publishes the fields down to `attachments`; the state fields after them (`edited_at`,
/// `deleted`, `reactions`, `version`) are empty then and left out of the bytes, and are filled in
/// the message state that a change event carries ([`crate::wire::StoredChange`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredMessage {
    pub room_id: String,
    pub message_id: String,
    pub client_msg_id: String,
    pub sender_id: String,
    pub sender_name: String,
    pub body: String,
    pub sent_at: String,
    /// The `seq` of the message this one answers (an undeleted message of the same room).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<u64>,
    /// Who sent the message at `reply_to`, read when the reply was sent: the feed tells them
    /// without reading the parent again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to_sender: Option<String>,
    /// The user ids of the members the body mentions (see [`crate::mentions`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mentions: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<File>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edited_at: Option<String>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub deleted: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reactions: Vec<Reaction>,
    /// The `event_seq` of the change this state is the result of, 0 for the message as sent:
    /// what msg-writer compares so that a late or repeated change never replaces a newer state.
    /// Set by whoever stores the state (the stream's sequence is not known before publishing).
    #[serde(default, rename = "v", skip_serializing_if = "is_zero")]
    pub version: u64,
}

fn is_false(b: &bool) -> bool {
    !*b
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl StoredMessage {
    /// A message as a send publishes it: no state of changes yet.
    pub fn sent(
        room_id: String,
        message_id: String,
        client_msg_id: String,
        sender_id: String,
        sender_name: String,
        body: String,
        sent_at: String,
    ) -> Self {
        StoredMessage {
            room_id,
            message_id,
            client_msg_id,
            sender_id,
            sender_name,
            body,
            sent_at,
            reply_to: None,
            reply_to_sender: None,
            mentions: Vec::new(),
            attachments: Vec::new(),
            edited_at: None,
            deleted: false,
            reactions: Vec::new(),
            version: 0,
        }
    }

    /// The message after its deletion: who sent it, when and where stay; its text, files,
    /// mentions and reactions are gone.
    pub fn erased(mut self) -> Self {
        self.body = String::new();
        self.attachments.clear();
        self.reactions.clear();
        self.mentions.clear();
        self.deleted = true;
        self
    }
}

/// One emoji's reactions to a message, in the order users reacted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Reaction {
    pub emoji: String,
    pub count: u32,
    pub user_ids: Vec<String>,
}

/// An uploaded file (contract section 9).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct File {
    pub file_id: String,
    pub room_id: String,
    pub name: String,
    pub size: u64,
    pub content_type: String,
    pub sha256: String,
    pub uploaded_by: String,
    pub created_at: String,
}

/// A message as the contract shows it: its current state plus its place in the room's order.
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
    pub reply_to: Option<u64>,
    pub edited_at: Option<String>,
    pub deleted: bool,
    pub reactions: Vec<Reaction>,
    pub mentions: Vec<String>,
    pub attachments: Vec<File>,
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
            reply_to: stored.reply_to,
            edited_at: stored.edited_at,
            deleted: stored.deleted,
            reactions: stored.reactions,
            mentions: stored.mentions,
            attachments: stored.attachments,
        }
    }
}

/// The `Nats-Msg-Id` of a send: the same `(sender, room, client_msg_id)` always maps to the same
/// id, so JetStream drops a retried publish and answers with the first message's sequence.
pub fn dedupe_id(sender_id: &str, room_id: &str, client_msg_id: &str) -> String {
    format!("{sender_id}:{room_id}:{client_msg_id}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sent() -> StoredMessage {
        StoredMessage::sent(
            "r".into(),
            "m".into(),
            "c".into(),
            "u".into(),
            "ann".into(),
            "hi".into(),
            "2026-01-01T00:00:00Z".into(),
        )
    }

    #[test]
    fn a_sent_message_keeps_the_v1_bytes() {
        let json = serde_json::to_string(&sent()).unwrap();
        assert_eq!(
            json,
            r#"{"room_id":"r","message_id":"m","client_msg_id":"c","sender_id":"u","sender_name":"ann","body":"hi","sent_at":"2026-01-01T00:00:00Z"}"#
        );
        let back: StoredMessage = serde_json::from_str(&json).unwrap();
        assert_eq!(back, sent());
    }

    #[test]
    fn an_erased_message_keeps_only_where_and_who() {
        let mut m = sent();
        m.reactions.push(Reaction {
            emoji: "👍".into(),
            count: 1,
            user_ids: vec!["u2".into()],
        });
        m.mentions.push("u2".into());
        m.reply_to = Some(3);
        let e = m.erased();
        assert!(e.deleted && e.body.is_empty() && e.reactions.is_empty() && e.mentions.is_empty());
        assert_eq!((e.reply_to, e.message_id.as_str()), (Some(3), "m"));
        let v: serde_json::Value = serde_json::to_value(Message::from_stored(e, 4, 3)).unwrap();
        assert_eq!(v["deleted"], true);
        assert_eq!(v["body"], "");
        assert_eq!(v["attachments"], serde_json::json!([]));
        assert_eq!(v["edited_at"], serde_json::Value::Null);
    }
}
