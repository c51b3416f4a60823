//! The fake message stream, which re-publishes to the fake bus ([`super::bus`]).
//!
//! The fake stream behaves like `DYSCHAT_MESSAGES` where it matters: one sequence across all
//! rooms (so a room's seqs are sparse), de-duplication by message id, and a RePublish to the
//! fake bus with the room's previous seq as `prev_seq`, which a test can suppress to model core
//! NATS dropping a live copy.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use dyschat_protocol::wire::{StoredChange, StoredMessage};
use dyschat_protocol::{ids, time};
use futures::future::BoxFuture;
use futures::FutureExt;

use super::bus::FakeBus;
use super::lock;
use crate::ports::{
    Ack, AckFuture, ChangeEntry, Entry, LiveKind, LiveMessage, MessageStream, PortError,
    PortResult, Sequenced,
};

#[derive(Default)]
pub(super) struct Stored {
    /// `(seq, message)` in sequence order, every room together.
    pub(super) messages: Vec<(u64, StoredMessage)>,
    /// `(event_seq, change)` in sequence order, every room together (same sequence).
    pub(super) changes: Vec<(u64, StoredChange)>,
    pub(super) last_seq: u64,
    dedupe: HashMap<String, u64>,
    /// What happens while the next replay runs.
    during_replay: Vec<DuringReplay>,
}

/// Something that happens while a replay runs.
enum DuringReplay {
    /// A message is published (it arrives live, after the replayed range).
    Publish(Box<StoredMessage>),
    /// The live copy of an already stored message arrives (late).
    Live(u64),
}

/// The fake message stream.
pub(crate) struct FakeStream {
    pub(super) stored: Mutex<Stored>,
    pub(super) bus: Arc<FakeBus>,
    /// While set, stored messages are not re-published (their live copy is "lost").
    pub deaf: AtomicBool,
    /// While set, position lookups fail.
    pub failing: AtomicBool,
    pub newest_up_to_calls: AtomicUsize,
    pub replays: AtomicUsize,
    /// The writer consumer's ack floor (everything at or below it is in history); `u64::MAX`:
    /// the writer keeps up with everything.
    pub writer_floor: std::sync::atomic::AtomicU64,
    /// How long the writer has been behind when it is (the fake's default: a moment).
    pub writer_behind_for_ms: std::sync::atomic::AtomicI64,
    pub scans: AtomicUsize,
}

impl FakeStream {
    pub(crate) fn new(bus: Arc<FakeBus>) -> Self {
        FakeStream {
            stored: Mutex::new(Stored::default()),
            bus,
            deaf: AtomicBool::new(false),
            failing: AtomicBool::new(false),
            newest_up_to_calls: AtomicUsize::new(0),
            replays: AtomicUsize::new(0),
            writer_floor: std::sync::atomic::AtomicU64::new(u64::MAX),
            writer_behind_for_ms: std::sync::atomic::AtomicI64::new(0),
            scans: AtomicUsize::new(0),
        }
    }

    /// Stores a message (and re-publishes it unless deaf); returns its seq.
    pub(crate) fn append(&self, stored: StoredMessage) -> u64 {
        let (seq, prev) = {
            let mut s = lock(&self.stored);
            let prev = newest(&s.messages, &stored.room_id, u64::MAX);
            s.last_seq += 1;
            let seq = s.last_seq;
            s.messages.push((seq, stored.clone()));
            (seq, prev)
        };
        if !self.deaf.load(Ordering::SeqCst) {
            self.bus
                .inject(&stored.room_id, live_copy(&stored, seq, prev));
        }
        seq
    }

    /// Forgets the publish ids, as the stream does once its de-duplication window has passed.
    pub(crate) fn forget_publish_ids(&self) {
        lock(&self.stored).dedupe.clear();
    }

    /// The room's messages with `seq <= up_to`, in order (what a history store holding
    /// everything up to there would return).
    pub(crate) fn room_messages(&self, room_id: &str, up_to: u64) -> Vec<(u64, StoredMessage)> {
        lock(&self.stored)
            .messages
            .iter()
            .filter(|(seq, m)| m.room_id == room_id && *seq <= up_to)
            .cloned()
            .collect()
    }

    /// The stream's last seq (any room).
    pub(crate) fn last_seq_any(&self) -> u64 {
        lock(&self.stored).last_seq
    }

    /// The room's newest seq.
    pub(crate) fn last_seq_now(&self, room_id: &str) -> u64 {
        newest(&lock(&self.stored).messages, room_id, u64::MAX)
    }

    /// Stores a message of another sender, as another agent would.
    pub(crate) fn post(&self, room_id: &str, body: &str) -> u64 {
        self.append(message(room_id, body))
    }

    /// The live copy of the stored message at `seq`, as the RePublish would send it.
    pub(crate) fn live_copy_of(&self, seq: u64) -> LiveMessage {
        let s = lock(&self.stored);
        let i = s
            .messages
            .iter()
            .position(|(q, _)| *q == seq)
            .unwrap_or_else(|| panic!("no message {seq}"));
        let stored = &s.messages[i].1;
        let prev = newest(&s.messages[..i], &stored.room_id, u64::MAX);
        live_copy(stored, seq, prev)
    }

    /// Publishes `body` to the room when the next replay runs.
    pub(crate) fn publish_during_next_replay(&self, room_id: &str, body: &str) {
        lock(&self.stored)
            .during_replay
            .push(DuringReplay::Publish(Box::new(message(room_id, body))));
    }

    /// Re-publishes the message at `seq` when the next replay runs.
    pub(crate) fn live_copy_during_next_replay(&self, seq: u64) {
        lock(&self.stored)
            .during_replay
            .push(DuringReplay::Live(seq));
    }

    fn fail_if_failing(&self) -> PortResult<()> {
        if self.failing.load(Ordering::SeqCst) {
            Err(PortError::Failed("the fake stream is failing".into()))
        } else {
            Ok(())
        }
    }
}

fn newest(messages: &[(u64, StoredMessage)], room_id: &str, up_to: u64) -> u64 {
    messages
        .iter()
        .filter(|(seq, m)| m.room_id == room_id && *seq <= up_to)
        .map(|(seq, _)| *seq)
        .max()
        .unwrap_or(0)
}

fn live_copy(stored: &StoredMessage, seq: u64, prev_seq: u64) -> LiveMessage {
    LiveMessage {
        kind: LiveKind::Message,
        seq,
        prev_seq,
        payload: Bytes::from(serde_json::to_vec(stored).unwrap_or_default()),
        headers: None,
        received: std::time::Instant::now(),
    }
}

/// A message of `room_id` from a sender called `other`.
pub(crate) fn message(room_id: &str, body: &str) -> StoredMessage {
    StoredMessage::sent(
        room_id.to_string(),
        ids::new_id(),
        ids::new_id(),
        "other".into(),
        "other".into(),
        body.to_string(),
        time::now(),
    )
}

impl MessageStream for FakeStream {
    fn first_after<'a>(
        &'a self,
        room_id: &'a str,
        after: u64,
        n: usize,
    ) -> BoxFuture<'a, PortResult<Vec<Sequenced>>> {
        let result = self.fail_if_failing().map(|()| {
            lock(&self.stored)
                .messages
                .iter()
                .filter(|(seq, m)| m.room_id == room_id && *seq > after)
                .take(n)
                .map(|(seq, m)| Sequenced {
                    seq: *seq,
                    stored: m.clone(),
                })
                .collect()
        });
        futures::future::ready(result).boxed()
    }

    fn writer_position<'a>(
        &'a self,
        _room_id: &'a str,
    ) -> BoxFuture<'a, PortResult<crate::ports::WriterPosition>> {
        let stored = lock(&self.stored);
        let floor = self
            .writer_floor
            .load(Ordering::SeqCst)
            .min(stored.last_seq);
        let behind_for = self.writer_behind_for_ms.load(Ordering::SeqCst);
        let behind_since_ms =
            (floor < stored.last_seq).then(|| chrono::Utc::now().timestamp_millis() - behind_for);
        let position = crate::ports::WriterPosition {
            floor,
            behind_since_ms,
        };
        futures::future::ready(Ok(position)).boxed()
    }

    fn find_sent<'a>(
        &'a self,
        room_id: &'a str,
        from: crate::ports::ScanFrom,
        sender_id: &'a str,
        client_msg_id: &'a str,
        limit: u64,
    ) -> BoxFuture<'a, PortResult<Option<Option<u64>>>> {
        self.scans.fetch_add(1, Ordering::SeqCst);
        let result = self.fail_if_failing().map(|()| {
            let stored = lock(&self.stored);
            let after = match from {
                crate::ports::ScanFrom::After(seq) => seq,
                crate::ports::ScanFrom::Since(_) => 0,
            };
            let candidates: Vec<&(u64, StoredMessage)> = stored
                .messages
                .iter()
                .filter(|(seq, m)| m.room_id == room_id && *seq > after)
                .collect();
            if candidates.len() as u64 > limit {
                return None;
            }
            Some(
                candidates
                    .iter()
                    .find(|(_, m)| m.sender_id == sender_id && m.client_msg_id == client_msg_id)
                    .map(|(seq, _)| *seq),
            )
        });
        futures::future::ready(result).boxed()
    }

    fn publish<'a>(
        &'a self,
        _room_id: &'a str,
        dedupe_id: String,
        payload: Bytes,
    ) -> BoxFuture<'a, PortResult<AckFuture>> {
        async move {
            let known = lock(&self.stored).dedupe.get(&dedupe_id).copied();
            let ack = match known {
                Some(seq) => Ack {
                    seq,
                    duplicate: true,
                },
                None => {
                    let stored: StoredMessage = serde_json::from_slice(&payload)
                        .map_err(|e| PortError::Decode(e.to_string()))?;
                    let seq = self.append(stored);
                    lock(&self.stored).dedupe.insert(dedupe_id, seq);
                    Ack {
                        seq,
                        duplicate: false,
                    }
                }
            };
            let ack: AckFuture = futures::future::ready(Ok(ack)).boxed();
            Ok(ack)
        }
        .boxed()
    }

    fn stored<'a>(
        &'a self,
        _room_id: &'a str,
        seq: u64,
    ) -> BoxFuture<'a, PortResult<StoredMessage>> {
        let found = lock(&self.stored)
            .messages
            .iter()
            .find(|(q, _)| *q == seq)
            .map(|(_, m)| m.clone())
            .ok_or_else(|| PortError::Failed(format!("no message {seq}")));
        futures::future::ready(found).boxed()
    }

    fn last_seq<'a>(&'a self, room_id: &'a str) -> BoxFuture<'a, PortResult<u64>> {
        let result = self
            .fail_if_failing()
            .map(|()| newest(&lock(&self.stored).messages, room_id, u64::MAX));
        futures::future::ready(result).boxed()
    }

    fn newest_up_to<'a>(&'a self, room_id: &'a str, up_to: u64) -> BoxFuture<'a, PortResult<u64>> {
        self.newest_up_to_calls.fetch_add(1, Ordering::SeqCst);
        let result = self
            .fail_if_failing()
            .map(|()| newest(&lock(&self.stored).messages, room_id, up_to));
        futures::future::ready(result).boxed()
    }

    fn replay<'a>(
        &'a self,
        room_id: &'a str,
        after: u64,
        up_to: u64,
        limit: u64,
    ) -> BoxFuture<'a, PortResult<Option<Vec<Entry>>>> {
        async move {
            self.fail_if_failing()?;
            self.replays.fetch_add(1, Ordering::SeqCst);
            let (range, during) = {
                let mut s = lock(&self.stored);
                let in_range =
                    |seq: u64, room: &str| room == room_id && seq > after && seq <= up_to;
                let mut range: Vec<Entry> = s
                    .messages
                    .iter()
                    .filter(|(seq, m)| in_range(*seq, &m.room_id))
                    .map(|(seq, m)| {
                        Entry::Message(Sequenced {
                            seq: *seq,
                            stored: m.clone(),
                        })
                    })
                    .collect();
                range.extend(
                    s.changes
                        .iter()
                        .filter(|(seq, c)| in_range(*seq, &c.room_id))
                        .map(|(seq, c)| {
                            Entry::Change(ChangeEntry {
                                event_seq: *seq,
                                change: c.clone(),
                            })
                        }),
                );
                range.sort_by_key(Entry::position);
                (range, std::mem::take(&mut s.during_replay))
            };
            for event in during {
                match event {
                    DuringReplay::Publish(m) => {
                        self.append(*m);
                    }
                    DuringReplay::Live(seq) => self.bus.inject(room_id, self.live_copy_of(seq)),
                }
            }
            // Let the room task take in what was just published, as it would meanwhile.
            tokio::task::yield_now().await;
            Ok((range.len() as u64 <= limit).then_some(range))
        }
        .boxed()
    }
}
