//! Reaction storm: what a storm of reactions on one message costs next to plain messages at the
//! same rate into the same room, with every reaction accounted for.
//!
//! Changes of one room are serialised by a compare-and-set on the stream (contract section 7,
//! `services/ws-agent/src/core/change/`), and each one fans out the message's whole state to
//! every listener, so a storm on one message is the worst case of that path. The scenario fills
//! a room through the rooms service ([`crate::fill`]), has its owner send one message, joins
//! `listeners` members over the agents, then has `actors` other members (their sockets spread
//! over the agents, not joined, so they receive nothing) react to that message on an open-loop
//! schedule at `rate` for `secs`, each reaction a distinct (user, emoji) pair so that every one
//! is a real change. Then the same sockets send plain messages at the same rate for as long.
//!
//! Accounted for: every `react` answered (`reacted`, or an `error` counted by its code: an
//! `unavailable` after the agent's retries is no loss, but it is reported), every acknowledged
//! reaction in the message's final state as history returns it (else *lost*), every listener's
//! `prev_event_seq` chain without a gap and holding as many changes as the final state has
//! reactions; for the messages, every listener holding every acknowledged message, in order.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::stats::{self, Latency};

mod account;
mod actors;
mod listen;
mod report;
mod run;

pub use report::{clean, lines, targets};
pub use run::measure;

/// How long a phase may take, beyond its sending time, to get every answer and delivery in.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(60);

/// The emoji of the storm: 50 faces from U+1F600, the most a message may carry.
const EMOJI: usize = 50;

const PAIR_SENT: u8 = 1;
const PAIR_ACKED: u8 = 2;
const PAIR_ERROR: u8 = 3;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[derive(Debug, Clone)]
pub struct ReactionsSpec {
    pub tag: String,
    /// Members of the room, owner included.
    pub members: usize,
    pub listeners: usize,
    pub actors: usize,
    /// Reactions (then messages) per second, all actors together.
    pub rate: f64,
    pub secs: f64,
    /// The first agents, over which the actors' sockets are spread.
    pub actor_agents: usize,
    pub body_bytes: usize,
}

/// Which frames a phase sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    React,
    Send,
}

/// One phase's answers, as the actors read them.
struct Tally {
    sent: AtomicU64,
    acked: AtomicU64,
    errored: AtomicU64,
    seq_sum: AtomicU64,
    last_answer_us: AtomicU64,
    ack: Mutex<Histogram<u64>>,
    errors: Mutex<BTreeMap<String, u64>>,
}

impl Tally {
    fn new() -> Tally {
        Tally {
            sent: AtomicU64::new(0),
            acked: AtomicU64::new(0),
            errored: AtomicU64::new(0),
            seq_sum: AtomicU64::new(0),
            last_answer_us: AtomicU64::new(0),
            ack: Mutex::new(stats::histogram()),
            errors: Mutex::new(BTreeMap::new()),
        }
    }
}

/// What the actors and the listeners share.
struct Shared {
    base: Instant,
    room: String,
    target_seq: u64,
    body: String,
    emoji: Vec<String>,
    emoji_index: HashMap<String, usize>,
    /// The user id of actor `a` is `actor_prefix` followed by `first_actor + a`.
    actor_prefix: String,
    first_actor: usize,
    actors: usize,
    /// When each (actor, emoji) reaction was due, µs since `base` (0: not sent).
    scheduled: Vec<AtomicU64>,
    status: Vec<AtomicU8>,
    tallies: [Tally; 2],
    /// The newest receipt at any listener: of a `message_updated`, of a `message`.
    last_delivery_us: [AtomicU64; 2],
    actor_sockets_closed: AtomicU64,
}

impl Shared {
    fn now_us(&self) -> u64 {
        u64::try_from(self.base.elapsed().as_micros()).unwrap_or(u64::MAX)
    }

    fn tally(&self, kind: Kind) -> &Tally {
        &self.tallies[kind as usize]
    }

    /// The (actor, emoji) pair of a reaction by `user_id`.
    fn pair_of(&self, user_id: &str, emoji: usize) -> Option<usize> {
        let member: usize = user_id.strip_prefix(&self.actor_prefix)?.parse().ok()?;
        let actor = member.checked_sub(self.first_actor)?;
        (actor < self.actors && emoji < self.emoji.len())
            .then_some(actor * self.emoji.len() + emoji)
    }

    /// When `user_id`'s reaction with emoji number `emoji` was due.
    fn scheduled_of(&self, user_id: &str, emoji: usize) -> Option<u64> {
        let due = self.scheduled.get(self.pair_of(user_id, emoji)?)?;
        Some(due.load(Ordering::Relaxed)).filter(|&us| us > 0)
    }
}

/// One phase's figures (the storm's or the messages').
#[derive(Debug, Clone, Serialize, Default)]
pub struct PhaseFigures {
    pub target_per_sec: f64,
    pub duration_secs: f64,
    pub sent: u64,
    pub acked: u64,
    /// Error answers by `code: message` (`unavailable`: the agent gave up after its retries, or
    /// the stream did not answer in time).
    pub errors: BTreeMap<String, u64>,
    /// Frames never answered within the settle time.
    pub unanswered: u64,
    /// Acknowledged per second, from the phase start to the last answer.
    pub achieved_per_sec: f64,
    pub ack_latency: Latency,
    /// Frames received by all listeners (`message_updated`, or `message`).
    pub deliveries: u64,
    /// Deliveries per second, from the phase start to the last delivery.
    pub deliveries_per_sec: f64,
    /// Due time of the reaction (message) to its first receipt, at the probe listeners.
    pub delivery_latency: Latency,
    pub bytes_per_delivery: f64,
    pub delivered_mib_per_sec: f64,
    /// Chain breaks seen by the listeners (`prev_event_seq`, or `prev_seq`), and repeats.
    pub gaps: u64,
    pub duplicates: u64,
    /// Acknowledged but missing: from the final state (reactions), at a listener (messages).
    pub lost: u64,
    /// Stored although answered by an error (or not at all): reactions in the final state, messages
    /// a listener received beyond the acknowledged ones. A retry finds them; no loss.
    pub applied_unacked: u64,
    /// Deliveries short of what was stored, over all listeners.
    pub listeners_short: u64,
    /// Every frame answered and every listener holding what was stored, within the settle time.
    pub complete: bool,
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct Ratios {
    pub ack_p50: f64,
    pub ack_p99: f64,
    pub delivery_p50: f64,
    pub delivery_p99: f64,
    pub deliveries_per_sec: f64,
    pub achieved_per_sec: f64,
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct Reactions {
    pub members: usize,
    pub listeners: usize,
    pub probes: usize,
    pub actors: usize,
    pub agents: usize,
    /// Agents the actors' sockets were spread over.
    pub actor_agents: usize,
    pub fill_secs: f64,
    pub storm: PhaseFigures,
    pub messages: PhaseFigures,
    /// Reaction storm / messages.
    pub ratios: Ratios,
    /// Reactions in the message's final state (history), and its size as a change frame.
    pub final_reactions: u64,
    pub final_state_bytes: u64,
    /// Reactions in the final state the bench never sent, or counts that disagree with their
    /// users.
    pub foreign: u64,
    /// Listeners whose newest state differs from history's.
    pub stale_listeners: u64,
    /// Frames a listener could not read, or about another message.
    pub odd_frames: u64,
    pub sockets_closed: u64,
}
