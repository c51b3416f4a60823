//! A load's life: set-up (rooms, members, sockets), its phases at a rate, and the final
//! accounting against history.

use super::socket::{open, run_socket, SocketCtx};
use super::*;

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
            agent_bases: http_bases.to_vec(),
            metrics_http: reqwest::Client::new(),
        };
        let limit = Arc::new(tokio::sync::Semaphore::new(CONNECT_CONCURRENCY));
        let (ready_tx, mut ready_rx) = mpsc::channel::<anyhow::Result<()>>(1024);
        let mut total = 0usize;
        for (r, members) in users.into_iter().enumerate() {
            for (j, user) in members.into_iter().enumerate() {
                let sender = j < spec.senders_per_room;
                // A socket records acks and lateness only when it sends.
                let sender_histogram = || {
                    if sender {
                        stats::histogram()
                    } else {
                        stats::empty_histogram()
                    }
                };
                let stats = Arc::new(Mutex::new(SocketStats {
                    room: r,
                    last: 0,
                    count: 0,
                    sum: 0,
                    ack: stats::histogram(),
                    delivery: stats::histogram(),
                    ack_wire: sender_histogram(),
                    delivery_wire: stats::histogram(),
                    lateness: sender_histogram(),
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
        let hops_before = Snapshot::scrape(&self.metrics_http, &self.agent_bases).await;
        // The senders' schedules interleave: sender `i` of `n` starts `i / n` of one interval
        // late, so the phase's messages leave evenly spaced at the total rate. (Started together,
        // every sender sent at the same instants: a burst of `n` messages once per interval, whose
        // last one waited behind all the others, measured as latency of the mesh.)
        let interval = 1.0 / per_sender;
        for (i, tx) in self.senders.iter().enumerate() {
            let offset = Duration::from_secs_f64(interval * i as f64 / senders as f64);
            tx.send(Phase {
                start: start + offset,
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
        let hops = Snapshot::scrape(&self.metrics_http, &self.agent_bases)
            .await
            .since(&hops_before);
        let mut ack = stats::histogram();
        let mut delivery = stats::histogram();
        let mut ack_wire = stats::histogram();
        let mut delivery_wire = stats::histogram();
        let mut lateness = stats::histogram();
        for s in &self.sockets {
            let mut s = lock(s);
            let _ = ack.add(&s.ack);
            let _ = delivery.add(&s.delivery);
            let _ = ack_wire.add(&s.ack_wire);
            let _ = delivery_wire.add(&s.delivery_wire);
            let _ = lateness.add(&s.lateness);
            s.ack.reset();
            s.delivery.reset();
            s.ack_wire.reset();
            s.delivery_wire.reset();
            s.lateness.reset();
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
            ack_wire_latency: Latency::of(&ack_wire),
            delivery_wire_latency: Latency::of(&delivery_wire),
            send_lateness: Latency::of(&lateness),
            hops,
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
