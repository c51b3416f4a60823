//! Each scenario's run: set-up through the services, the measured phases, the accounting.

use crate::cli::{CeilingArgs, DrainArgs, IdleArgs, IngestArgs, MembersArgs, ReactionsArgs};
use std::time::Duration;

use crate::cli::SearchArgs;
use crate::env::Env;
use crate::load::{Load, LoadSpec};
use crate::report::LoadResult;
use crate::writer::LagSampler;
use crate::{ceiling, idle, load, members, reactions, say, search_bench, writer};

pub(crate) async fn run_reactions(
    env: &mut Env,
    r: &ReactionsArgs,
    body: usize,
    tag: &str,
) -> anyhow::Result<reactions::Reactions> {
    while env.agents.len() < 2 {
        env.add_agent().await?;
    }
    let spec = reactions::ReactionsSpec {
        tag: format!("{tag}x"),
        members: r.room_members,
        listeners: r.listeners,
        actors: r.reactors,
        rate: r.storm_rate,
        secs: r.storm_secs,
        actor_agents: r.reactor_agents.clamp(1, 2),
        body_bytes: body,
    };
    let mut log = |l: &str| say(l);
    let result = reactions::measure(env, &spec, &mut log).await?;
    for l in reactions::lines(&result) {
        say(&l);
    }
    Ok(result)
}

pub(crate) async fn run_members(
    env: &Env,
    m: &MembersArgs,
    tag: &str,
) -> anyhow::Result<members::Members> {
    let spec = members::MembersSpec {
        tag: format!("{tag}m"),
        big: m.big_members,
        small: m.small_members,
        samples: m.samples,
        connected: m.connected,
    };
    let mut log = |l: &str| say(l);
    let r = members::measure(env, &spec, &mut log).await?;
    for l in members::lines(&r) {
        say(&l);
    }
    Ok(r)
}

pub(crate) async fn run_ceiling(
    env: &Env,
    c: &CeilingArgs,
    body: usize,
) -> anyhow::Result<ceiling::Ceiling> {
    say(&format!(
        "ceiling: raw JetStream async publish for {}s, then {} sync publishes",
        c.ceiling_secs, c.sync_count
    ));
    let r = ceiling::measure(
        &env.nats_url,
        body,
        Duration::from_secs(c.ceiling_secs),
        c.sync_count,
    )
    .await?;
    say(&format!(
        "ceiling: async {:.0} msg/s ({} B payload); sync {}; paced 100/s {}",
        r.async_publish_per_sec,
        r.payload_bytes,
        r.sync_publish.row(),
        r.paced_publish.row()
    ));
    Ok(r)
}

/// Sets up the rooms and sockets, then runs the search (or the given rate), the sustained run
/// and, when `half` is set, a run at half the sustained rate; then accounts for every message.
pub(crate) async fn run_load(
    env: &mut Env,
    a: &IngestArgs,
    body: usize,
    tag: &str,
    half: bool,
) -> anyhow::Result<LoadResult> {
    while env.agents.len() < a.agents {
        env.add_agent().await?;
    }
    let bases: Vec<String> = (0..a.agents).map(|i| env.http(i)).collect();
    let addrs: Vec<_> = (0..a.agents).map(|i| env.ws_addr(i)).collect();
    say(&format!(
        "load {tag}: {} rooms x {} members over {} agents, {} senders per room, {} B bodies: setting up",
        a.rooms, a.members, a.agents, a.senders_per_room, body
    ));
    let setup_start = std::time::Instant::now();
    let mut load = Load::setup(
        LoadSpec {
            tag: tag.to_string(),
            rooms: a.rooms,
            members: a.members,
            senders_per_room: a.senders_per_room.min(a.members),
            body_bytes: body,
        },
        &bases,
        &addrs,
    )
    .await?;
    say(&format!(
        "load {tag}: {} sockets open and joined in {:.1}s",
        load.sockets(),
        setup_start.elapsed().as_secs_f64()
    ));
    let stream = writer::messages_stream(&env.nats_url).await?;
    let lag = LagSampler::start(stream.clone());
    let mut log = |l: &str| say(l);
    let (max, search) = match a.rate {
        Some(_) => (None, Vec::new()),
        None => {
            say(&format!(
                "load {tag}: searching for the highest sustained rate"
            ));
            load::find_max(
                &mut load,
                a.start_rate,
                Duration::from_secs(a.step_secs),
                a.max_p99_ms,
                &lag,
                &mut log,
            )
            .await?
        }
    };
    let rate = a
        .rate
        .or(max.as_ref().map(|m| m.target_msgs_per_sec))
        .unwrap_or(a.start_rate);
    let duration = Duration::from_secs(a.duration_secs);
    say(&format!(
        "load {tag}: sustained {rate:.0} msg/s for {}s",
        a.duration_secs
    ));
    let sustained = load.phase(rate, duration, &lag).await?;
    say(&format!("  {}", sustained.line()));
    let half_result = if half {
        say(&format!(
            "load {tag}: half load {:.0} msg/s for {}s",
            rate / 2.0,
            a.duration_secs
        ));
        let r = load.phase(rate / 2.0, duration, &lag).await?;
        say(&format!("  {}", r.line()));
        Some(r)
    } else {
        None
    };
    drop(lag);
    let catch_up = writer::wait_caught_up(&stream, Duration::from_secs(120)).await?;
    let redis_url = format!("redis://{}/", env.redis_addr);
    let accounting = load.account(Some(&redis_url)).await?;
    say(&format!("load {tag}: {}", accounting.line()));
    let sockets = load.sockets();
    let senders = a.senders_per_room.min(a.members) * a.rooms;
    load.close().await;
    let _ = sockets;
    Ok(LoadResult {
        rooms: a.rooms,
        members: a.members,
        agents: a.agents,
        senders,
        body_bytes: body,
        search,
        max,
        sustained: Some(sustained),
        half: half_result,
        writer_catch_up_secs: catch_up.as_secs_f64(),
        accounting,
    })
}

pub(crate) async fn run_idle(env: &mut Env, i: &IdleArgs, tag: &str) -> anyhow::Result<idle::Idle> {
    say(&format!("idle: {} sockets on a fresh agent", i.sockets));
    let r = idle::measure(env, &format!("{tag}d"), i.sockets).await?;
    if r.sockets < r.requested {
        say(&format!(
            "idle: {} sockets instead of {}: the open-file hard limit is {} and cannot be raised here (no CAP_SYS_RESOURCE)",
            r.sockets, r.requested, r.nofile_hard_limit
        ));
    }
    say(&format!(
        "idle: VmRSS {} -> {} KiB: {:.2} KiB per socket (opened in {:.1}s)",
        r.rss_before_kib, r.rss_after_kib, r.kib_per_socket, r.open_secs
    ));
    Ok(r)
}

pub(crate) async fn run_drain(
    env: &mut Env,
    d: &DrainArgs,
    body: usize,
    tag: &str,
) -> anyhow::Result<writer::Drain> {
    say(&format!(
        "drain: msg-writer stopped, {} messages over {} rooms published, writer started",
        d.messages, d.drain_rooms
    ));
    let r = writer::drain(env, &format!("{tag}w"), d.messages, d.drain_rooms, body).await?;
    say(&format!(
        "drain: published at {:.0} msg/s; drained in {:.1}s = {:.0} msg/s; history missing {} extra {}",
        r.publish_per_sec, r.drain_secs, r.drain_msgs_per_sec, r.history_missing, r.history_extra
    ));
    Ok(r)
}

pub(crate) async fn run_search(
    env: &mut Env,
    s: &SearchArgs,
    tag: &str,
) -> anyhow::Result<search_bench::SearchBench> {
    let plan = search_bench::Plan {
        messages: s.messages,
        rooms: s.search_rooms,
        live_rate: s.live_rate,
        live_secs: s.live_secs,
        queries: s.queries,
    };
    let r = search_bench::run(env, &format!("{tag}s"), &plan).await?;
    for line in search_bench::lines(&r) {
        say(&line);
    }
    Ok(r)
}
