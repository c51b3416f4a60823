//! Core-NATS event payloads exchanged between services.

use serde::{Deserialize, Serialize};

/// Published by rooms on `dyschat.events.membership.<room_id>` after a join or leave took effect.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MembershipEvent {
    pub room_id: String,
    pub user_id: String,
    pub username: String,
    pub joined: bool,
    /// The revision of the member record this change produced: consumers apply an event only if
    /// it is newer than what they know of `(room_id, user_id)`, so a late event never undoes a
    /// later change.
    #[serde(default)]
    pub revision: u64,
}

/// Published by a ws-agent on `dyschat.events.typing.<room_id>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TypingEvent {
    pub room_id: String,
    pub user_id: String,
    pub username: String,
}

/// Published by a ws-agent on `dyschat.events.presence.<user_id>` when the user's first socket on
/// that agent opens or its last one closes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PresenceEvent {
    pub user_id: String,
    pub online: bool,
}

/// What msg-writer publishes on the dead-letter subject for a message it could never store.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeadLetter {
    pub stream_seq: u64,
    pub subject: String,
    pub reason: String,
    /// The original payload, lossily decoded as UTF-8.
    pub payload: String,
}
