//! Changes to a stored message (edits, deletions, reactions): events of the room's ordered
//! sequence, each carrying the message's whole new state so that anyone applies it blindly.

use serde::{Deserialize, Serialize};

use crate::wire::StoredMessage;

/// What a change event did (the contract's `message_updated.change`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    Edited,
    Deleted,
    Reaction,
}

/// The payload of a change event, published on the changed message's own subject
/// (`dyschat.msg.room.<room_id>.chg.<seq>`, [`crate::subjects::room_change`]) and stored by the
/// messages stream in the room's sequence. `prev_event_seq` is the room's previous change event,
/// guaranteed by publishing with the room's last change sequence as the expected one: two
/// changes racing in a room cannot both be stored against the same predecessor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredChange {
    pub room_id: String,
    /// The `seq` of the changed message.
    pub seq: u64,
    /// The changed message's `prev_seq` (its place does not change; the first change of a
    /// message looks it up, later ones carry it on).
    pub prev_seq: u64,
    pub change: ChangeKind,
    pub prev_event_seq: u64,
    /// Who made the change.
    pub by: String,
    pub at: String,
    /// The message's whole state after the change (its `version` is 0 here: the event's own
    /// sequence is only known once stored).
    pub message: StoredMessage,
}
