//! The scenario's run: set-up through the services, the two phases, and the accounting of the
//! storm against the message's final state.

use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{ensure, Context};
use futures::{SinkExt, StreamExt};
use tokio::sync::{mpsc, watch};
use tokio_tungstenite::tungstenite::Message as WsMessage;

use super::account::{account, account_messages, final_state};
use super::actors::{self, Plan};
use super::listen::{self, Listener, PROBE_EVERY};
use super::*;
use crate::client::{self, BenchUser};
use crate::env::Env;
use crate::fill::{member_id, Rooms};

/// Sockets opening (and sending their warm-up message) at once.
const OPEN_CONCURRENCY: usize = 64;

pub async fn measure(
    env: &Env,
    spec: &ReactionsSpec,
    say: &mut dyn FnMut(&str),
) -> anyhow::Result<Reactions> {
    let (l, a) = (spec.listeners, spec.actors);
    ensure!(l >= 1 && a >= 1 && spec.rate > 0.0 && spec.secs > 0.0);
    ensure!(
        l + a < spec.members,
        "{l} listeners and {a} actors need a room of more than {} members",
        l + a
    );
    let per_actor = ((spec.rate / a as f64) * spec.secs).round().max(1.0) as usize;
    ensure!(
        per_actor <= EMOJI,
        "{per_actor} reactions per actor, but only {EMOJI} emoji: raise --reactors"
    );
    let tag = &spec.tag;
    let agents = env.agents.len();
    let rooms = Rooms::connect(&env.nats_url).await?;
    let owner = BenchUser::mint(format!("{tag}o"), format!("{tag}o"))?;
    let room = rooms
        .create(&owner.username, &format!("{tag} reactions"))
        .await?;
    say(&format!(
        "reactions: filling a {}-member room through the rooms service",
        spec.members
    ));
    let started = Instant::now();
    rooms.fill(&room, tag, 'r', spec.members, say).await?;
    let fill_secs = started.elapsed().as_secs_f64();
    rooms.ensure_count(&room, spec.members).await?;

    // The actors' sockets, each sending one message first: the agent's membership cache then
    // holds every actor before anything is measured.
    let opened = futures::stream::iter(0..a)
        .map(|i| {
            let room = room.clone();
            let id = member_id(tag, 'r', l + 1 + i);
            let agent = env.ws_addr(i % spec.actor_agents.clamp(1, agents));
            async move {
                let user = BenchUser::mint(id.clone(), id)?;
                let mut ws = client::connect(agent, &user.token).await?;
                let warm = serde_json::json!({"type": "send", "room_id": room, "body": "warm-up",
                    "client_msg_id": format!("w{i}")});
                ws.send(WsMessage::Text(warm.to_string().into())).await?;
                client::wait_for(&mut ws, "ack").await?;
                anyhow::Ok(ws)
            }
        })
        .buffered(OPEN_CONCURRENCY)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<Vec<_>, _>>()
        .context("opening the actors' sockets")?;
    let mut owner_ws = client::connect(env.ws_addr(0), &owner.token).await?;
    let target = serde_json::json!({"type": "send", "room_id": room, "body": "react to this",
        "client_msg_id": "target"});
    owner_ws
        .send(WsMessage::Text(target.to_string().into()))
        .await?;
    let target_seq = client::wait_for(&mut owner_ws, "ack").await?["seq"]
        .as_u64()
        .context("the target message's ack has no seq")?;

    let emoji: Vec<String> = (0..EMOJI as u32)
        .filter_map(|k| char::from_u32(0x1F600 + k).map(String::from))
        .collect();
    let shared = Arc::new(Shared {
        base: Instant::now(),
        room: room.clone(),
        target_seq,
        body: "x".repeat(spec.body_bytes.max(1)),
        emoji_index: emoji
            .iter()
            .enumerate()
            .map(|(i, e)| (e.clone(), i))
            .collect(),
        emoji,
        actor_prefix: format!("{tag}r"),
        first_actor: l + 1,
        actors: a,
        scheduled: (0..a * EMOJI).map(|_| AtomicU64::new(0)).collect(),
        status: (0..a * EMOJI).map(|_| AtomicU8::new(0)).collect(),
        tallies: [Tally::new(), Tally::new()],
        last_delivery_us: [AtomicU64::new(0), AtomicU64::new(0)],
        actor_sockets_closed: AtomicU64::new(0),
    });
    let (stop, stop_rx) = watch::channel(false);
    let mut members = Vec::new();
    for j in 1..=l {
        let id = member_id(tag, 'r', j);
        members.push((
            env.ws_addr(j % agents),
            BenchUser::mint(id.clone(), id)?.token,
        ));
    }
    let (listeners, listeners_done) =
        listen::start(shared.clone(), members, stop_rx.clone()).await?;
    let mut plans = Vec::new();
    let mut tasks = tokio::task::JoinSet::new();
    for (i, ws) in opened.into_iter().enumerate() {
        let (tx, rx) = mpsc::channel(2);
        plans.push(tx);
        tasks.spawn(actors::run(shared.clone(), i, ws, rx, stop_rx.clone()));
    }
    say(&format!(
        "reactions: {l} listeners ({} probes) over {agents} agents and {a} actors over {}; storm of {:.0} reactions/s for {}s on message {target_seq}",
        l.div_ceil(PROBE_EVERY),
        spec.actor_agents.clamp(1, agents),
        spec.rate,
        spec.secs
    ));

    let base = env.http(0);
    let result = async {
        let mut storm = phase(&shared, &plans, &listeners, Kind::React, spec, per_actor).await?;
        let fin = final_state(&base, &owner.token, &room, target_seq).await?;
        let total = fin.pairs.len() as u64;
        // Listeners may still be behind: give them a bounded while to reach the final state.
        let waited = Instant::now();
        while waited.elapsed() < Duration::from_secs(10)
            && listeners.iter().any(|s| {
                let s = lock(s);
                !s.closed && s.changes < total
            })
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let mut r = account(&shared, &listeners, &fin, &mut storm);
        say(&format!("  storm: {}", report::phase_line(&storm)));
        let mut messages = phase(&shared, &plans, &listeners, Kind::Send, spec, per_actor).await?;
        account_messages(&shared, &listeners, &mut messages);
        say(&format!("  messages: {}", report::phase_line(&messages)));
        r.sockets_closed = shared.actor_sockets_closed.load(Ordering::Relaxed)
            + listeners.iter().filter(|s| lock(s).closed).count() as u64;
        r.ratios = report::ratios(&storm, &messages);
        r.storm = storm;
        r.messages = messages;
        anyhow::Ok(r)
    }
    .await;
    let _ = stop.send(true);
    plans.clear();
    let drain = async { while tasks.join_next().await.is_some() {} };
    if tokio::time::timeout(Duration::from_secs(20), drain)
        .await
        .is_err()
    {
        tasks.abort_all();
    }
    let _ = tokio::time::timeout(Duration::from_secs(20), listeners_done).await;
    let _ = owner_ws.close(None).await;
    let mut r = result?;
    r.members = spec.members;
    r.listeners = l;
    r.probes = l.div_ceil(PROBE_EVERY);
    r.actors = a;
    r.agents = agents;
    r.actor_agents = spec.actor_agents.clamp(1, agents);
    r.fill_secs = fill_secs;
    Ok(r)
}

/// Runs one phase on every actor and waits, bounded, until every frame is answered and every
/// listener holds what was acknowledged.
async fn phase(
    shared: &Shared,
    plans: &[mpsc::Sender<Plan>],
    listeners: &[Arc<Mutex<Listener>>],
    kind: Kind,
    spec: &ReactionsSpec,
    per_actor: usize,
) -> anyhow::Result<PhaseFigures> {
    let start = Instant::now() + Duration::from_millis(100);
    let rate = spec.rate;
    for tx in plans {
        tx.send(Plan {
            kind,
            start,
            rate,
            count: per_actor,
        })
        .await
        .context("an actor's socket ended")?;
    }
    let planned = (per_actor * plans.len()) as u64;
    let t = shared.tally(kind);
    let deadline = start + Duration::from_secs_f64(spec.secs) + SETTLE_TIMEOUT;
    let mut complete = false;
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let acked = t.acked.load(Ordering::Relaxed);
        let answered = acked + t.errored.load(Ordering::Relaxed);
        let delivered = |s: &Listener| match kind {
            Kind::React => s.changes,
            Kind::Send => s.messages,
        };
        if t.sent.load(Ordering::Relaxed) == planned
            && answered == planned
            && listeners.iter().all(|s| {
                let s = lock(s);
                s.closed || delivered(&s) >= acked
            })
        {
            complete = true;
            break;
        }
    }
    let start_us =
        u64::try_from(start.saturating_duration_since(shared.base).as_micros()).unwrap_or(0);
    let secs_to = |us: u64| (us.saturating_sub(start_us) as f64 / 1e6).max(1e-3);
    let (sent, acked) = (
        t.sent.load(Ordering::Relaxed),
        t.acked.load(Ordering::Relaxed),
    );
    let errors = lock(&t.errors).clone();
    let mut delivery = stats::histogram();
    let (mut deliveries, mut bytes, mut gaps, mut duplicates) = (0, 0, 0, 0);
    for s in listeners {
        let s = lock(s);
        let (n, b, g, d, h) = match kind {
            Kind::React => (
                s.changes,
                s.change_bytes,
                s.change_gaps,
                s.change_duplicates,
                s.probe.as_ref().map(|p| &p.change_delivery),
            ),
            Kind::Send => (
                s.messages,
                s.message_bytes,
                s.message_gaps,
                s.message_duplicates,
                s.probe.as_ref().map(|p| &p.message_delivery),
            ),
        };
        deliveries += n;
        bytes += b;
        gaps += g;
        duplicates += d;
        if let Some(h) = h {
            let _ = delivery.add(h);
        }
    }
    let delivery_secs = secs_to(shared.last_delivery_us[kind as usize].load(Ordering::Relaxed));
    Ok(PhaseFigures {
        target_per_sec: rate,
        duration_secs: spec.secs,
        sent,
        acked,
        unanswered: sent.saturating_sub(acked + t.errored.load(Ordering::Relaxed)),
        errors,
        achieved_per_sec: acked as f64 / secs_to(t.last_answer_us.load(Ordering::Relaxed)),
        ack_latency: Latency::of(&lock(&t.ack)),
        deliveries,
        deliveries_per_sec: deliveries as f64 / delivery_secs,
        delivery_latency: Latency::of(&delivery),
        bytes_per_delivery: bytes as f64 / deliveries.max(1) as f64,
        delivered_mib_per_sec: bytes as f64 / delivery_secs / (1024.0 * 1024.0),
        gaps,
        duplicates,
        complete,
        ..Default::default()
    })
}
