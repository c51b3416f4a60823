//! A stretch of a room's sequence (messages and change events, as a replay reads them) folded
//! into what clients are sent: each message in its current state at its place, each change
//! event with the whole current state of its message. Pure, so replays, gap fills and pages all
//! show the same thing.
//!
//! A change event carries its message's whole state, so the newest change of a message in the
//! stretch is its current state; a deleted message whose stored original was erased comes back
//! as its tombstone, at its own `seq`, from the deletion event.

use std::collections::BTreeMap;

use dyschat_protocol::wire::{Message, ServerFrame, StoredMessage};

use crate::ports::Entry;

/// A message's current state in the stretch, and its `prev_seq` when a change event said it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct State {
    pub stored: StoredMessage,
    pub prev_seq: Option<u64>,
}

/// Every message the entries show, by `seq`, in its newest state.
pub(crate) fn states(entries: &[Entry]) -> BTreeMap<u64, State> {
    let mut out = BTreeMap::new();
    for entry in entries {
        match entry {
            Entry::Message(m) => {
                out.entry(m.seq).or_insert_with(|| State {
                    stored: m.stored.clone(),
                    prev_seq: None,
                });
            }
            Entry::Change(c) => {
                out.insert(
                    c.change.seq,
                    State {
                        stored: c.change.message.clone(),
                        prev_seq: Some(c.change.prev_seq),
                    },
                );
            }
        }
    }
    out
}

/// Where a replay of `(after, ..]` starts its two chains.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Start {
    pub after: u64,
    /// The `prev_seq` of the first message sent.
    pub prev_seq: u64,
    /// The `prev_event_seq` of the first change event sent.
    pub prev_event_seq: u64,
}

/// The frames of a replay of `entries` (the room's stretch after `start.after`), each with its
/// place in the sequence, in order.
pub(crate) fn replay_frames(
    room_id: &str,
    entries: &[Entry],
    start: Start,
) -> Vec<(u64, ServerFrame)> {
    let states = states(entries);
    let mut out = Vec::new();
    let mut messages = states.range(start.after + 1..).peekable();
    let (mut prev_seq, mut prev_event_seq) = (start.prev_seq, start.prev_event_seq);
    let message_frame = |seq: u64, state: &State, prev_seq: &mut u64| {
        let frame =
            ServerFrame::Message(Message::from_stored(state.stored.clone(), seq, *prev_seq));
        *prev_seq = seq;
        (seq, frame)
    };
    for entry in entries {
        let Entry::Change(c) = entry else { continue };
        while let Some((seq, state)) = messages.next_if(|(seq, _)| **seq < c.event_seq) {
            out.push(message_frame(*seq, state, &mut prev_seq));
        }
        let target = c.change.seq;
        let Some(state) = states.get(&target) else {
            continue;
        };
        let message = Message::from_stored(
            state.stored.clone(),
            target,
            state.prev_seq.unwrap_or(c.change.prev_seq),
        );
        out.push((
            c.event_seq,
            ServerFrame::MessageUpdated {
                room_id: room_id.to_string(),
                change: c.change.change,
                message,
                event_seq: c.event_seq,
                prev_event_seq,
            },
        ));
        prev_event_seq = c.event_seq;
    }
    for (seq, state) in messages {
        out.push(message_frame(*seq, state, &mut prev_seq));
    }
    out
}

/// The first replayed change's `prev_event_seq`: its own, unless that change was erased (it
/// lies inside the replayed stretch but is not in it), then the stretch's start.
pub(crate) fn first_prev_event_seq(entries: &[Entry], after: u64) -> u64 {
    entries
        .iter()
        .find_map(|e| match e {
            Entry::Change(c) => Some(c.change.prev_event_seq.min(after)),
            Entry::Message(_) => None,
        })
        .unwrap_or(after)
}

/// The `prev_seq` of the first replayed message: the newest message at or before `after`
/// that the stream still has (`stream_newest`), or one the stretch's changes show (a deleted
/// one whose original was erased).
pub(crate) fn first_prev_seq(entries: &[Entry], after: u64, stream_newest: u64) -> u64 {
    states(entries)
        .range(..=after)
        .next_back()
        .map_or(stream_newest, |(seq, _)| (*seq).max(stream_newest))
}

/// Brings a history page (read from a store that may lack the newest changes) to the current
/// state: each message with a change among `changes` takes its newest state, and a deleted
/// message whose original is gone from the page's stretch comes back as its tombstone (inside
/// the page's range, where it belongs to it), the `prev_seq`s around it following.
pub(crate) fn overlay(messages: &mut Vec<Message>, changes: &[Entry]) {
    let states = states(changes);
    if states.is_empty() || messages.is_empty() {
        return;
    }
    let (low, high) = (messages[0].seq, messages[messages.len() - 1].seq);
    for m in messages.iter_mut() {
        if let Some(state) = states.get(&m.seq) {
            *m = Message::from_stored(state.stored.clone(), m.seq, m.prev_seq);
        }
    }
    let missing: Vec<(u64, &State)> = states
        .range(low + 1..high)
        .filter(|(seq, state)| {
            state.stored.deleted && messages.binary_search_by_key(*seq, |m| m.seq).is_err()
        })
        .map(|(seq, state)| (*seq, state))
        .collect();
    for (seq, state) in missing {
        let at = messages.partition_point(|m| m.seq < seq);
        let prev_seq = messages[at - 1].seq;
        messages.insert(
            at,
            Message::from_stored(state.stored.clone(), seq, prev_seq),
        );
        messages[at + 1].prev_seq = seq;
    }
}

#[cfg(test)]
mod tests;
