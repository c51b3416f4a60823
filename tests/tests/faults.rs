//! Faults under load, with the real binaries as processes. Each test ends with the exact
//! comparison of [`Report::verify`]: acked == history == what every receiver got, each once.

use std::time::{Duration, Instant};

use anyhow::ensure;
use dyschat_tests::client::{Api, LoggedIn};
use dyschat_tests::load::{run_receiver, run_sender, Report};
use dyschat_tests::procs::{mesh_env, ProcMesh};
use dyschat_tests::{NatsServer, RedisServer};

/// The users, room and load of one fault test.
struct Load {
    api: Api,
    senders: Vec<LoggedIn>,
    receivers: Vec<LoggedIn>,
    room: String,
}

async fn prepare(mesh: &ProcMesh, senders: usize, receivers: usize) -> anyhow::Result<Load> {
    let api = Api::new(mesh.http(0));
    let owner = api.register_and_login("owner").await?;
    let room = api.create_room(&owner.token, "load").await?;
    let mut users = Vec::new();
    for i in 0..senders + receivers {
        let user = api.register_and_login(&format!("load{i}")).await?;
        let (status, _) = api.join_room(&user.token, &room).await?;
        ensure!(status == 200);
        users.push(user);
    }
    let receivers = users.split_off(senders);
    Ok(Load {
        api,
        senders: users,
        receivers,
        room,
    })
}

type Tasks = (
    Vec<tokio::task::JoinHandle<anyhow::Result<dyschat_tests::load::SenderReport>>>,
    Vec<tokio::task::JoinHandle<anyhow::Result<dyschat_tests::load::ReceiverReport>>>,
);

/// Starts the receivers, then the senders (`per_sender` messages each), spread over the agents
/// or all on the first.
fn start_load(
    load: &Load,
    urls: &[String],
    spread: bool,
    per_sender: usize,
    pace: Duration,
    deadline: Instant,
) -> Tasks {
    let total = per_sender * load.senders.len();
    // Client i starts on agent i (mod n) when spread, else everyone on the first.
    let order = |i: usize| {
        let mut urls = urls.to_vec();
        if spread {
            let n = urls.len();
            urls.rotate_left(i % n);
        }
        urls
    };
    let receivers = load
        .receivers
        .iter()
        .enumerate()
        .map(|(i, u)| {
            tokio::spawn(run_receiver(
                u.clone(),
                order(i),
                load.room.clone(),
                total,
                deadline,
            ))
        })
        .collect();
    let senders = load
        .senders
        .iter()
        .enumerate()
        .map(|(i, u)| {
            tokio::spawn(run_sender(
                u.clone(),
                order(i),
                load.room.clone(),
                per_sender,
                pace,
                deadline,
            ))
        })
        .collect();
    (senders, receivers)
}

/// The fault must hit a running load, or the test proves nothing.
fn ensure_running(tasks: &Tasks) -> anyhow::Result<()> {
    ensure!(
        tasks.0.iter().any(|t| !t.is_finished()),
        "the load ended before the fault"
    );
    Ok(())
}

/// Waits for the load, then for history to hold every acked message, and checks everything.
async fn finish(load: &Load, tasks: Tasks) -> anyhow::Result<Report> {
    let mut senders = Vec::new();
    for t in tasks.0 {
        senders.push(t.await??);
    }
    let mut receivers = Vec::new();
    for t in tasks.1 {
        receivers.push(t.await??);
    }
    let expected: usize = senders.iter().map(|s| s.acked.len()).sum();
    let token = &load.receivers[0].token;
    let history = load
        .api
        .history_seqs(token, &load.room, expected, Duration::from_secs(60))
        .await?;
    Report::verified(senders, receivers, history)
}

struct Servers {
    nats: NatsServer,
    redis: RedisServer,
}

async fn servers() -> anyhow::Result<Servers> {
    Ok(Servers {
        nats: NatsServer::start().await?,
        redis: RedisServer::start().await?,
    })
}

fn deadline() -> Instant {
    Instant::now() + Duration::from_secs(240)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn msg_writer_killed_repeatedly_during_20000_messages() -> anyhow::Result<()> {
    let s = servers().await?;
    let env = mesh_env(&s.nats.url(), &s.redis.addr(), &[]);
    let mut mesh = ProcMesh::start(env, 1, 2).await?;
    let load = prepare(&mesh, 4, 2).await?;
    // 4 senders at 1,000 messages per second each: about 5 s of load.
    let tasks = start_load(
        &load,
        &mesh.ws_urls(),
        true,
        5000,
        Duration::from_millis(1),
        deadline(),
    );
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_millis(1000)).await;
        ensure_running(&tasks)?;
        mesh.writers[0].kill9();
        tokio::time::sleep(Duration::from_millis(300)).await;
        mesh.writers[0].restart()?;
    }
    let report = finish(&load, tasks).await?;
    ensure!(report.acked().len() == 20_000);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nats_server_restarted_mid_load() -> anyhow::Result<()> {
    let mut s = servers().await?;
    let env = mesh_env(&s.nats.url(), &s.redis.addr(), &[]);
    let mesh = ProcMesh::start(env, 1, 2).await?;
    let load = prepare(&mesh, 3, 2).await?;
    let tasks = start_load(
        &load,
        &mesh.ws_urls(),
        true,
        2000,
        Duration::from_millis(2),
        deadline(),
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    ensure_running(&tasks)?;
    s.nats.restart().await?;
    let report = finish(&load, tasks).await?;
    ensure!(report.acked().len() == 6000);
    drop(mesh);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ws_agent_killed_clients_move_to_the_other() -> anyhow::Result<()> {
    let s = servers().await?;
    let env = mesh_env(&s.nats.url(), &s.redis.addr(), &[]);
    let mut mesh = ProcMesh::start(env, 1, 2).await?;
    let load = prepare(&mesh, 2, 2).await?;
    // Everyone starts on agent 1, then agent 1 dies; agent 0 serves the rest.
    let mut urls = mesh.ws_urls();
    urls.rotate_left(1);
    let tasks = start_load(
        &load,
        &urls,
        false,
        3000,
        Duration::from_millis(2),
        deadline(),
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    ensure_running(&tasks)?;
    mesh.agents[1].0.kill9();
    let report = finish(&load, tasks).await?;
    ensure!(report.acked().len() == 6000);
    ensure!(
        report.receivers.iter().all(|r| r.rejoins > 0),
        "receivers never moved"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_of_each_service_under_load_drains_and_exits_0() -> anyhow::Result<()> {
    let s = servers().await?;
    let env = mesh_env(&s.nats.url(), &s.redis.addr(), &[]);
    let mut mesh = ProcMesh::start(env, 2, 2).await?;
    let load = prepare(&mesh, 2, 2).await?;
    let tasks = start_load(
        &load,
        &mesh.ws_urls(),
        true,
        3000,
        Duration::from_millis(3),
        deadline(),
    );
    tokio::time::sleep(Duration::from_millis(1000)).await;
    ensure_running(&tasks)?;
    let status = mesh.writers[0].terminate(Duration::from_secs(15)).await?;
    ensure!(status.code() == Some(0), "msg-writer exited {status}");
    mesh.writers[0].restart()?;
    let status = mesh.agents[1].0.terminate(Duration::from_secs(15)).await?;
    ensure!(status.code() == Some(0), "ws-agent exited {status}");
    let status = mesh.auth.terminate(Duration::from_secs(15)).await?;
    ensure!(status.code() == Some(0), "auth exited {status}");
    mesh.auth.restart()?;
    ensure_running(&tasks)?;
    let status = mesh.rooms.terminate(Duration::from_secs(15)).await?;
    ensure!(status.code() == Some(0), "rooms exited {status}");
    mesh.rooms.restart()?;
    let report = finish(&load, tasks).await?;
    ensure!(report.acked().len() == 6000);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stream_leader_killed_in_a_three_node_cluster() -> anyhow::Result<()> {
    let mut cluster = dyschat_tests::cluster::NatsCluster::start().await?;
    let redis = RedisServer::start().await?;
    let env = mesh_env(
        &cluster.urls(),
        &redis.addr(),
        &[("DYSCHAT_STREAM_REPLICAS", "3")],
    );
    let mesh = ProcMesh::start(env, 1, 2).await?;
    let load = prepare(&mesh, 2, 2).await?;
    let leader = cluster.leader_of("DYSCHAT_MESSAGES").await?;
    let tasks = start_load(
        &load,
        &mesh.ws_urls(),
        true,
        3000,
        Duration::from_millis(2),
        deadline(),
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    ensure_running(&tasks)?;
    cluster.nodes[leader].kill();
    let report = finish(&load, tasks).await?;
    ensure!(report.acked().len() == 6000);
    let new_leader = cluster.leader_of("DYSCHAT_MESSAGES").await?;
    ensure!(new_leader != leader, "leadership did not move");
    println!(
        "stream leader n{} killed; n{} took over",
        leader + 1,
        new_leader + 1
    );
    Ok(())
}

/// Which server a stall test freezes.
#[derive(Clone, Copy)]
enum Stalled {
    Nats,
    Redis,
}

impl Stalled {
    /// Stalls (`paused`) or lets go of the server.
    fn set(self, s: &Servers, paused: bool) -> anyhow::Result<()> {
        match (self, paused) {
            (Stalled::Nats, true) => s.nats.pause(),
            (Stalled::Nats, false) => s.nats.resume(),
            (Stalled::Redis, true) => s.redis.pause(),
            (Stalled::Redis, false) => s.redis.resume(),
        }
    }
}

/// 3 senders × 2,000 messages at `pace` over two agents; 1.5 s in, `which` server is stalled
/// (SIGSTOP) for `stall`, then let go; afterwards acked == history == what every receiver got.
async fn stalled_mid_load(
    which: Stalled,
    stall: Duration,
    pace: Duration,
    extra: &[(&str, &str)],
) -> anyhow::Result<()> {
    let s = servers().await?;
    let env = mesh_env(&s.nats.url(), &s.redis.addr(), extra);
    let mesh = ProcMesh::start(env, 1, 2).await?;
    let load = prepare(&mesh, 3, 2).await?;
    let tasks = start_load(&load, &mesh.ws_urls(), true, 2000, pace, deadline());
    tokio::time::sleep(Duration::from_millis(1500)).await;
    ensure_running(&tasks)?;
    which.set(&s, true)?;
    tokio::time::sleep(stall).await;
    which.set(&s, false)?;
    let report = finish(&load, tasks).await?;
    ensure!(report.acked().len() == 6000);
    drop(mesh);
    Ok(())
}

/// nats-server stalled (SIGSTOP) for 4 s mid-load, its connections open and silent: publishes
/// time out and are retried with their ids, live delivery stops and resumes, and afterwards
/// acked == history == what every receiver got.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nats_server_stalled_mid_load() -> anyhow::Result<()> {
    stalled_mid_load(
        Stalled::Nats,
        Duration::from_secs(4),
        Duration::from_millis(2),
        &[],
    )
    .await
}

/// redis-server stalled (SIGSTOP) for 7 s mid-load, longer than a Redis command may take: sends
/// and live delivery go on (they never wait on history), the writer retries until Redis answers,
/// and afterwards history holds every acked message exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_stalled_mid_load() -> anyhow::Result<()> {
    stalled_mid_load(
        Stalled::Redis,
        Duration::from_secs(7),
        Duration::from_millis(3),
        &[("DYSCHAT_REDIS_TIMEOUT_MS", "1000")],
    )
    .await
}
