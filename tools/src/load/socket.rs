//! One member's socket during a load: its frames checked against the room's chain, and the
//! open-loop send schedule of a sender.

use super::*;

pub(super) struct SocketCtx {
    pub(super) shared: Arc<Shared>,
    pub(super) room: Arc<Room>,
    pub(super) stats: Arc<Mutex<SocketStats>>,
    pub(super) body: String,
}

/// Connects, joins the room and records the room's position as the start of the chain.
pub(super) async fn open(
    ctx: &SocketCtx,
    agent: SocketAddr,
    user: &BenchUser,
) -> anyhow::Result<client::Ws> {
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
pub(super) async fn run_socket(
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

/// Error frames printed per run.
const SHOWN_ERRORS: u64 = 5;

pub(super) fn on_frame(ctx: &SocketCtx, text: &str) {
    let Ok(frame) = serde_json::from_str::<Frame>(text) else {
        return;
    };
    let c = &ctx.shared.c;
    let now_us = ctx.shared.now_us();
    let latency = |id: Option<&str>| {
        id.and_then(scheduled_us)
            .map(|s| Duration::from_micros(now_us.saturating_sub(s)))
    };
    let wire = |id: Option<&str>| {
        id.and_then(sent_us)
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
            if let Some(d) = wire(frame.client_msg_id) {
                stats::record(&mut s.delivery_wire, d);
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
            let mut s = lock(&ctx.stats);
            if let Some(d) = latency(frame.client_msg_id) {
                stats::record(&mut s.ack, d);
            }
            if let Some(d) = wire(frame.client_msg_id) {
                stats::record(&mut s.ack_wire, d);
            }
            drop(s);
            c.acked.fetch_add(1, Ordering::Relaxed);
            c.last_ack_us.fetch_max(now_us, Ordering::Relaxed);
        }
        "error" => {
            // The first few are shown whole: a count alone does not say what went wrong.
            let earlier = c.errors.fetch_add(1, Ordering::Relaxed);
            if earlier < SHOWN_ERRORS {
                crate::say(&format!("error frame: {text}"));
            }
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
            let now = Instant::now();
            let sent = now.saturating_duration_since(base).as_micros();
            stats::record(
                &mut lock(&ctx.stats).lateness,
                now.saturating_duration_since(due),
            );
            let cmid = format!("b{id}-{n}-{sent}-{us}");
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
