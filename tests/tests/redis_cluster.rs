//! History on a 3-master Redis Cluster (`DYSCHAT_REDIS_CLUSTER_NODES`): sends and pages,
//! edits, reactions and deletions, unread counts, the retried-send index, a room's deletion, a
//! corrupt room key set aside and the writer's rebuild, with rooms on every master; and a master killed while messages are
//! sent: acknowledged sends keep being acknowledged, pages stay whole (read from the stream),
//! and once the master is back every acknowledged message is in Redis; and a master failed over
//! to its replica: the services follow the promotion and carry on.
//!
//! The API answers from the stream whatever Redis lacks, so every check that the cluster really
//! holds the history reads the cluster itself, with the same `dyschat_runtime::history` reads
//! the agents make (batches split per slot included).

use std::time::Duration;

use anyhow::{ensure, Context};
use dyschat_protocol::layout::{self, history};
use dyschat_runtime::history as reads;
use dyschat_runtime::redis_conn::RedisConn;
use dyschat_tests::client::{expect, Api, LoggedIn, WsClient};
use dyschat_tests::mesh::Mesh;
use dyschat_tests::redis_cluster::RedisCluster;
use dyschat_tests::try_wait_until;
use serde_json::{json, Value};

/// How long a test waits for the writer or the cluster to get somewhere.
const WAIT: Duration = Duration::from_secs(30);

/// The marker and high-water keys of the one (unpartitioned) message stream these tests run on.
fn one_stream() -> history::MetaKeys {
    history::meta_keys(dyschat_protocol::streams::MessageStreams::default(), 0)
}

const MASTERS: usize = 3;

async fn conn(mesh: &Mesh) -> anyhow::Result<RedisConn> {
    let cluster = mesh.redis_cluster.as_ref().context("a cluster mesh")?;
    Ok(RedisConn::Cluster(cluster.connection().await?))
}

/// Which master (by its slot range, as [`RedisCluster::start`] splits them) holds a room.
async fn master_of(conn: &mut RedisConn, room: &str) -> anyhow::Result<usize> {
    let slot: u32 = redis::cmd("CLUSTER")
        .arg("KEYSLOT")
        .arg(history::key(room))
        .query_async(conn)
        .await?;
    Ok(((slot / (16_384 / MASTERS as u32)) as usize).min(MASTERS - 1))
}

/// Creates rooms until there is one on every master; returns them in master order.
async fn rooms_on_every_master(
    api: &Api,
    user: &LoggedIn,
    conn: &mut RedisConn,
) -> anyhow::Result<Vec<String>> {
    let mut rooms: Vec<Option<String>> = vec![None; MASTERS];
    for n in 0..60 {
        let room = api.create_room(&user.token, &format!("spread {n}")).await?;
        let master = master_of(conn, &room).await?;
        if rooms[master].is_none() {
            rooms[master] = Some(room);
        }
        if rooms.iter().all(Option::is_some) {
            return Ok(rooms.into_iter().flatten().collect());
        }
    }
    anyhow::bail!("60 rooms and still a master without one: {rooms:?}")
}

async fn send(ws: &mut WsClient, room: &str, body: &str, id: &str) -> anyhow::Result<Value> {
    ws.send(json!({"type": "send", "room_id": room, "body": body, "client_msg_id": id}))
        .await?;
    let ack = ws.recv_type("ack").await?;
    ensure!(ack["seq"].is_u64(), "{ack}");
    Ok(ack)
}

/// How many entries the room's history sorted set holds on the cluster.
async fn stored(conn: &mut RedisConn, room: &str) -> anyhow::Result<u64> {
    Ok(redis::cmd("ZCARD")
        .arg(history::key(room))
        .query_async(conn)
        .await?)
}

/// The stored state at `seq` in the cluster's history of `room`.
async fn entry(conn: &mut RedisConn, room: &str, seq: u64) -> anyhow::Result<Option<Value>> {
    let members: Vec<Vec<u8>> = redis::cmd("ZRANGEBYSCORE")
        .arg(history::key(room))
        .arg(seq)
        .arg(seq)
        .query_async(conn)
        .await?;
    Ok(match members.first() {
        Some(m) => Some(serde_json::from_slice(m)?),
        None => None,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn history_works_on_a_redis_cluster() -> anyhow::Result<()> {
    let cluster = RedisCluster::start(MASTERS, 0).await?;
    let mut mesh = Mesh::start_on_redis_cluster(cluster, 2, Vec::new()).await?;
    let mut conn = conn(&mesh).await?;
    let api = Api::new(mesh.agent(0).http());
    let api1 = Api::new(mesh.agent(1).http());
    let alice = api.register_and_login("c_alice").await?;
    let bob = api.register_and_login("c_bob").await?;
    let rooms = rooms_on_every_master(&api, &alice, &mut conn).await?;
    for room in &rooms {
        let (status, body) = api1.join_room(&bob.token, room).await?;
        ensure!(status == 200, "{status} {body}");
    }
    let mut ws = WsClient::connect(&mesh.agent(0).ws(), &alice.token).await?;
    let mut acks = Vec::new();
    for (r, room) in rooms.iter().enumerate() {
        for n in 0..5 {
            acks.push(send(&mut ws, room, &format!("{r}/{n}"), &format!("{r}-{n}")).await?);
        }
    }

    // Sends and pages: every room's history is on its own master, in order.
    for (r, room) in rooms.iter().enumerate() {
        try_wait_until(WAIT, "the room stored on the cluster", || {
            let (mut conn, room) = (conn.clone(), room.clone());
            async move { Ok(stored(&mut conn, &room).await? == 5) }
        })
        .await?;
        let bodies: Vec<Value> = api1
            .all_messages(&bob.token, room)
            .await?
            .into_iter()
            .map(|m| m["body"].clone())
            .collect();
        let want: Vec<Value> = (0..5).map(|n| json!(format!("{r}/{n}"))).collect();
        ensure!(bodies == want, "room {r}: {bodies:?}");
        let page = reads::page(&mut conn, room, reads::PageQuery::Before(None), 3).await?;
        ensure!(
            page.messages.len() == 3 && page.has_more,
            "room {r}: a page read from the cluster {page:?}"
        );
        // The store's state (three slots: the marker, the room's flag, the high water).
        let state = reads::state(&mut conn, room, &one_stream()).await?;
        ensure!(state.complete, "room {r}: {state:?}");
    }
    let last = acks.last().and_then(|a| a["seq"].as_u64()).context("seq")?;
    try_wait_until(WAIT, "the high water", || {
        let mut conn = conn.clone();
        async move { Ok(reads::high_water(&mut conn, &one_stream()).await? >= last) }
    })
    .await?;

    // Unread counts (three ZCOUNTs on the room's slot), over the API and read directly.
    let room = &rooms[0];
    let body = expect(&api1, &bob, "GET", "/api/v1/me/rooms", None, 200).await?;
    let summary = body["rooms"]
        .as_array()
        .context("rooms")?
        .iter()
        .find(|s| s["room_id"] == room.as_str())
        .cloned()
        .context("the room in me/rooms")?;
    ensure!(summary["unread"] == 5, "{summary}");
    let (all, own, _) = reads::counts(&mut conn, room, &alice.user_id, 0, last).await?;
    ensure!((all, own) == (5, 5), "{all} {own}");

    // The retried-send index (its days on the room's slot, the state on three others).
    let first = &acks[0];
    let seq = first["seq"].as_u64().context("seq")?;
    let day = history::day_of(chrono::Utc::now().timestamp_millis());
    let field = history::dedupe_field(&alice.user_id, "0-0");
    let (found, state) =
        reads::dedupe_lookup(&mut conn, room, &one_stream(), &field, &[day - 1, day]).await?;
    ensure!(found == Some(seq) && state.complete, "{found:?} {state:?}");
    let retry = send(&mut ws, room, "0/0", "0-0").await?;
    ensure!(
        retry["duplicate"] == true && retry["seq"] == first["seq"],
        "{retry}"
    );

    // An edit, a reaction and a deletion land in the cluster's entry at their seq.
    let path = |seq: u64| format!("/api/v1/rooms/{room}/messages/{seq}");
    let seq_of = |i: usize| acks[i]["seq"].as_u64().context("seq");
    let (edited, reacted, deleted) = (seq, seq_of(1)?, seq_of(2)?);
    let answer = expect(
        &api,
        &alice,
        "PATCH",
        &path(edited),
        Some(json!({"body": "edited"})),
        200,
    )
    .await?;
    ensure!(answer["body"] == "edited", "{answer}");
    let thumbs = "%F0%9F%91%8D";
    expect(
        &api1,
        &bob,
        "PUT",
        &format!("{}/reactions/{thumbs}", path(reacted)),
        None,
        200,
    )
    .await?;
    expect(&api, &alice, "DELETE", &path(deleted), None, 200).await?;
    try_wait_until(WAIT, "the changes stored on the cluster", || {
        let (mut conn, room) = (conn.clone(), room.clone());
        async move {
            let e = entry(&mut conn, &room, edited).await?;
            let r = entry(&mut conn, &room, reacted).await?;
            let d = entry(&mut conn, &room, deleted).await?;
            Ok(e.is_some_and(|e| e["body"] == "edited")
                && r.is_some_and(|r| r["reactions"].as_array().is_some_and(|a| a.len() == 1))
                && d.is_some_and(|d| d["deleted"] == true && d["body"] == ""))
        }
    })
    .await?;
    let page = api1.all_messages(&bob.token, room).await?;
    ensure!(
        page[0]["body"] == "edited" && page[2]["deleted"] == true,
        "{page:?}"
    );

    // A room's deletion removes its keys from its master.
    let gone = &rooms[1];
    expect(
        &api,
        &alice,
        "DELETE",
        &format!("/api/v1/rooms/{gone}"),
        None,
        200,
    )
    .await?;
    try_wait_until(WAIT, "the deleted room's keys gone", || {
        let (mut conn, gone) = (conn.clone(), gone.clone());
        let alice = alice.user_id.clone();
        async move {
            let mut exists = redis::cmd("EXISTS");
            exists
                .arg(history::key(&gone))
                .arg(history::sent_key(&gone, &alice))
                .arg(history::dedupe_key(&gone, day));
            let left: u64 = exists.query_async(&mut conn).await?;
            let marked: bool = redis::cmd("EXISTS")
                .arg(history::deleted_key(&gone))
                .query_async(&mut conn)
                .await?;
            Ok(left == 0 && marked)
        }
    })
    .await?;

    // A room key of the wrong type is set aside (RENAME within the room's slot) and the room
    // rebuilt from the stream.
    let bad = &rooms[2];
    let _: () = redis::cmd("SET")
        .arg(history::key(bad))
        .arg("not a sorted set")
        .query_async(&mut conn)
        .await?;
    send(&mut ws, bad, "after the damage", "bad-1").await?;
    try_wait_until(WAIT, "the room set aside and rebuilt", || {
        let (mut conn, bad) = (conn.clone(), bad.clone());
        async move {
            let flagged: bool = redis::cmd("EXISTS")
                .arg(history::room_rebuilding_key(&bad))
                .query_async(&mut conn)
                .await?;
            let kind: String = redis::cmd("TYPE")
                .arg(history::key(&bad))
                .query_async(&mut conn)
                .await?;
            Ok(!flagged && kind == "zset" && stored(&mut conn, &bad).await? == 6)
        }
    })
    .await?;
    let aside: Vec<String> = redis::cmd("KEYS")
        .arg(history::corrupt_pattern(bad))
        .query_async(&mut conn)
        .await?;
    ensure!(aside.len() == 1, "{aside:?}");

    // The writer's rebuild: every master emptied, the history comes back from the stream.
    let _: () = redis::cmd("FLUSHALL").query_async(&mut conn).await?;
    ensure!(stored(&mut conn, &rooms[2]).await? == 0);
    try_wait_until(WAIT, "the rebuild", || {
        let mut conn = conn.clone();
        let rooms = rooms.clone();
        async move {
            let marker: Option<String> = redis::cmd("GET")
                .arg(history::MARKER_KEY)
                .query_async(&mut conn)
                .await?;
            Ok(marker.as_deref() == Some(history::MARKER_COMPLETE)
                && stored(&mut conn, &rooms[0]).await? == 5
                && stored(&mut conn, &rooms[2]).await? == 6)
        }
    })
    .await?;
    ensure!(
        stored(&mut conn, gone).await? == 0,
        "a deleted room rebuilt"
    );
    let e = entry(&mut conn, room, edited).await?.context("rebuilt")?;
    ensure!(e["body"] == "edited", "{e}");
    mesh.stop_all().await
}

/// Three messages into each of `rooms`, then waits until Redis holds them; returns how many
/// were sent (the next `client_msg_id` number).
async fn send_three_each_and_wait_stored(
    ws: &mut WsClient,
    rooms: &[String],
    conn: &RedisConn,
) -> anyhow::Result<usize> {
    let mut sent = 0;
    for room in rooms {
        for n in 0..3 {
            send(ws, room, &format!("before {n}"), &format!("b{sent}")).await?;
            sent += 1;
        }
    }
    for room in rooms {
        try_wait_until(WAIT, "three messages of each room stored", || {
            let (mut conn, room) = (conn.clone(), room.clone());
            async move { Ok(stored(&mut conn, &room).await? == 3) }
        })
        .await?;
    }
    Ok(sent)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_killed_master_loses_no_acknowledged_message() -> anyhow::Result<()> {
    let cluster = RedisCluster::start(MASTERS, 0).await?;
    let mut mesh = Mesh::start_on_redis_cluster(cluster, 1, Vec::new()).await?;
    let mut conn = conn(&mesh).await?;
    let api = Api::new(mesh.agent(0).http());
    let alice = api.register_and_login("k_alice").await?;
    let rooms = rooms_on_every_master(&api, &alice, &mut conn).await?;
    let mut ws = WsClient::connect(&mesh.agent(0).ws(), &alice.token).await?;
    let mut sent = send_three_each_and_wait_stored(&mut ws, &rooms, &conn).await?;

    // The master of rooms[0] dies: its slots have no master, the cluster says it failed.
    let cluster = mesh.redis_cluster.as_mut().context("cluster")?;
    cluster.nodes[0].kill();
    cluster.wait_failed().await?;
    for room in &rooms {
        for n in 0..4 {
            send(&mut ws, room, &format!("during {n}"), &format!("d{sent}")).await?;
            sent += 1;
        }
    }
    // Pages stay whole: what Redis cannot answer is read from the stream.
    for room in &rooms {
        let all = api.all_messages(&alice.token, room).await?;
        ensure!(
            all.len() == 7,
            "{} messages while a master is down",
            all.len()
        );
    }

    // Back (same data directory: its append-only file and nodes.conf): the writer's retries
    // land, nothing acknowledged is missing from Redis.
    let cluster = mesh.redis_cluster.as_mut().context("cluster")?;
    cluster.nodes[0].start_again().await?;
    cluster.wait_ok().await?;
    for room in &rooms {
        try_wait_until(WAIT, "every acknowledged message in Redis", || {
            let (mut conn, room) = (conn.clone(), room.clone());
            async move { Ok(stored(&mut conn, &room).await? == 7) }
        })
        .await?;
        let state = reads::state(&mut conn, room, &one_stream()).await?;
        ensure!(state.complete, "{state:?}");
    }
    let dead = async_nats::jetstream::new(mesh.client().await?)
        .get_stream(layout::DEAD_LETTER_STREAM)
        .await?
        .get_info()
        .await?
        .state
        .messages;
    ensure!(dead == 0, "{dead} messages dead-lettered");
    mesh.stop_all().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_master_failed_over_to_its_replica_is_followed() -> anyhow::Result<()> {
    let cluster = RedisCluster::start(MASTERS, 1).await?;
    let mut mesh = Mesh::start_on_redis_cluster(cluster, 1, Vec::new()).await?;
    let mut conn = conn(&mesh).await?;
    let api = Api::new(mesh.agent(0).http());
    let alice = api.register_and_login("f_alice").await?;
    let rooms = rooms_on_every_master(&api, &alice, &mut conn).await?;
    let mut ws = WsClient::connect(&mesh.agent(0).ws(), &alice.token).await?;
    let mut sent = send_three_each_and_wait_stored(&mut ws, &rooms, &conn).await?;
    // Replication is asynchronous (see docs/ARCHITECTURE.md, "Redis Cluster"): this test is
    // about following the promotion, so the replica is let catch up before the kill.
    let cluster = mesh.redis_cluster.as_mut().context("cluster")?;
    let master = cluster.node_connection(0).await?;
    try_wait_until(WAIT, "the replica of master 0 in sync", || {
        let mut master = master.clone();
        async move {
            // Each WAIT well inside the client's own response timeout.
            let synced: u64 = redis::cmd("WAIT")
                .arg(1)
                .arg(200)
                .query_async(&mut master)
                .await?;
            Ok(synced == 1)
        }
    })
    .await?;
    cluster.nodes[0].kill();
    cluster.wait_ok_except(&[0]).await?;
    for room in &rooms {
        for n in 0..4 {
            send(&mut ws, room, &format!("after {n}"), &format!("a{sent}")).await?;
            sent += 1;
        }
    }
    for room in &rooms {
        try_wait_until(WAIT, "stored after the failover", || {
            let (mut conn, room) = (conn.clone(), room.clone());
            async move { Ok(stored(&mut conn, &room).await? == 7) }
        })
        .await?;
        let bodies = api.all_messages(&alice.token, room).await?;
        ensure!(bodies.len() == 7, "{bodies:?}");
        let state = reads::state(&mut conn, room, &one_stream()).await?;
        ensure!(state.complete, "{state:?}");
    }
    mesh.stop_all().await
}
