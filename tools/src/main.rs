//! `dyschat-bench`: end-to-end load on the DYSCHAT mesh with every message accounted for, held
//! against what raw JetStream does on the same nats-server in the same run.
//!
//! It starts nats-server and redis-server (or uses the ones given), runs the release service
//! binaries as processes, and measures the scenarios of `docs/PERFORMANCE.md`. `make bench` runs
//! `dyschat-bench all`; `make test` runs `dyschat-bench smoke`, which checks the accounting only.

mod ceiling;
mod client;
mod env;
mod fill;
mod hops;
mod idle;
mod load;
mod members;
mod reactions;
mod search_bench;
mod stats;
mod writer;

mod cli;
mod report;
mod scenario;

use std::time::Duration;

use anyhow::Context;
use clap::Parser;

use crate::cli::{
    AllArgs, CeilingArgs, Cli, Command, Common, DrainArgs, IdleArgs, IngestArgs, MembersArgs,
    ReactionsArgs, SearchArgs,
};
use crate::env::{Env, EnvOptions};
use crate::report::{evaluate, print_table, Machine, Results};
use crate::scenario::{
    run_ceiling, run_drain, run_idle, run_load, run_members, run_reactions, run_search,
};

pub(crate) fn say(line: &str) {
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
            connected: 300,
        },
        reactions: ReactionsArgs {
            room_members: 1000,
            listeners: 100,
            reactors: 400,
            storm_rate: 1000.0,
            storm_secs: 3.0,
            reactor_agents: 2,
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
            match run_reactions(env, &a.reactions, body, tag).await {
                Ok(r) => results.reactions = Some(r),
                Err(e) => note("reactions", e),
            }
            let search = SearchArgs {
                messages: 1_000_000,
                search_rooms: 50,
                live_rate: 2000.0,
                live_secs: 15.0,
                queries: 500,
            };
            match run_search(env, &search, tag).await {
                Ok(r) => results.search = Some(r),
                Err(e) => note("search", e),
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
                connected: 20,
            };
            results.members = Some(run_members(env, &m, tag).await?);
            // A few hundred reactions: the accounting (loss 0, chains intact), never speed.
            let r = ReactionsArgs {
                room_members: 60,
                listeners: 6,
                reactors: 20,
                storm_rate: 100.0,
                storm_secs: 2.0,
                reactor_agents: 2,
            };
            results.reactions = Some(run_reactions(env, &r, body, tag).await?);
            // A small index: every sampled message found by its own word, never speed.
            let s = SearchArgs {
                messages: 2000,
                search_rooms: 4,
                live_rate: 200.0,
                live_secs: 2.0,
                queries: 20,
            };
            results.search = Some(run_search(env, &s, tag).await?);
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
        Command::Reactions(r) => results.reactions = Some(run_reactions(env, r, body, tag).await?),
        Command::Search(s) => results.search = Some(run_search(env, s, tag).await?),
    }
    Ok(())
}
