//! The fake stream's change events: stored in the same sequence as its messages, re-published
//! to the fake bus, and stored only when the room's newest change is the expected one, like
//! the real compare-and-set.

use std::sync::atomic::Ordering;

use bytes::Bytes;
use dyschat_protocol::wire::{StoredChange, StoredMessage};
use futures::future::BoxFuture;
use futures::FutureExt;

use super::lock;
use super::stream::FakeStream;
use crate::ports::{ChangeEntry, ChangeLog, LiveKind, LiveMessage, PortResult};

impl FakeStream {
    /// The room's newest change, by any message, or of message `seq` only.
    fn newest_change(&self, room_id: &str, seq: Option<u64>) -> Option<ChangeEntry> {
        lock(&self.stored)
            .changes
            .iter()
            .rev()
            .find(|(_, c)| c.room_id == room_id && seq.is_none_or(|s| c.seq == s))
            .map(|(event_seq, c)| ChangeEntry {
                event_seq: *event_seq,
                change: c.clone(),
            })
    }

    /// Stores a change as another agent would (no expectation); returns its `event_seq`.
    pub(crate) fn append_change(&self, change: StoredChange) -> u64 {
        let event_seq = {
            let mut s = lock(&self.stored);
            s.last_seq += 1;
            let event_seq = s.last_seq;
            s.changes.push((event_seq, change.clone()));
            event_seq
        };
        if !self.deaf.load(Ordering::SeqCst) {
            self.bus.inject(
                &change.room_id,
                LiveMessage {
                    kind: LiveKind::Change,
                    seq: event_seq,
                    prev_seq: 0,
                    payload: Bytes::from(serde_json::to_vec(&change).unwrap_or_default()),
                    headers: None,
                    received: std::time::Instant::now(),
                },
            );
        }
        event_seq
    }

    /// The room's newest change as stored.
    pub(crate) fn last_change_now(&self, room_id: &str) -> Option<StoredChange> {
        self.newest_change(room_id, None).map(|c| c.change)
    }

    /// Removes the stored message at `seq`, as msg-writer's erasure of a deleted one does.
    pub(crate) fn erase(&self, seq: u64) {
        lock(&self.stored).messages.retain(|(s, _)| *s != seq);
    }
}

impl ChangeLog for FakeStream {
    fn last_change<'a>(
        &'a self,
        room_id: &'a str,
    ) -> BoxFuture<'a, PortResult<Option<ChangeEntry>>> {
        futures::future::ready(Ok(self.newest_change(room_id, None))).boxed()
    }

    fn last_change_of<'a>(
        &'a self,
        room_id: &'a str,
        seq: u64,
    ) -> BoxFuture<'a, PortResult<Option<ChangeEntry>>> {
        futures::future::ready(Ok(self.newest_change(room_id, Some(seq)))).boxed()
    }

    fn message_at<'a>(
        &'a self,
        room_id: &'a str,
        seq: u64,
    ) -> BoxFuture<'a, PortResult<Option<StoredMessage>>> {
        let found = lock(&self.stored)
            .messages
            .iter()
            .find(|(s, m)| *s == seq && m.room_id == room_id)
            .map(|(_, m)| m.clone());
        futures::future::ready(Ok(found)).boxed()
    }

    fn publish_change<'a>(
        &'a self,
        room_id: &'a str,
        _seq: u64,
        payload: Bytes,
        expected: u64,
    ) -> BoxFuture<'a, PortResult<Option<u64>>> {
        let result = serde_json::from_slice::<StoredChange>(&payload)
            .map_err(|e| crate::ports::PortError::Decode(e.to_string()))
            .map(|change| {
                let newest = self.newest_change(room_id, None).map_or(0, |c| c.event_seq);
                (newest == expected).then(|| self.append_change(change))
            });
        futures::future::ready(result).boxed()
    }
}
