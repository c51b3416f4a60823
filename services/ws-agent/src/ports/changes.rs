//! The change events of the room messages (edits, deletions, reactions) as the core sees them:
//! one entry of a room's sequence is a message or a change, and [`ChangeLog`] reads and stores
//! the changes.

use bytes::Bytes;
use dyschat_protocol::wire::{StoredChange, StoredMessage};
use futures::future::BoxFuture;

use super::{PortResult, Sequenced};

/// A change event with its place in the stream (its `event_seq`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ChangeEntry {
    pub event_seq: u64,
    pub change: StoredChange,
}

/// One entry of a room's sequence: a message, or a change event of one of its messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Entry {
    Message(Sequenced),
    Change(ChangeEntry),
}

impl Entry {
    /// Its place in the room's sequence (`seq` or `event_seq`).
    pub(crate) fn position(&self) -> u64 {
        match self {
            Entry::Message(m) => m.seq,
            Entry::Change(c) => c.event_seq,
        }
    }
}

/// The change events of the room messages in JetStream, each on its message's own subject
/// (`dyschat.msg.room.<room>.chg.<seq>`). Reads are the leader's, like [`MessageStream`]'s.
pub(crate) trait ChangeLog: Send + Sync {
    /// The room's newest change event, `None` when it has none.
    fn last_change<'a>(
        &'a self,
        room_id: &'a str,
    ) -> BoxFuture<'a, PortResult<Option<ChangeEntry>>>;
    /// The newest change event of the room's message `seq`: its current state.
    fn last_change_of<'a>(
        &'a self,
        room_id: &'a str,
        seq: u64,
    ) -> BoxFuture<'a, PortResult<Option<ChangeEntry>>>;
    /// The room's message stored at `seq`, as sent; `None` when there is none (never was, or
    /// erased after its deletion, or `seq` is not a message of this room).
    fn message_at<'a>(
        &'a self,
        room_id: &'a str,
        seq: u64,
    ) -> BoxFuture<'a, PortResult<Option<StoredMessage>>>;
    /// Stores `payload` (a serialized [`StoredChange`] of the room's message `seq`) if the
    /// room's newest change event is still `expected` (0: none): its `event_seq`, or `None`
    /// when another change of the room was stored first.
    fn publish_change<'a>(
        &'a self,
        room_id: &'a str,
        seq: u64,
        payload: Bytes,
        expected: u64,
    ) -> BoxFuture<'a, PortResult<Option<u64>>>;
}
