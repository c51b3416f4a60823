//! WebSocket frames: one JSON object per text frame, tagged by `type`.
//!
//! Decoding keeps the client's `ref` even when the rest of the frame is wrong, so the `error`
//! answer can echo it; every failure becomes a `bad_request` with serde's description of what was
//! wrong (unknown type, missing field, wrong type).

use serde::{Deserialize, Serialize};

use crate::error::{ApiError, ErrorCode};
use crate::wire::{ChangeKind, Message, Notification, Role, Room};

/// The largest text frame accepted; bigger ones close the socket with 1009.
pub const MAX_FRAME_BYTES: usize = 64 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientFrame {
    Auth {
        token: String,
    },
    Join {
        room_id: String,
        #[serde(default)]
        since: Option<u64>,
    },
    Leave {
        room_id: String,
    },
    Send {
        room_id: String,
        body: String,
        #[serde(default)]
        client_msg_id: Option<String>,
        #[serde(default)]
        reply_to: Option<u64>,
        /// File ids (contract section 9).
        #[serde(default)]
        attachments: Option<Vec<String>>,
    },
    /// Replaces the body of the user's own message.
    Edit {
        room_id: String,
        seq: u64,
        body: String,
    },
    Delete {
        room_id: String,
        seq: u64,
    },
    React {
        room_id: String,
        seq: u64,
        emoji: String,
    },
    Unreact {
        room_id: String,
        seq: u64,
        emoji: String,
    },
    Typing {
        room_id: String,
    },
    History {
        room_id: String,
        #[serde(default)]
        before: Option<u64>,
        #[serde(default)]
        limit: Option<u32>,
    },
    /// Moves the user's read marker in the room forward to `seq`.
    Read {
        room_id: String,
        seq: u64,
    },
    Ping {},
}

impl ClientFrame {
    /// The frame's `type`, a fixed set (the `type` label of `dyschat_ws_frames_in_total`).
    pub fn kind(&self) -> &'static str {
        match self {
            ClientFrame::Auth { .. } => "auth",
            ClientFrame::Join { .. } => "join",
            ClientFrame::Leave { .. } => "leave",
            ClientFrame::Send { .. } => "send",
            ClientFrame::Edit { .. } => "edit",
            ClientFrame::Delete { .. } => "delete",
            ClientFrame::React { .. } => "react",
            ClientFrame::Unreact { .. } => "unreact",
            ClientFrame::Typing { .. } => "typing",
            ClientFrame::History { .. } => "history",
            ClientFrame::Read { .. } => "read",
            ClientFrame::Ping {} => "ping",
        }
    }
}

/// A decoded client frame and its `ref`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inbound {
    pub reference: Option<String>,
    pub frame: ClientFrame,
}

/// A frame that could not be decoded, with whatever `ref` could be read from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError {
    pub reference: Option<String>,
    pub error: ApiError,
}

/// Decodes one text frame.
pub fn decode_client_frame(text: &str) -> Result<Inbound, DecodeError> {
    let fail = |reference, message: String| DecodeError {
        reference,
        error: ApiError::bad_request(message),
    };
    let mut value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| fail(None, format!("invalid JSON: {e}")))?;
    let Some(object) = value.as_object_mut() else {
        return Err(fail(None, "a frame must be a JSON object".into()));
    };
    let reference = match object.remove("ref") {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::String(s)) if s.len() <= 128 => Some(s),
        Some(_) => {
            return Err(fail(
                None,
                "ref must be a string of at most 128 bytes".into(),
            ))
        }
    };
    match serde_json::from_value::<ClientFrame>(value) {
        Ok(frame) => Ok(Inbound { reference, frame }),
        Err(e) => Err(fail(reference, e.to_string())),
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerFrame {
    Ready {
        user_id: String,
        username: String,
        #[serde(rename = "ref", default, skip_serializing_if = "Option::is_none")]
        reference: Option<String>,
    },
    Joined {
        room_id: String,
        last_seq: u64,
        /// The room's newest sequence value of either kind, message or change.
        last_event_seq: u64,
        recovered: bool,
        #[serde(rename = "ref", default, skip_serializing_if = "Option::is_none")]
        reference: Option<String>,
    },
    Left {
        room_id: String,
        #[serde(rename = "ref", default, skip_serializing_if = "Option::is_none")]
        reference: Option<String>,
    },
    Ack {
        room_id: String,
        client_msg_id: String,
        seq: u64,
        message_id: String,
        sent_at: String,
        duplicate: bool,
        /// The trace of this send (32 hex digits) to look up in Jaeger; absent when traces are
        /// not exported. An addition to the contract's `ack`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        trace_id: Option<String>,
        #[serde(rename = "ref", default, skip_serializing_if = "Option::is_none")]
        reference: Option<String>,
    },
    History {
        room_id: String,
        messages: Vec<Message>,
        has_more: bool,
        #[serde(rename = "ref", default, skip_serializing_if = "Option::is_none")]
        reference: Option<String>,
    },
    Pong {
        #[serde(rename = "ref", default, skip_serializing_if = "Option::is_none")]
        reference: Option<String>,
    },
    Message(Message),
    /// The answer to `edit`.
    Edited {
        room_id: String,
        seq: u64,
        edited_at: String,
        #[serde(rename = "ref", default, skip_serializing_if = "Option::is_none")]
        reference: Option<String>,
    },
    /// The answer to `delete`.
    Deleted {
        room_id: String,
        seq: u64,
        #[serde(rename = "ref", default, skip_serializing_if = "Option::is_none")]
        reference: Option<String>,
    },
    /// The answer to `react`.
    Reacted {
        room_id: String,
        seq: u64,
        emoji: String,
        #[serde(rename = "ref", default, skip_serializing_if = "Option::is_none")]
        reference: Option<String>,
    },
    /// The answer to `unreact`.
    Unreacted {
        room_id: String,
        seq: u64,
        emoji: String,
        #[serde(rename = "ref", default, skip_serializing_if = "Option::is_none")]
        reference: Option<String>,
    },
    /// A change event of the room: `message` is the message's whole new state.
    MessageUpdated {
        room_id: String,
        change: ChangeKind,
        message: Message,
        event_seq: u64,
        prev_event_seq: u64,
    },
    MemberJoined {
        room_id: String,
        user_id: String,
        username: String,
    },
    MemberLeft {
        room_id: String,
        user_id: String,
        username: String,
    },
    Presence {
        room_id: String,
        user_id: String,
        online: bool,
    },
    Typing {
        room_id: String,
        user_id: String,
        username: String,
    },
    /// The socket's user was kicked or banned from the room (`by`: a user id; `reason`: `""`
    /// when none was given): the last frame of that room on this socket.
    Kicked {
        room_id: String,
        by: String,
        reason: String,
    },
    /// The room was deleted: the last frame of that room on this socket.
    RoomDeleted {
        room_id: String,
    },
    /// The room's name, topic, visibility or owner changed.
    RoomUpdated {
        room: Room,
    },
    /// A member's role changed.
    MemberRole {
        room_id: String,
        user_id: String,
        role: Role,
    },
    /// The user's read marker in the room: the answer to `read` (with its `ref`), and sent to
    /// every socket of the user, on every agent, when the marker moves.
    ReadMarker {
        room_id: String,
        seq: u64,
        #[serde(rename = "ref", default, skip_serializing_if = "Option::is_none")]
        reference: Option<String>,
    },
    /// Another member of a room of at most 100 members read up to `seq`.
    Receipt {
        room_id: String,
        user_id: String,
        seq: u64,
    },
    /// A new entry of the user's feed, on every socket of the user.
    Notification {
        notification: Notification,
    },
    Error {
        code: ErrorCode,
        message: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        retry_after_ms: Option<u64>,
        #[serde(rename = "ref", default, skip_serializing_if = "Option::is_none")]
        reference: Option<String>,
    },
}

impl ServerFrame {
    /// The frame's `type`, a fixed set (the `type` label of `dyschat_ws_frames_out_total`).
    pub fn kind(&self) -> &'static str {
        match self {
            ServerFrame::Ready { .. } => "ready",
            ServerFrame::Joined { .. } => "joined",
            ServerFrame::Left { .. } => "left",
            ServerFrame::Ack { .. } => "ack",
            ServerFrame::History { .. } => "history",
            ServerFrame::Pong { .. } => "pong",
            ServerFrame::Message(_) => "message",
            ServerFrame::Edited { .. } => "edited",
            ServerFrame::Deleted { .. } => "deleted",
            ServerFrame::Reacted { .. } => "reacted",
            ServerFrame::Unreacted { .. } => "unreacted",
            ServerFrame::MessageUpdated { .. } => "message_updated",
            ServerFrame::MemberJoined { .. } => "member_joined",
            ServerFrame::MemberLeft { .. } => "member_left",
            ServerFrame::Presence { .. } => "presence",
            ServerFrame::Typing { .. } => "typing",
            ServerFrame::Kicked { .. } => "kicked",
            ServerFrame::RoomDeleted { .. } => "room_deleted",
            ServerFrame::RoomUpdated { .. } => "room_updated",
            ServerFrame::MemberRole { .. } => "member_role",
            ServerFrame::ReadMarker { .. } => "read_marker",
            ServerFrame::Receipt { .. } => "receipt",
            ServerFrame::Notification { .. } => "notification",
            ServerFrame::Error { .. } => "error",
        }
    }

    pub fn error(error: ApiError, reference: Option<String>) -> Self {
        ServerFrame::Error {
            code: error.code,
            message: error.message,
            retry_after_ms: error.retry_after_ms,
            reference,
        }
    }

    /// Serializes the frame. Our own types always serialize, so a failure is a bug; it is logged
    /// and answered with a fixed `internal` error rather than panicking.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|e| {
            tracing::error!(error = %e, "could not serialize a server frame");
            r#"{"type":"error","code":"internal","message":"serialization failed"}"#.to_string()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_frames_and_refs() {
        let i =
            decode_client_frame(r#"{"type":"send","room_id":"r","body":"hi","ref":"7"}"#).unwrap();
        assert_eq!(i.reference.as_deref(), Some("7"));
        assert_eq!(
            i.frame,
            ClientFrame::Send {
                room_id: "r".into(),
                body: "hi".into(),
                client_msg_id: None,
                reply_to: None,
                attachments: None,
            }
        );
        let i = decode_client_frame(r#"{"type":"read","room_id":"r","seq":3}"#).unwrap();
        assert_eq!(
            i.frame,
            ClientFrame::Read {
                room_id: "r".into(),
                seq: 3
            }
        );
        let i = decode_client_frame(r#"{"type":"ping"}"#).unwrap();
        assert_eq!(i.frame, ClientFrame::Ping {});
        let i = decode_client_frame(r#"{"type":"join","room_id":"r","since":5}"#).unwrap();
        assert_eq!(
            i.frame,
            ClientFrame::Join {
                room_id: "r".into(),
                since: Some(5)
            }
        );
    }

    #[test]
    fn errors_keep_the_ref_and_say_what_is_wrong() {
        let e = decode_client_frame("{nope").unwrap_err();
        assert_eq!(e.error.code, ErrorCode::BadRequest);
        assert!(e.error.message.contains("invalid JSON"));

        let e = decode_client_frame(r#"{"type":"dance","ref":"a"}"#).unwrap_err();
        assert_eq!(e.reference.as_deref(), Some("a"));
        assert!(
            e.error.message.contains("unknown variant"),
            "{}",
            e.error.message
        );

        let e = decode_client_frame(r#"{"type":"send","room_id":"r","ref":"b"}"#).unwrap_err();
        assert_eq!(e.reference.as_deref(), Some("b"));
        assert!(e.error.message.contains("body"), "{}", e.error.message);

        assert!(decode_client_frame("[1,2]").is_err());
        assert!(decode_client_frame(r#"{"room_id":"r"}"#).is_err());
        assert!(decode_client_frame(r#"{"type":"join","room_id":"r","since":-1}"#).is_err());
    }

    #[test]
    fn server_frame_kinds_are_their_type_field() {
        let frames = [
            ServerFrame::Pong { reference: None },
            ServerFrame::error(ApiError::rate_limited(1), None),
            ServerFrame::Left {
                room_id: "r".into(),
                reference: None,
            },
        ];
        for frame in frames {
            let v: serde_json::Value = serde_json::from_str(&frame.to_json()).unwrap();
            assert_eq!(v["type"], frame.kind());
        }
    }

    #[test]
    fn server_frames_serialize_with_type_and_ref() {
        let f = ServerFrame::Pong {
            reference: Some("x".into()),
        };
        assert_eq!(f.to_json(), r#"{"type":"pong","ref":"x"}"#);
        let f = ServerFrame::error(ApiError::rate_limited(250), None);
        let v: serde_json::Value = serde_json::from_str(&f.to_json()).unwrap();
        assert_eq!(v["type"], "error");
        assert_eq!(v["code"], "rate_limited");
        assert_eq!(v["retry_after_ms"], 250);
    }
}
