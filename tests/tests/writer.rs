//! msg-writer under trouble: poison messages and a Redis that lost its data.

use std::time::Duration;

use anyhow::ensure;
use dyschat_tests::client::{Api, WsClient};
use dyschat_tests::mesh::Mesh;
use serde_json::json;

async fn redis(mesh: &Mesh) -> anyhow::Result<redis::aio::MultiplexedConnection> {
    let client = redis::Client::open(format!("redis://{}/", mesh.redis.addr()))?;
    Ok(client.get_multiplexed_async_connection().await?)
}

async fn wait_for<F, Fut>(what: &str, mut check: F) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<bool>>,
{
    for _ in 0..300 {
        if check().await? {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    anyhow::bail!("timed out waiting for {what}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn poison_messages_are_dead_lettered_without_blocking_the_rest() -> anyhow::Result<()> {
    let mesh = Mesh::start(1).await?;
    let api = Api::new(mesh.agent(0).http());
    let user = api.register_and_login("poisoner").await?;
    let bad_room = api.create_room(&user.token, "poisoned").await?;
    let good_room = api.create_room(&user.token, "healthy").await?;
    // A key of the wrong type makes every ZADD for the bad room fail with WRONGTYPE.
    let mut conn = redis(&mesh).await?;
    let _: () = redis::cmd("SET")
        .arg(format!("dyschat:history:{bad_room}"))
        .arg("not a sorted set")
        .query_async(&mut conn)
        .await?;

    let mut ws = WsClient::connect(&mesh.agent(0).ws(), &user.token).await?;
    for n in 0..20 {
        let room = if n % 4 == 0 { &bad_room } else { &good_room };
        ws.send(json!({"type": "send", "room_id": room, "body": format!("m{n}")}))
            .await?;
        ws.recv_type("ack").await?;
    }
    // The healthy room's messages are stored while the poison ones are being retried.
    wait_for("healthy history", || async {
        Ok(api.all_messages(&user.token, &good_room).await?.len() == 15)
    })
    .await?;

    let js = async_nats::jetstream::new(async_nats::connect(mesh.nats.url()).await?);
    let dead = js.get_stream("DYSCHAT_DEADLETTER").await?;
    wait_for("5 dead letters", || {
        let dead = dead.clone();
        async move { Ok(dead.get_info().await?.state.messages == 5) }
    })
    .await?;
    let first = dead.get_info().await?.state.first_sequence;
    let letter = dead.get_raw_message(first).await?;
    let letter: serde_json::Value = serde_json::from_slice(&letter.payload)?;
    ensure!(
        letter["reason"]
            .as_str()
            .is_some_and(|r| r.contains("WRONGTYPE")),
        "{letter}"
    );
    ensure!(
        letter["subject"]
            .as_str()
            .is_some_and(|s| s.ends_with(&bad_room)),
        "{letter}"
    );

    // Nothing is left pending on the writer's consumer.
    let stream = js.get_stream("DYSCHAT_MESSAGES").await?;
    wait_for("consumer settled", || {
        let stream = stream.clone();
        async move {
            let info = stream.consumer_info("msg-writer").await?;
            Ok(info.num_pending == 0 && info.num_ack_pending == 0)
        }
    })
    .await?;
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
        wait_for("history", || {
            let (api, token, room) = (api.clone(), user.token.clone(), room.clone());
            async move { Ok(api.all_messages(&token, &room).await?.len() == 150) }
        })
        .await?;
        before.push(api.all_messages(&user.token, &room).await?);
    }

    let mut conn = redis(&mesh).await?;
    let _: () = redis::cmd("FLUSHALL").query_async(&mut conn).await?;
    ensure!(
        api.all_messages(&user.token, &rooms[0]).await?.is_empty(),
        "flush did not empty history"
    );

    for (room, expected) in rooms.iter().zip(&before) {
        wait_for("rebuilt history", || {
            let (api, token, room) = (api.clone(), user.token.clone(), room.clone());
            async move { Ok(api.all_messages(&token, &room).await?.len() == 150) }
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
    wait_for("live write after rebuild", || {
        let (api, token, room) = (api.clone(), user.token.clone(), rooms[0].clone());
        async move { Ok(api.all_messages(&token, &room).await?.len() == 151) }
    })
    .await?;
    Ok(())
}
