//! The chat load: rooms of members spread over agents, some members sending on an open-loop
//! schedule, every member receiving. Every message is accounted for.
//!
//! * Each send is scheduled at a time; its `client_msg_id` carries the schedule (µs since the
//!   bench started), so ack and delivery latencies are measured from when the message *should*
//!   have left, and a mesh that pushes back cannot hide it by slowing the sender down.
//! * Each receiving socket checks the room's chain: a message's `prev_seq` must be the last `seq`
//!   it saw (else out of order, or a gap), a `seq` not above it is a duplicate. At the end every
//!   socket must hold exactly the room's acknowledged messages (count and sum of `seq`), and
//!   history (Redis) must hold each acknowledged message.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use futures::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::Message as WsMessage;

use crate::client::{self, BenchUser, Http};
use crate::hops::{Hops, Snapshot};
use crate::stats::{self, Latency};
use crate::writer::LagSampler;

/// Sockets opening at once during set-up.
const CONNECT_CONCURRENCY: usize = 128;
/// How long a phase may take, beyond its sending time, to get every ack and delivery in.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(30);

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[derive(Debug, Clone)]
pub struct LoadSpec {
    /// Prefix of user and room names, unique per scenario and run.
    pub tag: String,
    pub rooms: usize,
    pub members: usize,
    /// Senders per room (the first members of each room).
    pub senders_per_room: usize,
    pub body_bytes: usize,
}

#[derive(Default)]
struct Counters {
    sent: AtomicU64,
    acked: AtomicU64,
    errors: AtomicU64,
    duplicate_acks: AtomicU64,
    delivered: AtomicU64,
    duplicates: AtomicU64,
    out_of_order: AtomicU64,
    closed: AtomicU64,
    last_ack_us: AtomicU64,
    last_delivery_us: AtomicU64,
}

struct Shared {
    base: Instant,
    c: Counters,
}

impl Shared {
    fn now_us(&self) -> u64 {
        u64::try_from(self.base.elapsed().as_micros()).unwrap_or(u64::MAX)
    }
}

/// What the senders of a room got acknowledged.
#[derive(Default, Debug, Clone, Copy)]
struct RoomAcks {
    count: u64,
    sum: u64,
}

struct Room {
    id: String,
    members: usize,
    acks: Mutex<RoomAcks>,
}

/// What one socket received.
struct SocketStats {
    room: usize,
    last: u64,
    count: u64,
    sum: u64,
    ack: Histogram<u64>,
    delivery: Histogram<u64>,
    /// The same latencies measured from when the frame really left (not from its schedule).
    ack_wire: Histogram<u64>,
    delivery_wire: Histogram<u64>,
    /// A sender's frames: how late each left against its schedule (the load generator's own
    /// delay: timer granularity, a busy runtime).
    lateness: Histogram<u64>,
}

struct Phase {
    start: Instant,
    rate: f64,
    count: u64,
}

pub struct Load {
    shared: Arc<Shared>,
    rooms: Vec<Arc<Room>>,
    sockets: Vec<Arc<Mutex<SocketStats>>>,
    senders: Vec<mpsc::Sender<Phase>>,
    tasks: JoinSet<()>,
    stop: tokio::sync::watch::Sender<bool>,
    /// The agents' HTTP bases, for their `/metrics` (see [`crate::hops`]).
    agent_bases: Vec<String>,
    metrics_http: reqwest::Client,
}

#[derive(Debug, Clone, Serialize)]
pub struct PhaseResult {
    pub target_msgs_per_sec: f64,
    pub duration_secs: f64,
    pub sent: u64,
    pub acked: u64,
    pub errors: u64,
    /// Acknowledged messages per second, from the phase start to the last ack.
    pub ingest_msgs_per_sec: f64,
    pub deliveries: u64,
    /// Deliveries per second, from the phase start to the last delivery.
    pub deliveries_per_sec: f64,
    /// From the scheduled send time (open loop: includes the generator's lateness).
    pub ack_latency: Latency,
    pub delivery_latency: Latency,
    /// From the time the frame left the generator.
    pub ack_wire_latency: Latency,
    pub delivery_wire_latency: Latency,
    pub send_lateness: Latency,
    /// Where the time went inside the agents.
    pub hops: Hops,
    /// Every sent message acked and every acked message delivered to every member in time.
    pub complete: bool,
    pub writer_pending_max: u64,
    pub writer_pending_end: u64,
}

impl PhaseResult {
    pub fn line(&self) -> String {
        format!(
            "target {:>8.0} msg/s: ingest {:>8.0} msg/s, deliveries {:>9.0}/s, acked {}/{} errors {} complete {} writer pending max {}\n    ack      {}\n    delivery {}\n    from the wire: ack {}\n    from the wire: delivery {}\n    send lateness {}\n    {}",
            self.target_msgs_per_sec,
            self.ingest_msgs_per_sec,
            self.deliveries_per_sec,
            self.acked,
            self.sent,
            self.errors,
            self.complete,
            self.writer_pending_max,
            self.ack_latency.row(),
            self.delivery_latency.row(),
            self.ack_wire_latency.row(),
            self.delivery_wire_latency.row(),
            self.send_lateness.row(),
            self.hops.line(),
        )
    }
}

/// The whole run's message accounting; every field but the totals must be 0.
#[derive(Debug, Clone, Serialize, Default)]
pub struct Accounting {
    pub sent: u64,
    pub acked: u64,
    pub deliveries: u64,
    pub send_errors: u64,
    pub lost: u64,
    pub duplicated: u64,
    pub out_of_order: u64,
    /// Delivered but never acknowledged (possible only after a send error).
    pub unacked_delivered: u64,
    pub sockets_closed: u64,
    pub history_missing: u64,
    pub history_extra: u64,
}

impl Accounting {
    pub fn clean(&self) -> bool {
        self.send_errors == 0
            && self.lost == 0
            && self.duplicated == 0
            && self.out_of_order == 0
            && self.unacked_delivered == 0
            && self.sockets_closed == 0
            && self.history_missing == 0
            && self.history_extra == 0
    }

    pub fn line(&self) -> String {
        format!(
            "sent {} acked {} deliveries {} | lost {} duplicated {} out of order {} | send errors {} unacked delivered {} sockets closed {} | history missing {} extra {}",
            self.sent,
            self.acked,
            self.deliveries,
            self.lost,
            self.duplicated,
            self.out_of_order,
            self.send_errors,
            self.unacked_delivered,
            self.sockets_closed,
            self.history_missing,
            self.history_extra
        )
    }
}

#[derive(Deserialize)]
struct Frame<'a> {
    #[serde(rename = "type", borrow)]
    kind: &'a str,
    #[serde(default)]
    seq: u64,
    #[serde(default)]
    prev_seq: u64,
    #[serde(default, borrow)]
    client_msg_id: Option<&'a str>,
    #[serde(default)]
    duplicate: bool,
    #[serde(default)]
    last_seq: u64,
}

/// The scheduled time (µs since the bench base) carried by a bench `client_msg_id`
/// (`b<sender>-<n>-<sent µs>-<scheduled µs>`).
fn scheduled_us(id: &str) -> Option<u64> {
    id.rsplit('-').next()?.parse().ok()
}

/// The time the frame really left, carried by a bench `client_msg_id`.
fn sent_us(id: &str) -> Option<u64> {
    id.rsplit('-').nth(1)?.parse().ok()
}

mod run;
mod search;
mod socket;

pub use search::find_max;
