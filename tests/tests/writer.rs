//! msg-writer under trouble: a Redis that refuses writes (out of memory, read-only, no permission), a corrupt
//! room key, poison payloads, and a Redis that lost its data (flushed, restored from an old AOF).

use std::time::Duration;

use anyhow::ensure;
use dyschat_protocol::layout::history;
use dyschat_tests::client::{Api, WsClient};
use dyschat_tests::mesh::Mesh;
use dyschat_tests::try_wait_until;
use serde_json::json;

/// How long a test waits for the writer or the cluster to get somewhere.
const WAIT: Duration = Duration::from_secs(30);

async fn redis(mesh: &Mesh) -> anyhow::Result<redis::aio::MultiplexedConnection> {
    let client = redis::Client::open(format!("redis://{}/", mesh.redis.addr()))?;
    Ok(client.get_multiplexed_async_connection().await?)
}

/// Sends `count` messages into `rooms` (round robin) over one socket and waits for every ack.
async fn send_acked(ws: &mut WsClient, rooms: &[&str], count: usize) -> anyhow::Result<()> {
    for n in 0..count {
        let room = rooms[n % rooms.len()];
        ws.send(json!({"type": "send", "room_id": room, "body": format!("m{n}")}))
            .await?;
        ws.recv_type("ack").await?;
    }
    Ok(())
}

async fn dead_letters(mesh: &Mesh) -> anyhow::Result<u64> {
    let js = async_nats::jetstream::new(async_nats::connect(mesh.nats.url()).await?);
    let dead = js.get_stream("DYSCHAT_DEADLETTER").await?;
    Ok(dead.get_info().await?.state.messages)
}

/// How many messages of `room` Redis itself holds (not what the API answers, which reads what
/// Redis lacks from the stream).
async fn stored(conn: &redis::aio::MultiplexedConnection, room: &str) -> anyhow::Result<u64> {
    let mut conn = conn.clone();
    Ok(redis::cmd("ZCARD")
        .arg(history::key(room))
        .query_async(&mut conn)
        .await?)
}

/// Waits until Redis holds `count` messages of `room` once it accepts writes again, and prints
/// how long that took after `fault` ended.
async fn caught_up(
    conn: &redis::aio::MultiplexedConnection,
    room: &str,
    count: u64,
    fault: &str,
) -> anyhow::Result<()> {
    let recovered = std::time::Instant::now();
    try_wait_until(
        WAIT,
        &format!("all {count} stored after {fault}"),
        || async { Ok(stored(conn, room).await? == count) },
    )
    .await?;
    println!(
        "{fault}: all in Redis {:?} after it accepted writes again",
        recovered.elapsed()
    );
    Ok(())
}

/// The consumer holds nothing back: every message delivered and acknowledged.
async fn writer_settled(mesh: &Mesh) -> anyhow::Result<()> {
    let js = async_nats::jetstream::new(async_nats::connect(mesh.nats.url()).await?);
    let stream = js.get_stream("DYSCHAT_MESSAGES").await?;
    try_wait_until(WAIT, "consumer settled", || {
        let stream = stream.clone();
        async move {
            let info = stream.consumer_info("msg-writer").await?;
            Ok(info.num_pending == 0 && info.num_ack_pending == 0)
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_corrupt_room_key_is_set_aside_and_the_room_rebuilt() -> anyhow::Result<()> {
    let mesh = Mesh::start(1).await?;
    let api = Api::new(mesh.agent(0).http());
    let user = api.register_and_login("poisoner").await?;
    let bad_room = api.create_room(&user.token, "poisoned").await?;
    let good_room = api.create_room(&user.token, "healthy").await?;
    let mut ws = WsClient::connect(&mesh.agent(0).ws(), &user.token).await?;
    // Two messages stored normally first: the rebuild must bring them back too.
    send_acked(&mut ws, &[&bad_room], 2).await?;
    try_wait_until(WAIT, "first messages stored", || async {
        Ok(api.all_messages(&user.token, &bad_room).await?.len() == 2)
    })
    .await?;
    // Something overwrites the room's key with a value that is not a history: every ZADD for
    // the room now fails with WRONGTYPE.
    let mut conn = redis(&mesh).await?;
    let key = history::key(&bad_room);
    let _: () = redis::cmd("SET")
        .arg(&key)
        .arg("not a sorted set")
        .query_async(&mut conn)
        .await?;
    let rooms = [&bad_room[..], &good_room, &good_room, &good_room];
    send_acked(&mut ws, &rooms, 20).await?;
    // Nothing acknowledged is lost: both rooms end complete, nothing was set aside as poison.
    try_wait_until(WAIT, "both histories complete", || async {
        Ok(api.all_messages(&user.token, &good_room).await?.len() == 15
            && api.all_messages(&user.token, &bad_room).await?.len() == 7)
    })
    .await?;
    ensure!(
        dead_letters(&mesh).await? == 0,
        "valid messages dead-lettered"
    );
    // The corrupt value was kept aside for an operator, and the room's flag is cleared.
    let aside: Vec<String> = redis::cmd("KEYS")
        .arg(history::corrupt_pattern(&bad_room))
        .query_async(&mut conn)
        .await?;
    ensure!(aside.len() == 1, "corrupt key not kept: {aside:?}");
    let value: String = redis::cmd("GET")
        .arg(&aside[0])
        .query_async(&mut conn)
        .await?;
    ensure!(value == "not a sorted set");
    try_wait_until(WAIT, "room flag cleared", || {
        let mut conn = conn.clone();
        let flag = history::room_rebuilding_key(&bad_room);
        async move {
            let exists: bool = redis::cmd("EXISTS")
                .arg(flag)
                .query_async(&mut conn)
                .await?;
            Ok(!exists)
        }
    })
    .await?;
    writer_settled(&mesh).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_payload_that_is_no_message_is_dead_lettered_without_blocking_the_rest(
) -> anyhow::Result<()> {
    let mesh = Mesh::start(1).await?;
    let api = Api::new(mesh.agent(0).http());
    let user = api.register_and_login("poisoner").await?;
    let room = api.create_room(&user.token, "target").await?;
    let js = async_nats::jetstream::new(async_nats::connect(mesh.nats.url()).await?);
    js.publish(format!("dyschat.msg.room.{room}"), "not a message".into())
        .await?
        .await?;
    let mut ws = WsClient::connect(&mesh.agent(0).ws(), &user.token).await?;
    send_acked(&mut ws, &[&room], 10).await?;
    try_wait_until(WAIT, "history", || async {
        Ok(api.all_messages(&user.token, &room).await?.len() == 10)
    })
    .await?;
    try_wait_until(WAIT, "one dead letter", || async {
        Ok(dead_letters(&mesh).await? == 1)
    })
    .await?;
    let dead = js.get_stream("DYSCHAT_DEADLETTER").await?;
    let first = dead.get_info().await?.state.first_sequence;
    let letter: serde_json::Value =
        serde_json::from_slice(&dead.get_raw_message(first).await?.payload)?;
    ensure!(
        letter["reason"]
            .as_str()
            .is_some_and(|r| r.contains("not a stored message")),
        "{letter}"
    );
    writer_settled(&mesh).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_redis_out_of_memory_or_refusing_writes_loses_nothing() -> anyhow::Result<()> {
    let mesh = Mesh::start(1).await?;
    let api = Api::new(mesh.agent(0).http());
    let user = api.register_and_login("oom").await?;
    let room = api.create_room(&user.token, "full").await?;
    let mut ws = WsClient::connect(&mesh.agent(0).ws(), &user.token).await?;
    let mut conn = redis(&mesh).await?;

    // Out of memory (noeviction): every write is refused with OOM.
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory-policy")
        .arg("noeviction")
        .query_async(&mut conn)
        .await?;
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory")
        .arg("1mb")
        .query_async(&mut conn)
        .await?;
    let refused: redis::RedisResult<()> = redis::cmd("SET")
        .arg("probe")
        .arg("x".repeat(1024))
        .query_async(&mut conn)
        .await;
    ensure!(refused.is_err(), "Redis still accepts writes at 1mb");
    send_acked(&mut ws, &[&room], 20).await?;
    tokio::time::sleep(Duration::from_secs(10)).await;
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory")
        .arg("0")
        .query_async(&mut conn)
        .await?;
    ensure!(
        stored(&conn, &room).await? == 0,
        "stored while out of memory"
    );
    ensure!(
        api.all_messages(&user.token, &room).await?.len() == 20,
        "history hides messages"
    );
    caught_up(&conn, &room, 20, "out of memory 10 s, 20 acked").await?;

    // The writer loses its write permission (NOPERM) for a while.
    let _: () = redis::cmd("ACL")
        .arg("SETUSER")
        .arg("default")
        .arg("-@write")
        .query_async(&mut conn)
        .await?;
    send_acked(&mut ws, &[&room], 10).await?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let _: () = redis::cmd("ACL")
        .arg("SETUSER")
        .arg("default")
        .arg("+@all")
        .query_async(&mut conn)
        .await?;
    caught_up(&conn, &room, 30, "NOPERM 3 s, 10 acked").await?;
    ensure!(
        dead_letters(&mesh).await? == 0,
        "valid messages dead-lettered"
    );
    writer_settled(&mesh).await
}

/// Redis turned into a replica of an unreachable master (read-only: every write answers
/// READONLY) for 5 s: the acked messages wait in the stream, history is served whole meanwhile,
/// and Redis holds them all once it is writable again; nothing is dead-lettered.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_read_only_redis_loses_nothing() -> anyhow::Result<()> {
    let mesh = Mesh::start(1).await?;
    let api = Api::new(mesh.agent(0).http());
    let user = api.register_and_login("readonly").await?;
    let room = api.create_room(&user.token, "replica").await?;
    let mut ws = WsClient::connect(&mesh.agent(0).ws(), &user.token).await?;
    let mut conn = redis(&mesh).await?;
    let nowhere = dyschat_tests::free_port();
    let _: () = redis::cmd("REPLICAOF")
        .arg("127.0.0.1")
        .arg(nowhere)
        .query_async(&mut conn)
        .await?;
    let refused: redis::RedisResult<()> = redis::cmd("SET")
        .arg("probe")
        .arg("x")
        .query_async(&mut conn)
        .await;
    ensure!(refused.is_err(), "a replica accepted a write");
    send_acked(&mut ws, &[&room], 20).await?;
    tokio::time::sleep(Duration::from_secs(5)).await;
    ensure!(stored(&conn, &room).await? == 0, "stored while read-only");
    ensure!(
        api.all_messages(&user.token, &room).await?.len() == 20,
        "history hides what Redis lacks"
    );
    let _: () = redis::cmd("REPLICAOF")
        .arg("NO")
        .arg("ONE")
        .query_async(&mut conn)
        .await?;
    caught_up(&conn, &room, 20, "read-only 5 s, 20 acked").await?;
    ensure!(
        dead_letters(&mesh).await? == 0,
        "valid messages dead-lettered"
    );
    writer_settled(&mesh).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_redis_restored_from_an_old_aof_is_rebuilt() -> anyhow::Result<()> {
    let mut mesh = Mesh::start(1).await?;
    let api = Api::new(mesh.agent(0).http());
    let user = api.register_and_login("restorer").await?;
    let room = api.create_room(&user.token, "restored").await?;
    let mut ws = WsClient::connect(&mesh.agent(0).ws(), &user.token).await?;
    send_acked(&mut ws, &[&room], 30).await?;
    try_wait_until(WAIT, "first 30 stored", || async {
        Ok(api.all_messages(&user.token, &room).await?.len() == 30)
    })
    .await?;
    // A copy of Redis's files now (with the "complete" marker in it) ...
    let snapshot = tempfile::tempdir()?;
    copy_dir(&mesh.redis.data_dir(), snapshot.path())?;
    send_acked(&mut ws, &[&room], 30).await?;
    try_wait_until(WAIT, "60 stored", || async {
        Ok(api.all_messages(&user.token, &room).await?.len() == 60)
    })
    .await?;
    // ... is what Redis comes back with: the last 30 acked messages are gone from it.
    mesh.redis.stop().await;
    std::fs::remove_dir_all(mesh.redis.data_dir())?;
    copy_dir(snapshot.path(), &mesh.redis.data_dir())?;
    mesh.redis.start_again().await?;
    try_wait_until(WAIT, "history rebuilt to 60", || async {
        Ok(api
            .all_messages(&user.token, &room)
            .await
            .map_or(0, |m| m.len())
            == 60)
    })
    .await?;
    Ok(())
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), target)?;
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_emptied_redis_is_rebuilt_from_jetstream() -> anyhow::Result<()> {
    let mesh = Mesh::start(1).await?;
    let api = Api::new(mesh.agent(0).http());
    let user = api.register_and_login("rebuilder").await?;
    let rooms = [
        api.create_room(&user.token, "one").await?,
        api.create_room(&user.token, "two").await?,
    ];
    let ws = WsClient::connect(&mesh.agent(0).ws(), &user.token).await?;
    let (mut tx, mut rx) = ws.split();
    for n in 0..300 {
        tx.send(json!({"type": "send", "room_id": rooms[n % 2], "body": format!("m{n}")}))
            .await?;
    }
    let mut acks = 0;
    while acks < 300 {
        if rx.recv().await?["type"] == "ack" {
            acks += 1;
        }
    }
    let mut before = Vec::new();
    for room in &rooms {
        let room = room.clone();
        try_wait_until(WAIT, "history", || {
            let (api, token, room) = (api.clone(), user.token.clone(), room.clone());
            async move { Ok(api.all_messages(&token, &room).await?.len() == 150) }
        })
        .await?;
        before.push(api.all_messages(&user.token, &room).await?);
    }

    let mut conn = redis(&mesh).await?;
    let _: () = redis::cmd("FLUSHALL").query_async(&mut conn).await?;
    // Meanwhile history is whole: what Redis lost is read from the stream.
    for (room, expected) in rooms.iter().zip(&before) {
        let during = api.all_messages(&user.token, room).await?;
        ensure!(&during == expected, "history while Redis is empty differs");
    }

    for (room, expected) in rooms.iter().zip(&before) {
        try_wait_until(WAIT, "Redis rebuilt", || {
            let (mut conn, key) = (conn.clone(), history::key(room));
            async move {
                let held: u64 = redis::cmd("ZCARD").arg(&key).query_async(&mut conn).await?;
                let marker: Option<String> = redis::cmd("GET")
                    .arg(history::MARKER_KEY)
                    .query_async(&mut conn)
                    .await?;
                Ok(held == 150 && marker.as_deref() == Some(history::MARKER_COMPLETE))
            }
        })
        .await?;
        let after = api.all_messages(&user.token, room).await?;
        ensure!(&after == expected, "rebuilt history differs");
    }
    // Live writing still works after the rebuild.
    tx.send(json!({"type": "send", "room_id": rooms[0], "body": "after"}))
        .await?;
    let mut sub_frames = 0;
    while rx.recv().await?["type"] != "ack" {
        sub_frames += 1;
        ensure!(sub_frames < 10_000);
    }
    try_wait_until(WAIT, "live write after rebuild", || {
        let (api, token, room) = (api.clone(), user.token.clone(), rooms[0].clone());
        async move { Ok(api.all_messages(&token, &room).await?.len() == 151) }
    })
    .await?;
    Ok(())
}
