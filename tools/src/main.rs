//! `dyschat-bench`: end-to-end load on the DYSCHAT mesh with every message accounted for, held
//! against what raw JetStream does on the same nats-server in the same run.
//!
//! It starts nats-server and redis-server (or uses the ones given), runs the release service
//! binaries as processes, and measures the scenarios of `docs/PERFORMANCE.md`. `make bench` runs
//! `dyschat-bench all`; `make test` runs `dyschat-bench smoke`, which checks the accounting only.

mod ceiling;
mod client;
mod env;
mod idle;
mod load;
mod members;
mod stats;
mod writer;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use serde::Serialize;

use crate::env::{Env, EnvOptions};
use crate::load::{Accounting, Load, LoadSpec, PhaseResult};
use crate::writer::LagSampler;

#[derive(Parser, Debug)]
#[command(name = "dyschat-bench", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    common: Common,
}

#[derive(Args, Debug, Clone)]
struct Common {
    /// Directory of the service binaries (default: this executable's directory).
    #[arg(long, global = true)]
    bin_dir: Option<PathBuf>,
    /// Where the JSON results go.
    #[arg(long, global = true, default_value = "target/bench/results.json")]
    out: PathBuf,
    /// Use this nats-server (with JetStream) instead of starting one.
    #[arg(long, global = true)]
    nats_url: Option<String>,
    /// Use this redis-server (host:port) instead of starting one.
    #[arg(long, global = true)]
    redis_addr: Option<String>,
    /// `appendfsync` of the redis-server the bench starts.
    #[arg(long, global = true, default_value = "always")]
    redis_fsync: String,
    /// Message body size in bytes.
    #[arg(long, global = true, default_value_t = 100)]
    body_bytes: usize,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Every scenario, sized for a 2-core machine (what `make bench` runs).
    All(AllArgs),
    /// A few seconds of tiny load; fails unless every message is accounted for. Never checks speed.
    Smoke,
    /// Raw JetStream only: async publish rate and sync publish round trip.
    Ceiling(CeilingArgs),
    /// Rooms of members over agents: find the highest sustained ingest, then latency at half.
    Ingest(IngestArgs),
    /// One big room over agents: deliveries per second.
    Fanout(IngestArgs),
    /// msg-writer backlog drain.
    Drain(DrainArgs),
    /// Resident memory per idle WebSocket on one agent.
    Idle(IdleArgs),
    /// Room size: join, leave, membership check, send and member pages in a big room against a
    /// room of 10.
    Members(MembersArgs),
}

#[derive(Args, Debug, Clone)]
struct MembersArgs {
    /// Members of the big room (owner included).
    #[arg(long, default_value_t = 100_000)]
    big_members: usize,
    /// Members of the small room (owner included).
    #[arg(long, default_value_t = 10)]
    small_members: usize,
    /// Measured requests per room and operation.
    #[arg(long, default_value_t = 300)]
    samples: usize,
}

#[derive(Args, Debug, Clone)]
struct CeilingArgs {
    #[arg(long, default_value_t = 5)]
    ceiling_secs: u64,
    #[arg(long, default_value_t = 2000)]
    sync_count: usize,
}

#[derive(Args, Debug, Clone)]
struct IngestArgs {
    #[arg(long, default_value_t = 100)]
    rooms: usize,
    #[arg(long, default_value_t = 10)]
    members: usize,
    #[arg(long, default_value_t = 2)]
    agents: usize,
    /// Members of each room that send.
    #[arg(long, default_value_t = 1)]
    senders_per_room: usize,
    /// Fixed total rate (messages/s); without it the highest sustained rate is searched for.
    #[arg(long)]
    rate: Option<f64>,
    /// First rate of the search.
    #[arg(long, default_value_t = 1000.0)]
    start_rate: f64,
    /// Length of one search step.
    #[arg(long, default_value_t = 5)]
    step_secs: u64,
    /// Length of the sustained run (at the found or given rate) and of the half-load run.
    #[arg(long, default_value_t = 15)]
    duration_secs: u64,
    /// A search step fails when the ack p99 exceeds this.
    #[arg(long, default_value_t = 500.0)]
    max_p99_ms: f64,
}

#[derive(Args, Debug, Clone)]
struct DrainArgs {
    #[arg(long, default_value_t = 1_000_000)]
    messages: u64,
    #[arg(long, default_value_t = 100)]
    drain_rooms: usize,
}

#[derive(Args, Debug, Clone)]
struct IdleArgs {
    #[arg(long, default_value_t = 20_000)]
    sockets: usize,
}

#[derive(Args, Debug, Clone)]
struct AllArgs {
    #[command(flatten)]
    ceiling: CeilingArgs,
    #[command(flatten)]
    drain: DrainArgs,
    #[command(flatten)]
    idle: IdleArgs,
    #[command(flatten)]
    members: MembersArgs,
    /// Members of the fan-out room.
    #[arg(long, default_value_t = 5000)]
    fanout_members: usize,
    #[arg(long, default_value_t = 4)]
    fanout_senders: usize,
    #[arg(long, default_value_t = 10.0)]
    fanout_start_rate: f64,
}

#[derive(Debug, Clone, Serialize)]
struct Machine {
    nproc: usize,
    cpu: String,
    mem_total_kib: u64,
}

impl Machine {
    fn read() -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        Machine {
            nproc: std::thread::available_parallelism().map_or(1, |n| n.get()),
            cpu: cpuinfo
                .lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|v| v.trim_start_matches([' ', '\t', ':']).to_string())
                .unwrap_or_default(),
            mem_total_kib: meminfo
                .lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
                .unwrap_or(0),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
struct LoadResult {
    rooms: usize,
    members: usize,
    agents: usize,
    senders: usize,
    body_bytes: usize,
    search: Vec<PhaseResult>,
    max: Option<PhaseResult>,
    sustained: Option<PhaseResult>,
    half: Option<PhaseResult>,
    writer_catch_up_secs: f64,
    accounting: Accounting,
}

#[derive(Debug, Clone, Serialize)]
struct Target {
    name: String,
    value: f64,
    unit: String,
    target: String,
    met: bool,
}

#[derive(Debug, Serialize, Default)]
struct Results {
    command: String,
    machine: Option<Machine>,
    raised_limits: Vec<(String, String)>,
    redis_appendfsync: String,
    ceiling: Option<ceiling::Ceiling>,
    ingest: Option<LoadResult>,
    fanout: Option<LoadResult>,
    drain: Option<writer::Drain>,
    idle: Option<idle::Idle>,
    members: Option<members::Members>,
    targets: Vec<Target>,
    accounting_clean: bool,
    /// Scenarios that could not run to the end.
    errors: Vec<String>,
    wall_secs: f64,
}

fn say(line: &str) {
    eprintln!("[bench] {line}");
}

/// Raises the open-file limit (inherited by the services the bench starts) for many sockets.
fn raise_nofile() {
    let want = 1_048_576u64;
    let (soft, hard) = rlimit::Resource::NOFILE.get().unwrap_or((1024, 1024));
    // Root may raise the hard limit; anyone may raise the soft one up to the hard one.
    if rlimit::Resource::NOFILE.set(want, want.max(hard)).is_err() {
        let _ = rlimit::Resource::NOFILE.set(hard, hard);
    }
    let (now, _) = rlimit::Resource::NOFILE.get().unwrap_or((soft, hard));
    say(&format!("open-file limit {soft} -> {now}"));
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    raise_nofile();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    // On SIGINT or SIGTERM the run is dropped, and with it every server and service it started.
    let code = runtime.block_on(async {
        tokio::select! {
            result = run(cli) => result,
            _ = dyschat_runtime::shutdown::wait_for_signal() => {
                eprintln!("[bench] interrupted: stopped; the servers and services it started are stopped too");
                Ok(130)
            }
        }
    })?;
    runtime.shutdown_timeout(Duration::from_secs(5));
    std::process::exit(code);
}

async fn run(cli: Cli) -> anyhow::Result<i32> {
    let started = std::time::Instant::now();
    let common = cli.common.clone();
    let bin_dir = match &common.bin_dir {
        Some(d) => d.clone(),
        None => env::default_bin_dir()?,
    };
    let command = cli.command.unwrap_or(Command::All(AllArgs {
        ceiling: CeilingArgs {
            ceiling_secs: 5,
            sync_count: 2000,
        },
        drain: DrainArgs {
            messages: 1_000_000,
            drain_rooms: 100,
        },
        idle: IdleArgs { sockets: 20_000 },
        members: MembersArgs {
            big_members: 100_000,
            small_members: 10,
            samples: 300,
        },
        fanout_members: 5000,
        fanout_senders: 4,
        fanout_start_rate: 10.0,
    }));
    let mut results = Results {
        command: std::env::args().collect::<Vec<_>>().join(" "),
        machine: Some(Machine::read()),
        raised_limits: env::RAISED_LIMITS
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        redis_appendfsync: common.redis_fsync.clone(),
        ..Default::default()
    };
    say(&format!(
        "services from {}; raised for the bench: {}",
        bin_dir.display(),
        env::RAISED_LIMITS
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(" ")
    ));
    let agents = match &command {
        Command::Ingest(a) | Command::Fanout(a) => a.agents,
        _ => 2,
    };
    let mut env = Env::start(&EnvOptions {
        bin_dir,
        nats_url: common.nats_url.clone(),
        redis_addr: common.redis_addr.clone(),
        agents,
        redis_fsync: common.redis_fsync.clone(),
    })
    .await?;
    say(&format!(
        "mesh up: nats {} redis {} agents {} (in {:.1}s)",
        env.nats_url,
        env.redis_addr,
        env.agents.len(),
        env.elapsed().as_secs_f64()
    ));
    let tag = format!("b{}", std::process::id() % 100_000);
    let outcome = scenarios(&mut env, &command, &common, &tag, &mut results).await;
    env.stop().await;
    drop(env);
    outcome?;
    results.wall_secs = started.elapsed().as_secs_f64();
    evaluate(&mut results);
    if matches!(command, Command::Smoke) {
        // The smoke checks accounting only; tiny numbers say nothing about speed.
        results.targets.clear();
    }
    print_table(&results);
    if let Some(dir) = common.out.parent() {
        std::fs::create_dir_all(dir).ok();
    }
    std::fs::write(&common.out, serde_json::to_string_pretty(&results)?)
        .with_context(|| format!("writing {}", common.out.display()))?;
    say(&format!("results written to {}", common.out.display()));
    if results.accounting_clean {
        Ok(0)
    } else {
        say("ACCOUNTING FAILED: some message was lost, duplicated or out of order (see above)");
        Ok(1)
    }
}

async fn scenarios(
    env: &mut Env,
    command: &Command,
    common: &Common,
    tag: &str,
    results: &mut Results,
) -> anyhow::Result<()> {
    let body = common.body_bytes;
    match command {
        Command::All(a) => {
            // One failing scenario is reported and the others still run.
            let mut errors = Vec::new();
            let mut note = |what: &str, e: anyhow::Error| {
                say(&format!("{what} FAILED: {e:#}"));
                errors.push(format!("{what}: {e:#}"));
            };
            match run_ceiling(env, &a.ceiling, body).await {
                Ok(c) => results.ceiling = Some(c),
                Err(e) => note("ceiling", e),
            }
            let ingest = IngestArgs {
                rooms: 100,
                members: 10,
                agents: 2,
                senders_per_room: 1,
                rate: None,
                start_rate: 2000.0,
                step_secs: 5,
                duration_secs: 15,
                max_p99_ms: 500.0,
            };
            match run_load(env, &ingest, body, &format!("{tag}i"), true).await {
                Ok(r) => results.ingest = Some(r),
                Err(e) => note("ingest", e),
            }
            let fanout = IngestArgs {
                rooms: 1,
                members: a.fanout_members,
                agents: 2,
                senders_per_room: a.fanout_senders,
                rate: None,
                start_rate: a.fanout_start_rate,
                step_secs: 5,
                duration_secs: 10,
                max_p99_ms: 1000.0,
            };
            match run_load(env, &fanout, body, &format!("{tag}f"), false).await {
                Ok(r) => results.fanout = Some(r),
                Err(e) => note("fanout", e),
            }
            match run_idle(env, &a.idle, tag).await {
                Ok(r) => results.idle = Some(r),
                Err(e) => note("idle", e),
            }
            match run_drain(env, &a.drain, body, tag).await {
                Ok(r) => results.drain = Some(r),
                Err(e) => note("drain", e),
            }
            match run_members(env, &a.members, tag).await {
                Ok(r) => results.members = Some(r),
                Err(e) => note("members", e),
            }
            results.errors = errors;
        }
        Command::Smoke => {
            let c = CeilingArgs {
                ceiling_secs: 1,
                sync_count: 50,
            };
            results.ceiling = Some(run_ceiling(env, &c, body).await?);
            let ingest = IngestArgs {
                rooms: 2,
                members: 3,
                agents: 2,
                senders_per_room: 2,
                rate: Some(40.0),
                start_rate: 0.0,
                step_secs: 1,
                duration_secs: 2,
                max_p99_ms: 0.0,
            };
            results.ingest = Some(run_load(env, &ingest, body, &format!("{tag}i"), false).await?);
            results.idle = Some(run_idle(env, &IdleArgs { sockets: 20 }, tag).await?);
            let d = DrainArgs {
                messages: 2000,
                drain_rooms: 4,
            };
            results.drain = Some(run_drain(env, &d, body, tag).await?);
            // Correctness only (exact counts, complete page-through), never speed.
            let m = MembersArgs {
                big_members: 2000,
                small_members: 10,
                samples: 20,
            };
            results.members = Some(run_members(env, &m, tag).await?);
        }
        Command::Ceiling(c) => results.ceiling = Some(run_ceiling(env, c, body).await?),
        Command::Ingest(a) => {
            results.ceiling = Some(
                run_ceiling(
                    env,
                    &CeilingArgs {
                        ceiling_secs: 5,
                        sync_count: 2000,
                    },
                    body,
                )
                .await?,
            );
            results.ingest = Some(run_load(env, a, body, &format!("{tag}i"), true).await?);
        }
        Command::Fanout(a) => {
            results.fanout = Some(run_load(env, a, body, &format!("{tag}f"), false).await?);
        }
        Command::Drain(d) => results.drain = Some(run_drain(env, d, body, tag).await?),
        Command::Idle(i) => results.idle = Some(run_idle(env, i, tag).await?),
        Command::Members(m) => results.members = Some(run_members(env, m, tag).await?),
    }
    Ok(())
}

async fn run_members(env: &Env, m: &MembersArgs, tag: &str) -> anyhow::Result<members::Members> {
    let spec = members::MembersSpec {
        tag: format!("{tag}m"),
        big: m.big_members,
        small: m.small_members,
        samples: m.samples,
    };
    let mut log = |l: &str| say(l);
    let r = members::measure(env, &spec, &mut log).await?;
    for l in members::lines(&r) {
        say(&l);
    }
    Ok(r)
}

async fn run_ceiling(env: &Env, c: &CeilingArgs, body: usize) -> anyhow::Result<ceiling::Ceiling> {
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
        "ceiling: async {:.0} msg/s ({} B payload); sync {}",
        r.async_publish_per_sec,
        r.payload_bytes,
        r.sync_publish.row()
    ));
    Ok(r)
}

/// Sets up the rooms and sockets, then runs the search (or the given rate), the sustained run
/// and, when `half` is set, a run at half the sustained rate; then accounts for every message.
async fn run_load(
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

async fn run_idle(env: &mut Env, i: &IdleArgs, tag: &str) -> anyhow::Result<idle::Idle> {
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

async fn run_drain(
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

/// The targets as ratios within this run, and whether the accounting is clean.
fn evaluate(r: &mut Results) {
    let mut targets = Vec::new();
    let mut clean = true;
    let ceiling = r.ceiling.clone();
    if let Some(ing) = &r.ingest {
        clean &= ing.accounting.clean();
        if let (Some(c), Some(s)) = (&ceiling, &ing.sustained) {
            let ratio = s.ingest_msgs_per_sec / c.async_publish_per_sec;
            targets.push(Target {
                name: format!(
                    "sustained ingest, {}-member rooms over {} agents, / raw JetStream async publish",
                    ing.members, ing.agents
                ),
                value: ratio,
                unit: "ratio".into(),
                target: ">= 0.25".into(),
                met: ratio >= 0.25 && s.complete && ing.accounting.clean(),
            });
        }
        if let (Some(c), Some(h)) = (&ceiling, &ing.half) {
            let ratio = h.delivery_latency.p99_ms / c.sync_publish.p99_ms.max(1e-3);
            targets.push(Target {
                name: "delivery p99 at half load / raw sync publish p99".into(),
                value: ratio,
                unit: "ratio".into(),
                target: "<= 10".into(),
                met: ratio <= 10.0,
            });
        }
        if let Some(s) = &ing.sustained {
            let bound = (s.ingest_msgs_per_sec).max(1000.0);
            targets.push(Target {
                name: "msg-writer pending at the sustained rate (max during the run)".into(),
                value: s.writer_pending_max as f64,
                unit: "messages".into(),
                target: format!("bounded: <= 1 s of ingest ({bound:.0})"),
                met: (s.writer_pending_max as f64) <= bound,
            });
        }
    }
    if let Some(f) = &r.fanout {
        clean &= f.accounting.clean();
        // The highest deliveries/s of any phase that delivered everything (the search's failing
        // steps included: they fail on ingest rate or ack latency, not on loss).
        let peak = f
            .search
            .iter()
            .chain(f.sustained.iter())
            .filter(|p| p.complete)
            .map(|p| p.deliveries_per_sec)
            .fold(0.0f64, f64::max);
        targets.push(Target {
            name: format!(
                "{}-member room over {} agents: peak deliveries/s of a complete phase",
                f.members, f.agents
            ),
            value: peak,
            unit: "deliveries/s".into(),
            target: ">= 200000, loss 0".into(),
            met: peak >= 200_000.0 && f.accounting.clean(),
        });
    }
    if let Some(d) = &r.drain {
        clean &= d.history_missing == 0 && d.history_extra == 0;
        targets.push(Target {
            name: format!("msg-writer drains a {}-message backlog", d.messages),
            value: d.drain_msgs_per_sec,
            unit: "msg/s".into(),
            target: ">= 50000".into(),
            met: d.drain_msgs_per_sec >= 50_000.0,
        });
    }
    if let Some(i) = &r.idle {
        targets.push(Target {
            name: format!(
                "memory per idle WebSocket at {} sockets on one agent",
                i.sockets
            ),
            value: i.kib_per_socket,
            unit: "KiB".into(),
            target: "<= 16".into(),
            met: i.kib_per_socket <= 16.0,
        });
    }
    if let Some(m) = &r.members {
        targets.extend(members::targets(m));
    }
    r.targets = targets;
    r.accounting_clean = clean && r.errors.is_empty();
}

fn print_table(r: &Results) {
    let mut out = String::new();
    let mut line = |s: String| {
        out.push_str(&s);
        out.push('\n');
    };
    line(format!("command: {}", r.command));
    if let Some(m) = &r.machine {
        line(format!(
            "machine: {} cores, {}, {} MiB",
            m.nproc,
            m.cpu,
            m.mem_total_kib / 1024
        ));
    }
    line(format!(
        "raised: {}  redis appendfsync {}",
        r.raised_limits
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(" "),
        r.redis_appendfsync
    ));
    if let Some(c) = &r.ceiling {
        line("ceiling (raw JetStream, RePublish on, same nats-server):".into());
        line(format!(
            "  async publish        {:>12.0} msg/s ({} B payload)",
            c.async_publish_per_sec, c.payload_bytes
        ));
        line(format!("  sync publish RTT     {}", c.sync_publish.row()));
    }
    for (name, l) in [("ingest", &r.ingest), ("fanout", &r.fanout)] {
        let Some(l) = l else { continue };
        line(format!(
            "{name}: {} rooms x {} members over {} agents, {} senders, {} B bodies",
            l.rooms, l.members, l.agents, l.senders, l.body_bytes
        ));
        for (label, p) in [
            ("search max", &l.max),
            ("sustained", &l.sustained),
            ("half load", &l.half),
        ] {
            let Some(p) = p else { continue };
            line(format!(
                "  {label:<10} target {:>8.0} msg/s | in {:>8.0} msg/s | out {:>9.0} deliveries/s | complete {} | writer pending max {}",
                p.target_msgs_per_sec, p.ingest_msgs_per_sec, p.deliveries_per_sec, p.complete, p.writer_pending_max
            ));
            line(format!("    ack      {}", p.ack_latency.row()));
            line(format!("    delivery {}", p.delivery_latency.row()));
        }
        line(format!("  accounting: {}", l.accounting.line()));
        line(format!(
            "  msg-writer caught up {:.2}s after the last phase",
            l.writer_catch_up_secs
        ));
    }
    if let Some(d) = &r.drain {
        line(format!(
            "drain: {} messages over {} rooms: {:.1}s = {:.0} msg/s (backlog published at {:.0} msg/s); history missing {} extra {}",
            d.messages, d.rooms, d.drain_secs, d.drain_msgs_per_sec, d.publish_per_sec, d.history_missing, d.history_extra
        ));
    }
    if let Some(i) = &r.idle {
        line(format!(
            "idle: {} sockets: VmRSS {} -> {} KiB = {:.2} KiB per socket",
            i.sockets, i.rss_before_kib, i.rss_after_kib, i.kib_per_socket
        ));
    }
    if let Some(m) = &r.members {
        for l in members::lines(m) {
            line(l);
        }
    }
    if !r.targets.is_empty() {
        line("targets:".into());
        for t in &r.targets {
            line(format!(
                "  [{}] {:<80} {:>12.3} {:<13} target {}",
                if t.met { "met " } else { "MISS" },
                t.name,
                t.value,
                t.unit,
                t.target
            ));
        }
    }
    for e in &r.errors {
        line(format!("FAILED scenario: {e}"));
    }
    line(format!(
        "accounting: {}   wall time {:.0}s",
        if r.accounting_clean {
            "clean (lost 0, duplicated 0, out of order 0)"
        } else {
            "FAILED"
        },
        r.wall_secs
    ));
    print!("{out}");
}
