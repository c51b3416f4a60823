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
    pub ack_latency: Latency,
    pub delivery_latency: Latency,
    /// Every sent message acked and every acked message delivered to every member in time.
    pub complete: bool,
    pub writer_pending_max: u64,
    pub writer_pending_end: u64,
}

impl PhaseResult {
    pub fn line(&self) -> String {
        format!(
            "target {:>8.0} msg/s: ingest {:>8.0} msg/s, deliveries {:>9.0}/s, acked {}/{} errors {} complete {} writer pending max {}\n    ack      {}\n    delivery {}",
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

/// The scheduled time (µs since the bench base) carried by a bench `client_msg_id`.
fn scheduled_us(id: &str) -> Option<u64> {
    id.rsplit('-').next()?.parse().ok()
}

impl Load {
    /// Creates the rooms, joins every member (over HTTP, before any socket is open, so no member
    /// or presence events fan out during set-up), then opens one socket per member, member `j` of
    /// a room on agent `j % agents`, and joins it to its room.
    pub async fn setup(
        spec: LoadSpec,
        http_bases: &[String],
        agents: &[SocketAddr],
    ) -> anyhow::Result<Load> {
        let base = Instant::now();
        let shared = Arc::new(Shared {
            base,
            c: Counters::default(),
        });
        let http = Http::new();
        let mut users: Vec<Vec<BenchUser>> = Vec::new();
        for r in 0..spec.rooms {
            let mut members = Vec::new();
            for j in 0..spec.members {
                members.push(BenchUser::mint(
                    format!("{}u{r}x{j}", spec.tag),
                    format!("{}{r}x{j}", spec.tag),
                )?);
            }
            users.push(members);
        }
        // Rooms, then their members: one room's joins in sequence (they update one member set),
        // rooms in parallel.
        let room_ids: Vec<String> = futures::stream::iter(users.iter().enumerate())
            .map(|(r, members)| {
                let http = http.clone();
                let base = http_bases[r % http_bases.len()].clone();
                let tag = spec.tag.clone();
                async move {
                    let id = http
                        .create_room(&base, &members[0], &format!("{tag} room {r}"))
                        .await?;
                    for m in &members[1..] {
                        http.join(&base, m, &id).await?;
                    }
                    anyhow::Ok(id)
                }
            })
            .buffered(16)
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .collect::<Result<_, _>>()?;
        let rooms: Vec<Arc<Room>> = room_ids
            .into_iter()
            .map(|id| {
                Arc::new(Room {
                    id,
                    members: spec.members,
                    acks: Mutex::new(RoomAcks::default()),
                })
            })
            .collect();

        let (stop, stop_rx) = tokio::sync::watch::channel(false);
        let mut load = Load {
            shared,
            rooms,
            sockets: Vec::new(),
            senders: Vec::new(),
            tasks: JoinSet::new(),
            stop,
        };
        let limit = Arc::new(tokio::sync::Semaphore::new(CONNECT_CONCURRENCY));
        let (ready_tx, mut ready_rx) = mpsc::channel::<anyhow::Result<()>>(1024);
        let mut total = 0usize;
        for (r, members) in users.into_iter().enumerate() {
            for (j, user) in members.into_iter().enumerate() {
                let stats = Arc::new(Mutex::new(SocketStats {
                    room: r,
                    last: 0,
                    count: 0,
                    sum: 0,
                    ack: stats::histogram(),
                    delivery: stats::histogram(),
                }));
                load.sockets.push(stats.clone());
                let phases = if j < spec.senders_per_room {
                    let (tx, rx) = mpsc::channel(4);
                    load.senders.push(tx);
                    Some((load.senders.len() - 1, rx))
                } else {
                    None
                };
                let ctx = SocketCtx {
                    shared: load.shared.clone(),
                    room: load.rooms[r].clone(),
                    stats,
                    body: "x".repeat(spec.body_bytes.max(1)),
                };
                let agent = agents[j % agents.len()];
                let limit = limit.clone();
                let ready = ready_tx.clone();
                let stop = stop_rx.clone();
                total += 1;
                load.tasks.spawn(async move {
                    let opened = async {
                        let _permit = limit.acquire().await?;
                        open(&ctx, agent, &user).await
                    }
                    .await;
                    match opened {
                        Ok(ws) => {
                            let _ = ready.send(Ok(())).await;
                            drop(ready);
                            run_socket(ctx, ws, phases, stop).await;
                        }
                        Err(e) => {
                            let _ = ready.send(Err(e)).await;
                        }
                    }
                });
            }
        }
        drop(ready_tx);
        let deadline = Instant::now() + Duration::from_secs(60 + total as u64 / 50);
        for _ in 0..total {
            match tokio::time::timeout_at(deadline.into(), ready_rx.recv()).await {
                Ok(Some(Ok(()))) => {}
                Ok(Some(Err(e))) => return Err(e.context("opening a member socket")),
                Ok(None) => bail!("a socket task ended during set-up"),
                Err(_) => bail!("sockets not all open and joined within the set-up time"),
            }
        }
        Ok(load)
    }

    pub fn sockets(&self) -> usize {
        self.sockets.len()
    }

    /// Sends `rate` messages per second in total, spread over the senders, for `duration`, then
    /// waits until everything is acknowledged and delivered (or [`SETTLE_TIMEOUT`]).
    pub async fn phase(
        &mut self,
        rate: f64,
        duration: Duration,
        lag: &LagSampler,
    ) -> anyhow::Result<PhaseResult> {
        let c = &self.shared.c;
        let senders = self.senders.len().max(1);
        let per_sender = rate / senders as f64;
        let count = (per_sender * duration.as_secs_f64()).round().max(1.0) as u64;
        let sent0 = c.sent.load(Ordering::Relaxed);
        let acked0 = c.acked.load(Ordering::Relaxed);
        let errors0 = c.errors.load(Ordering::Relaxed);
        let delivered0 = c.delivered.load(Ordering::Relaxed);
        let expected_sent = sent0 + count * self.senders.len() as u64;
        let start = Instant::now() + Duration::from_millis(50);
        let start_us = u64::try_from((start - self.shared.base).as_micros()).unwrap_or(0);
        lag.reset_max();
        for tx in &self.senders {
            tx.send(Phase {
                start,
                rate: per_sender,
                count,
            })
            .await
            .context("a sender task ended")?;
        }
        let deadline = start + duration + SETTLE_TIMEOUT;
        let mut complete = false;
        while Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
            let sent = c.sent.load(Ordering::Relaxed);
            let settled = c.acked.load(Ordering::Relaxed) + c.errors.load(Ordering::Relaxed);
            let expected_deliveries: u64 = self
                .rooms
                .iter()
                .map(|r| lock(&r.acks).count * r.members as u64)
                .sum();
            if sent == expected_sent
                && settled == sent
                && c.delivered.load(Ordering::Relaxed) >= expected_deliveries
            {
                complete = true;
                break;
            }
        }
        let mut ack = stats::histogram();
        let mut delivery = stats::histogram();
        for s in &self.sockets {
            let mut s = lock(s);
            let _ = ack.add(&s.ack);
            let _ = delivery.add(&s.delivery);
            s.ack.reset();
            s.delivery.reset();
        }
        let secs_to = |us: u64| (us.saturating_sub(start_us) as f64 / 1e6).max(1e-3);
        let acked = c.acked.load(Ordering::Relaxed) - acked0;
        let deliveries = c.delivered.load(Ordering::Relaxed) - delivered0;
        let (pending_max, pending_end) = lag.snapshot();
        Ok(PhaseResult {
            target_msgs_per_sec: per_sender * self.senders.len() as f64,
            duration_secs: duration.as_secs_f64(),
            sent: c.sent.load(Ordering::Relaxed) - sent0,
            acked,
            errors: c.errors.load(Ordering::Relaxed) - errors0,
            ingest_msgs_per_sec: acked as f64 / secs_to(c.last_ack_us.load(Ordering::Relaxed)),
            deliveries,
            deliveries_per_sec: deliveries as f64
                / secs_to(c.last_delivery_us.load(Ordering::Relaxed)),
            ack_latency: Latency::of(&ack),
            delivery_latency: Latency::of(&delivery),
            complete,
            writer_pending_max: pending_max,
            writer_pending_end: pending_end,
        })
    }

    /// Compares what every socket received with what was acknowledged, and (when `redis_url` is
    /// given, after the writer caught up) with history.
    pub async fn account(&self, redis_url: Option<&str>) -> anyhow::Result<Accounting> {
        let c = &self.shared.c;
        let mut a = Accounting {
            sent: c.sent.load(Ordering::Relaxed),
            acked: c.acked.load(Ordering::Relaxed),
            deliveries: c.delivered.load(Ordering::Relaxed),
            send_errors: c.errors.load(Ordering::Relaxed)
                + c.duplicate_acks.load(Ordering::Relaxed),
            duplicated: c.duplicates.load(Ordering::Relaxed),
            out_of_order: c.out_of_order.load(Ordering::Relaxed),
            sockets_closed: c.closed.load(Ordering::Relaxed),
            ..Default::default()
        };
        for s in &self.sockets {
            let s = lock(s);
            let acks = *lock(&self.rooms[s.room].acks);
            if s.count < acks.count {
                a.lost += acks.count - s.count;
            } else if s.count > acks.count {
                a.unacked_delivered += s.count - acks.count;
            } else if s.sum != acks.sum {
                // Same number of messages, not the same ones.
                a.lost += 1;
            }
        }
        if let Some(url) = redis_url {
            let client = redis::Client::open(url)?;
            let mut conn = client.get_multiplexed_async_connection().await?;
            for room in &self.rooms {
                let stored: u64 = redis::cmd("ZCARD")
                    .arg(dyschat_protocol::layout::history::key(&room.id))
                    .query_async(&mut conn)
                    .await?;
                let acked = lock(&room.acks).count;
                a.history_missing += acked.saturating_sub(stored);
                a.history_extra += stored.saturating_sub(acked);
            }
        }
        Ok(a)
    }

    /// Stops every socket task (closing the sockets) and waits for them.
    pub async fn close(mut self) {
        let _ = self.stop.send(true);
        self.senders.clear();
        let drain = async { while self.tasks.join_next().await.is_some() {} };
        if tokio::time::timeout(Duration::from_secs(20), drain)
            .await
            .is_err()
        {
            self.tasks.abort_all();
        }
    }
}

struct SocketCtx {
    shared: Arc<Shared>,
    room: Arc<Room>,
    stats: Arc<Mutex<SocketStats>>,
    body: String,
}

/// Connects, joins the room and records the room's position as the start of the chain.
async fn open(ctx: &SocketCtx, agent: SocketAddr, user: &BenchUser) -> anyhow::Result<client::Ws> {
    let mut ws = client::connect(agent, &user.token).await?;
    let join = serde_json::json!({"type": "join", "room_id": ctx.room.id});
    ws.send(WsMessage::Text(join.to_string().into())).await?;
    loop {
        let frame = client::next_json(&mut ws).await?;
        match frame["type"].as_str() {
            Some("joined") => {
                lock(&ctx.stats).last = frame["last_seq"].as_u64().unwrap_or(0);
                return Ok(ws);
            }
            Some("error") => bail!("join refused: {frame}"),
            _ => {}
        }
    }
}

/// Reads the socket until the bench stops; a sender also runs its phases on the write half.
async fn run_socket(
    ctx: SocketCtx,
    ws: client::Ws,
    phases: Option<(usize, mpsc::Receiver<Phase>)>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let (sink, mut stream) = ws.split();
    let ctx = Arc::new(ctx);
    let sender = phases.map(|(id, rx)| tokio::spawn(send_loop(ctx.clone(), sink, id, rx)));
    loop {
        let next = tokio::select! {
            _ = stop.changed() => break,
            next = stream.next() => next,
        };
        match next {
            Some(Ok(WsMessage::Text(t))) => on_frame(&ctx, &t),
            Some(Ok(_)) => {}
            Some(Err(_)) | None => {
                ctx.shared.c.closed.fetch_add(1, Ordering::Relaxed);
                break;
            }
        }
    }
    if let Some(sender) = sender {
        sender.abort();
    }
}

fn on_frame(ctx: &SocketCtx, text: &str) {
    let Ok(frame) = serde_json::from_str::<Frame>(text) else {
        return;
    };
    let c = &ctx.shared.c;
    let now_us = ctx.shared.now_us();
    let latency = |id: Option<&str>| {
        id.and_then(scheduled_us)
            .map(|s| Duration::from_micros(now_us.saturating_sub(s)))
    };
    match frame.kind {
        "message" => {
            let mut s = lock(&ctx.stats);
            if frame.seq <= s.last {
                c.duplicates.fetch_add(1, Ordering::Relaxed);
                return;
            }
            if frame.prev_seq != s.last {
                c.out_of_order.fetch_add(1, Ordering::Relaxed);
            }
            s.last = frame.seq;
            s.count += 1;
            s.sum += frame.seq;
            if let Some(d) = latency(frame.client_msg_id) {
                stats::record(&mut s.delivery, d);
            }
            drop(s);
            c.delivered.fetch_add(1, Ordering::Relaxed);
            c.last_delivery_us.fetch_max(now_us, Ordering::Relaxed);
        }
        "ack" => {
            if frame.duplicate {
                c.duplicate_acks.fetch_add(1, Ordering::Relaxed);
            }
            {
                let mut acks = lock(&ctx.room.acks);
                acks.count += 1;
                acks.sum += frame.seq;
            }
            if let Some(d) = latency(frame.client_msg_id) {
                stats::record(&mut lock(&ctx.stats).ack, d);
            }
            c.acked.fetch_add(1, Ordering::Relaxed);
            c.last_ack_us.fetch_max(now_us, Ordering::Relaxed);
        }
        "error" => {
            c.errors.fetch_add(1, Ordering::Relaxed);
        }
        "joined" => {
            let _ = frame.last_seq;
        }
        _ => {}
    }
}

type Sink = futures::stream::SplitSink<client::Ws, WsMessage>;

/// Sends each phase's messages at their scheduled times without waiting for acks.
async fn send_loop(
    ctx: Arc<SocketCtx>,
    mut sink: Sink,
    id: usize,
    mut phases: mpsc::Receiver<Phase>,
) {
    let mut n = 0u64;
    let base = ctx.shared.base;
    while let Some(phase) = phases.recv().await {
        for k in 0..phase.count {
            let due = phase.start + Duration::from_secs_f64(k as f64 / phase.rate);
            if due > Instant::now() {
                if sink.flush().await.is_err() {
                    return;
                }
                tokio::time::sleep_until(due.into()).await;
            }
            let us = (due - base).as_micros();
            let cmid = format!("b{id}-{n}-{us}");
            n += 1;
            let frame = format!(
                r#"{{"type":"send","room_id":"{}","client_msg_id":"{cmid}","ref":"{cmid}","body":"{}"}}"#,
                ctx.room.id, ctx.body
            );
            if sink.feed(WsMessage::Text(frame.into())).await.is_err() {
                return;
            }
            ctx.shared.c.sent.fetch_add(1, Ordering::Relaxed);
        }
        if sink.flush().await.is_err() {
            return;
        }
    }
}

/// Looks for the highest rate the mesh sustains: `start`, then ×1.5 while a step passes, then
/// two bisections between the last pass and the first failure. A step passes when it is
/// complete, without errors, ingests at least 90% of its target and its ack p99 stays under
/// `max_p99_ms`.
pub async fn find_max(
    load: &mut Load,
    start: f64,
    step: Duration,
    max_p99_ms: f64,
    lag: &LagSampler,
    log: &mut dyn FnMut(&str),
) -> anyhow::Result<(Option<PhaseResult>, Vec<PhaseResult>)> {
    let passes = |r: &PhaseResult| {
        r.complete
            && r.errors == 0
            && r.ingest_msgs_per_sec >= 0.9 * r.target_msgs_per_sec
            && r.ack_latency.p99_ms <= max_p99_ms
    };
    let mut steps = Vec::new();
    let mut best: Option<PhaseResult> = None;
    // Warm-up (connections, caches, allocator), not counted.
    let warm = load.phase(start / 4.0, Duration::from_secs(3), lag).await?;
    log(&format!("  warm-up {}", warm.line()));
    let mut rate = start;
    let mut failed_at: Option<f64> = None;
    for _ in 0..16 {
        let r = load.phase(rate, step, lag).await?;
        log(&format!("  step {}", r.line()));
        let ok = passes(&r);
        steps.push(r.clone());
        if ok {
            best = Some(r);
            rate *= 1.5;
        } else if best.is_none() && rate > start / 8.0 {
            // The first rate is already too high: come down.
            rate /= 2.0;
            tokio::time::sleep(Duration::from_secs(2)).await;
        } else {
            failed_at = Some(rate);
            // Let a backlog clear before the next step.
            tokio::time::sleep(Duration::from_secs(2)).await;
            break;
        }
    }
    if let (Some(fail), Some(_)) = (failed_at, best.as_ref()) {
        let mut lo = best.as_ref().map_or(start, |b| b.target_msgs_per_sec);
        let mut hi = fail;
        for _ in 0..2 {
            let mid = (lo + hi) / 2.0;
            let r = load.phase(mid, step, lag).await?;
            log(&format!("  bisect {}", r.line()));
            let ok = passes(&r);
            steps.push(r.clone());
            if ok {
                best = Some(r);
                lo = mid;
            } else {
                hi = mid;
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
        }
    }
    Ok((best, steps))
}
