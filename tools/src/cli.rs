//! The command line of `dyschat-bench`: its scenarios and their options (clap).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(name = "dyschat-bench", version, about)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Option<Command>,
    #[command(flatten)]
    pub(crate) common: Common,
}

#[derive(Args, Debug, Clone)]
pub(crate) struct Common {
    /// Directory of the service binaries (default: this executable's directory).
    #[arg(long, global = true)]
    pub(crate) bin_dir: Option<PathBuf>,
    /// Where the JSON results go.
    #[arg(long, global = true, default_value = "target/bench/results.json")]
    pub(crate) out: PathBuf,
    /// Use this nats-server (with JetStream) instead of starting one.
    #[arg(long, global = true)]
    pub(crate) nats_url: Option<String>,
    /// Use this redis-server (host:port) instead of starting one.
    #[arg(long, global = true)]
    pub(crate) redis_addr: Option<String>,
    /// `appendfsync` of the redis-server the bench starts.
    #[arg(long, global = true, default_value = "always")]
    pub(crate) redis_fsync: String,
    /// Message body size in bytes.
    #[arg(long, global = true, default_value_t = 100)]
    pub(crate) body_bytes: usize,
}

#[derive(Subcommand, Debug)]
pub(crate) enum Command {
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
    /// Reaction storm: reactions on one message of a 1,000-member room against plain messages
    /// at the same rate into the same room; every acked reaction must be in its final state.
    Reactions(ReactionsArgs),
    /// Message search: a search instance rebuilding its index from a backlog, then indexing
    /// behind a sustained ingest while queries run over HTTP.
    Search(SearchArgs),
}

#[derive(Args, Debug, Clone)]
pub(crate) struct SearchArgs {
    /// Messages laid in the stream before the search instance starts on an empty index.
    #[arg(long, default_value_t = 1_000_000)]
    pub(crate) messages: u64,
    /// Rooms of the searching user the messages go to.
    #[arg(long, default_value_t = 50)]
    pub(crate) search_rooms: usize,
    /// Messages per second of the sustained ingest while queries run.
    #[arg(long, default_value_t = 2000.0)]
    pub(crate) live_rate: f64,
    /// Seconds of the sustained ingest.
    #[arg(long, default_value_t = 15.0)]
    pub(crate) live_secs: f64,
    /// Queries measured (one at a time).
    #[arg(long, default_value_t = 500)]
    pub(crate) queries: usize,
}

#[derive(Args, Debug, Clone)]
pub(crate) struct ReactionsArgs {
    /// Members of the room (owner included).
    #[arg(long, default_value_t = 1000)]
    pub(crate) room_members: usize,
    /// Members joined to the room (over every agent), receiving every change and message.
    #[arg(long, default_value_t = 100)]
    pub(crate) listeners: usize,
    /// Members reacting, then sending (their sockets over every agent, not joined); each
    /// reacts with distinct emoji, at most 50.
    #[arg(long, default_value_t = 400)]
    pub(crate) reactors: usize,
    /// Reactions per second of the storm, all reactors together (and then messages per second).
    #[arg(long, default_value_t = 1000.0)]
    pub(crate) storm_rate: f64,
    /// Length of the storm, and of the messages after it.
    #[arg(long, default_value_t = 3.0)]
    pub(crate) storm_secs: f64,
    /// Agents the reactors' sockets are spread over (the first ones; the listeners use both):
    /// 1 shows the storm without compare-and-set races between agents.
    #[arg(long, default_value_t = 2)]
    pub(crate) reactor_agents: usize,
}

#[derive(Args, Debug, Clone)]
pub(crate) struct MembersArgs {
    /// Members of the big room (owner included).
    #[arg(long, default_value_t = 100_000)]
    pub(crate) big_members: usize,
    /// Members of the small room (owner included).
    #[arg(long, default_value_t = 10)]
    pub(crate) small_members: usize,
    /// Measured requests per room and operation.
    #[arg(long, default_value_t = 300)]
    pub(crate) samples: usize,
    /// Members of each room connected over the agents and receiving while sends are measured.
    #[arg(long, default_value_t = 300)]
    pub(crate) connected: usize,
}

#[derive(Args, Debug, Clone)]
pub(crate) struct CeilingArgs {
    #[arg(long, default_value_t = 5)]
    pub(crate) ceiling_secs: u64,
    #[arg(long, default_value_t = 2000)]
    pub(crate) sync_count: usize,
}

#[derive(Args, Debug, Clone)]
pub(crate) struct IngestArgs {
    #[arg(long, default_value_t = 100)]
    pub(crate) rooms: usize,
    #[arg(long, default_value_t = 10)]
    pub(crate) members: usize,
    #[arg(long, default_value_t = 2)]
    pub(crate) agents: usize,
    /// Members of each room that send.
    #[arg(long, default_value_t = 1)]
    pub(crate) senders_per_room: usize,
    /// Fixed total rate (messages/s); without it the highest sustained rate is searched for.
    #[arg(long)]
    pub(crate) rate: Option<f64>,
    /// First rate of the search.
    #[arg(long, default_value_t = 1000.0)]
    pub(crate) start_rate: f64,
    /// Length of one search step.
    #[arg(long, default_value_t = 5)]
    pub(crate) step_secs: u64,
    /// Length of the sustained run (at the found or given rate) and of the half-load run.
    #[arg(long, default_value_t = 15)]
    pub(crate) duration_secs: u64,
    /// A search step fails when the ack p99 exceeds this.
    #[arg(long, default_value_t = 500.0)]
    pub(crate) max_p99_ms: f64,
}

#[derive(Args, Debug, Clone)]
pub(crate) struct DrainArgs {
    #[arg(long, default_value_t = 1_000_000)]
    pub(crate) messages: u64,
    #[arg(long, default_value_t = 100)]
    pub(crate) drain_rooms: usize,
}

#[derive(Args, Debug, Clone)]
pub(crate) struct IdleArgs {
    #[arg(long, default_value_t = 20_000)]
    pub(crate) sockets: usize,
}

#[derive(Args, Debug, Clone)]
pub(crate) struct AllArgs {
    #[command(flatten)]
    pub(crate) ceiling: CeilingArgs,
    #[command(flatten)]
    pub(crate) drain: DrainArgs,
    #[command(flatten)]
    pub(crate) idle: IdleArgs,
    #[command(flatten)]
    pub(crate) members: MembersArgs,
    #[command(flatten)]
    pub(crate) reactions: ReactionsArgs,
    /// Members of the fan-out room.
    #[arg(long, default_value_t = 5000)]
    pub(crate) fanout_members: usize,
    #[arg(long, default_value_t = 4)]
    pub(crate) fanout_senders: usize,
    #[arg(long, default_value_t = 10.0)]
    pub(crate) fanout_start_rate: f64,
}
