//! What one entry of the messages stream means to the index (pure): a message, or a change event
//! carrying its message's whole new state, checked like msg-writer checks them.

use dyschat_protocol::subjects;
use dyschat_protocol::wire::{ChangeKind, StoredChange, StoredMessage};

/// A message's state at a version: what the index upserts. `version` is 0 for the message as
/// sent and the change event's stream sequence for a change, so a newer state always has a higher
/// version and a late or repeated one is recognised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upsert {
    pub room_id: String,
    pub seq: u64,
    pub version: u64,
    pub state: StoredMessage,
}

/// Reads the entry at stream sequence `stream_seq`; `Err` says why it can never be indexed.
pub fn decode(subject: &str, stream_seq: u64, payload: &[u8]) -> Result<Upsert, String> {
    if let Some((room_id, seq)) = subjects::parse_change(subject) {
        let change: StoredChange = serde_json::from_slice(payload)
            .map_err(|e| format!("payload is not a stored change: {e}"))?;
        if change.room_id != room_id || change.message.room_id != room_id || change.seq != seq {
            return Err(format!("change does not match its subject {subject}"));
        }
        if seq == 0 || seq >= stream_seq {
            return Err(format!("change at {stream_seq} of message {seq}"));
        }
        let erase = change.change == ChangeKind::Deleted || change.message.deleted;
        let mut state = if erase {
            change.message.erased()
        } else {
            change.message
        };
        state.version = stream_seq;
        return Ok(Upsert {
            room_id: room_id.to_string(),
            seq,
            version: stream_seq,
            state,
        });
    }
    let room_id = subjects::parse_room_messages(subject)
        .ok_or_else(|| format!("subject {subject} names no valid room"))?;
    let state: StoredMessage = serde_json::from_slice(payload)
        .map_err(|e| format!("payload is not a stored message: {e}"))?;
    if state.room_id != room_id {
        return Err(format!("payload room does not match subject {subject}"));
    }
    Ok(Upsert {
        room_id: room_id.to_string(),
        seq: stream_seq,
        version: 0,
        state: StoredMessage {
            version: 0,
            ..state
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(body: &str) -> StoredMessage {
        StoredMessage::sent(
            "r1".into(),
            "m".into(),
            "c".into(),
            "u".into(),
            "ann".into(),
            body.into(),
            "2026-01-01T00:00:00.000Z".into(),
        )
    }

    fn change(kind: ChangeKind, seq: u64, body: &str) -> Vec<u8> {
        serde_json::to_vec(&StoredChange {
            room_id: "r1".into(),
            seq,
            prev_seq: 0,
            change: kind,
            prev_event_seq: 0,
            by: "u".into(),
            at: "2026-01-01T00:00:01.000Z".into(),
            message: message(body),
        })
        .unwrap()
    }

    #[test]
    fn messages_and_changes_become_versioned_states() {
        let m = decode(
            "dyschat.msg.room.r1",
            5,
            &serde_json::to_vec(&message("hi")).unwrap(),
        )
        .unwrap();
        assert_eq!((m.seq, m.version, m.state.body.as_str()), (5, 0, "hi"));
        let e = decode(
            "dyschat.msg.room.r1.chg.5",
            9,
            &change(ChangeKind::Edited, 5, "new"),
        )
        .unwrap();
        assert_eq!((e.seq, e.version, e.state.body.as_str()), (5, 9, "new"));
        let d = decode(
            "dyschat.msg.room.r1.chg.5",
            10,
            &change(ChangeKind::Deleted, 5, "x"),
        )
        .unwrap();
        assert!(d.state.deleted && d.state.body.is_empty());
    }

    #[test]
    fn mismatches_are_refused() {
        assert!(decode(
            "dyschat.msg.room.r2",
            5,
            &serde_json::to_vec(&message("hi")).unwrap()
        )
        .is_err());
        assert!(decode("dyschat.msg.room.r1", 5, b"{").is_err());
        assert!(decode(
            "dyschat.msg.room.r1.chg.6",
            9,
            &change(ChangeKind::Edited, 5, "x")
        )
        .is_err());
        assert!(decode(
            "dyschat.msg.room.r1.chg.5",
            5,
            &change(ChangeKind::Edited, 5, "x")
        )
        .is_err());
        assert!(decode("dyschat.other", 5, b"{}").is_err());
    }
}
