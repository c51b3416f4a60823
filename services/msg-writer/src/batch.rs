//! What a consumed stream entry is, and one chunk's entries grouped by room: pure, so the rules
//! are unit-tested without servers.
//!
//! The writer's consumer takes everything the messages stream holds: messages on
//! `dyschat.msg.room.<room>` and change events (edits, deletions, reactions) on
//! `dyschat.msg.room.<room>.chg.<seq>`. The subject tells them apart. A change carries the
//! message's whole new state; it is stored with the event's own stream sequence as its version
//! (see [`crate::apply`]). Only an entry that can never be stored (not a stored message or change,
//! or one naming another room or message than its subject) is poison, set aside at first sight.

use std::collections::HashMap;

use dyschat_protocol::wire::{ChangeKind, StoredChange, StoredMessage};
use dyschat_protocol::{layout, subjects};

use crate::apply::replaces;
use crate::store::RoomWrite;

/// A consumed entry ready to store, or the reason it can never be stored.
#[derive(Debug, PartialEq, Eq)]
pub enum Prepared {
    /// A message as sent, at `seq` (its stream sequence).
    Store {
        room_id: String,
        seq: u64,
        /// Its field in the retried-send index (`<sender>:<client_msg_id>`).
        sent_as: String,
    },
    /// A change event, stored at `event_seq`, of the room's message `change.seq`.
    Change {
        room_id: String,
        event_seq: u64,
        change: Change,
    },
    Poison(String),
}

/// What a change event writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// The changed message.
    pub seq: u64,
    /// Who sent the changed message (for the per-sender sets, which a rebuild fills from the
    /// change when the deleted original has left the stream).
    pub sender_id: String,
    /// A deletion: the message is stored erased, then erased from the stream.
    pub erase: bool,
    /// The message's new state, serialized with `version` = the event's stream sequence.
    pub state: Vec<u8>,
}

/// One entry of a chunk, checked, with what the writes need.
#[derive(Debug)]
pub(crate) struct Item<T> {
    pub room_id: String,
    /// Its stream sequence.
    pub seq: u64,
    pub kind: Kind,
    pub message: T,
}

#[derive(Debug)]
pub(crate) enum Kind {
    Message {
        sent_as: String,
        /// The UTC day it was stored (for the retried-send index).
        day: u64,
    },
    Change(Change),
}

impl<T> Item<T> {
    /// The item of a prepared entry (`None` for poison); `day` is when it was stored.
    pub(crate) fn new(prepared: Prepared, day: u64, message: T) -> Option<Item<T>> {
        match prepared {
            Prepared::Store {
                room_id,
                seq,
                sent_as,
            } => Some(Item {
                room_id,
                seq,
                kind: Kind::Message { sent_as, day },
                message,
            }),
            Prepared::Change {
                room_id,
                event_seq,
                change,
            } => Some(Item {
                room_id,
                seq: event_seq,
                kind: Kind::Change(change),
                message,
            }),
            Prepared::Poison(_) => None,
        }
    }
}

/// The UTC day of a consumed message, from the time JetStream stored it.
pub(crate) fn stored_day(published: time::OffsetDateTime) -> u64 {
    let ms = published.unix_timestamp_nanos() / 1_000_000;
    layout::history::day_of(i64::try_from(ms).unwrap_or(0))
}

/// Checks one consumed entry at `stream_seq`: a message of the room its subject names, or a
/// change of that room's message its subject names.
pub fn prepare(subject: &str, stream_seq: u64, payload: &[u8]) -> Prepared {
    if let Some((room_id, seq)) = subjects::parse_change(subject) {
        return prepare_change(room_id, seq, stream_seq, payload);
    }
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

fn prepare_change(room_id: &str, seq: u64, event_seq: u64, payload: &[u8]) -> Prepared {
    let change = match serde_json::from_slice::<StoredChange>(payload) {
        Ok(c) => c,
        Err(e) => return Prepared::Poison(format!("payload is not a stored change: {e}")),
    };
    if change.room_id != room_id || change.message.room_id != room_id || change.seq != seq {
        return Prepared::Poison(format!(
            "change of {}/{} (state of room {}) does not match its subject {room_id}/{seq}",
            change.room_id, change.seq, change.message.room_id
        ));
    }
    if seq == 0 || seq >= event_seq {
        return Prepared::Poison(format!(
            "change at {event_seq} of message {seq}, which cannot precede it"
        ));
    }
    // A deletion leaves nothing of the text, whatever state the event carries.
    let erase = change.change == ChangeKind::Deleted || change.message.deleted;
    let mut state = if erase {
        change.message.erased()
    } else {
        change.message
    };
    state.version = event_seq;
    match serde_json::to_vec(&state) {
        Ok(bytes) => Prepared::Change {
            room_id: room_id.to_string(),
            event_seq,
            change: Change {
                seq,
                sender_id: state.sender_id,
                erase,
                state: bytes,
            },
        },
        Err(e) => Prepared::Poison(format!("state cannot be serialized: {e}")),
    }
}

/// One history write of a chunk at a `seq`, before the rule folds them to one.
#[derive(Clone, Copy)]
enum Write<'a> {
    Original(&'a [u8]),
    State(u64, &'a [u8]),
}

impl Write<'_> {
    fn version(&self) -> u64 {
        match self {
            Write::Original(_) => 0,
            Write::State(version, _) => *version,
        }
    }
}

/// The entries of a chunk grouped by room, in order of first appearance: one write per room,
/// and for each room the positions (in `batch`) of its entries, to ack them. Within a room the
/// writes at one `seq` are folded to the newest by [`replaces`], as Redis would apply them.
pub(crate) fn group_by_room<'a, T>(
    batch: &'a [Item<T>],
    payload: impl Fn(&'a T) -> &'a [u8],
) -> (Vec<RoomWrite<'a>>, Vec<Vec<usize>>) {
    let mut position: HashMap<&str, usize> = HashMap::new();
    let mut rooms: Vec<RoomWrite<'a>> = Vec::new();
    let mut writes: Vec<HashMap<u64, Write<'a>>> = Vec::new();
    let mut indices: Vec<Vec<usize>> = Vec::new();
    for (i, item) in batch.iter().enumerate() {
        let at = *position.entry(item.room_id.as_str()).or_insert_with(|| {
            rooms.push(RoomWrite {
                room_id: item.room_id.as_str(),
                ..RoomWrite::default()
            });
            writes.push(HashMap::new());
            indices.push(Vec::new());
            rooms.len() - 1
        });
        let room = &mut rooms[at];
        room.high = room.high.max(item.seq);
        let (seq, write) = match &item.kind {
            Kind::Message { sent_as, day } => {
                room.sends.push((*day, sent_as.as_str(), item.seq));
                let sender = layout::history::sender_of(sent_as);
                room.senders.push((sender, item.seq));
                (item.seq, Write::Original(payload(&item.message)))
            }
            Kind::Change(change) => {
                room.senders.push((change.sender_id.as_str(), change.seq));
                if change.erase && !room.erase.contains(&change.seq) {
                    room.erase.push(change.seq);
                }
                (change.seq, Write::State(item.seq, &change.state))
            }
        };
        let held = writes[at].entry(seq).or_insert(write);
        if replaces(Some(held.version()), write.version()) {
            *held = write;
        }
        indices[at].push(i);
    }
    for (room, writes) in rooms.iter_mut().zip(writes) {
        for (seq, write) in writes {
            match write {
                Write::Original(bytes) => room.messages.push((seq, bytes)),
                Write::State(version, bytes) => room.states.push((seq, version, bytes)),
            }
        }
        // The script reads the originals' range from the first and last.
        room.messages.sort_unstable_by_key(|(seq, _)| *seq);
        room.states.sort_unstable_by_key(|(seq, _, _)| *seq);
    }
    (rooms, indices)
}

#[cfg(test)]
#[path = "batch_tests.rs"]
mod tests;
