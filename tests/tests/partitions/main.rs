//! Partitioned message streams (`DYSCHAT_STREAM_PARTITIONS`): the server's subject mapping puts
//! each room's messages where `dyschat_protocol::streams::partition` says, and the whole mesh
//! (send, live, history, edits with their compare-and-set, deletions that erase, notifications,
//! the writer, its restart and an emptied Redis, search) works with 3 streams on one node.

mod search;
mod writer;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context};
use async_nats::jetstream::{self, stream::Stream};
use dyschat_protocol::layout::{history, WRITER_CONSUMER};
use dyschat_protocol::streams::MessageStreams;
use dyschat_protocol::{ids, subjects};
use dyschat_runtime::config::TopologySettings;
use dyschat_tests::client::{create_room_with as create, expect, Api, LoggedIn, WsClient};
use dyschat_tests::mesh::Mesh;
use dyschat_tests::NatsServer;
use serde_json::{json, Value};

const PARTITIONS: u16 = 3;
/// How long the writer may take to store what a test sent.
const STORED_WITHIN: Duration = Duration::from_secs(15);

fn layout() -> MessageStreams {
    MessageStreams::new(PARTITIONS).expect("in range")
}

fn topology() -> TopologySettings {
    TopologySettings {
        stream_partitions: PARTITIONS,
        ..Default::default()
    }
}

/// Publishes to many random rooms through the server's mapping and reads back which stream
/// stored each, under which subject: always the one the Rust function names.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_mapping_agrees_with_the_partition_function() -> anyhow::Result<()> {
    let nats = NatsServer::start_secured_partitioned(PARTITIONS).await?;
    let client = async_nats::connect(nats.url()).await?;
    let js = jetstream::new(client);
    let streams = dyschat_runtime::topology::ensure_message_streams(&js, &topology()).await?;
    let layout = layout();
    let mut seen = BTreeSet::new();
    for i in 0..300 {
        // Random ids, and a few short or odd ones, every character an id may hold.
        let room = match i {
            0 => "a".to_string(),
            1 => "Z-_9".to_string(),
            _ => ids::new_id(),
        };
        let ack = js
            .publish(subjects::room_messages(&room), "{}".into())
            .await?
            .await?;
        ensure!(
            ack.stream == layout.room_stream(&room),
            "{room}: stored by {} but the function says {}",
            ack.stream,
            layout.room_stream(&room)
        );
        let stream = streams.for_room(&room);
        let stored = stream
            .get_last_raw_message_by_subject(&layout.stored_message(&room))
            .await?;
        ensure!(stored.sequence == ack.sequence, "{room}: {stored:?}");
        // A change event of the room goes to the same partition, on its own stored subject.
        let ack = js
            .publish(subjects::room_change(&room, ack.sequence), "{}".into())
            .await?
            .await?;
        ensure!(
            ack.stream == layout.room_stream(&room),
            "{room}: change in {}",
            ack.stream
        );
        let stored = stream
            .get_last_raw_message_by_subject(&layout.stored_changes(&room))
            .await?;
        ensure!(stored.sequence == ack.sequence, "{room}: change {stored:?}");
        seen.insert(layout.partition_of(&room));
    }
    ensure!(
        seen.len() == usize::from(PARTITIONS),
        "partitions used: {seen:?}"
    );
    // Nothing is stored under the published form: every stream holds only its own subjects.
    for (k, stream) in (0u16..).zip(streams.all()) {
        let mut stream: Stream = stream.clone();
        let info = stream.info().await?;
        ensure!(
            info.config.subjects == layout.stream_subjects(k),
            "{:?}",
            info.config
        );
    }
    Ok(())
}

/// A mesh of two agents on 3 partitions, with a user and an API client on each agent.
pub(crate) struct Setup {
    mesh: Mesh,
    apis: Vec<Api>,
}

impl Setup {
    async fn start() -> anyhow::Result<Setup> {
        let mesh = Mesh::start_partitioned(2, PARTITIONS, Vec::new()).await?;
        let apis = (0..2).map(|i| Api::new(mesh.agent(i).http())).collect();
        Ok(Setup { mesh, apis })
    }

    async fn js(&self) -> anyhow::Result<jetstream::Context> {
        Ok(jetstream::new(self.mesh.client().await?))
    }

    async fn redis(&self) -> anyhow::Result<redis::aio::MultiplexedConnection> {
        let client = redis::Client::open(self.mesh.redis.url())?;
        Ok(client.get_multiplexed_async_connection().await?)
    }

    /// Rooms of `owner` (joined by `member`) until every partition holds at least `per` of them.
    async fn rooms_in_every_partition(
        &self,
        owner: &LoggedIn,
        member: &LoggedIn,
        per: usize,
    ) -> anyhow::Result<Vec<String>> {
        let mut rooms = Vec::new();
        let mut counts = vec![0usize; usize::from(PARTITIONS)];
        for i in 0..60 {
            if counts.iter().all(|c| *c >= per) {
                return Ok(rooms);
            }
            let room = create(&self.apis[0], owner, &format!("p{i}"), "public").await?;
            let k = usize::from(layout().partition_of(&room));
            if counts[k] >= per {
                continue;
            }
            counts[k] += 1;
            self.apis[1].join_room(&member.token, &room).await?;
            rooms.push(room);
        }
        anyhow::bail!("60 rooms did not cover every partition: {counts:?}")
    }
}

async fn post(api: &Api, user: &LoggedIn, room: &str, body: &str) -> anyhow::Result<u64> {
    let path = format!("/api/v1/rooms/{room}/messages");
    let answer = expect(api, user, "POST", &path, Some(json!({"body": body})), 201).await?;
    answer["seq"].as_u64().context("seq")
}

/// Waits until Redis holds `n` entries of the room's history.
async fn stored(
    redis: &mut redis::aio::MultiplexedConnection,
    room: &str,
    n: u64,
) -> anyhow::Result<()> {
    let since = Instant::now();
    loop {
        let have: u64 = redis::cmd("ZCARD")
            .arg(history::key(room))
            .query_async(redis)
            .await?;
        if have >= n {
            return Ok(());
        }
        ensure!(
            since.elapsed() < STORED_WITHIN,
            "{room}: {have} of {n} stored"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The next `message_updated` of the room on `socket`.
async fn updated(socket: &mut WsClient) -> anyhow::Result<Value> {
    socket.recv_type("message_updated").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_mesh_works_across_partitions() -> anyhow::Result<()> {
    let s = Setup::start().await?;
    let alice = s.apis[0].register_and_login("p_alice").await?;
    let bob = s.apis[1].register_and_login("p_bob").await?;
    let rooms = s.rooms_in_every_partition(&alice, &bob, 2).await?;
    let mut bobs = WsClient::connect(&s.mesh.agent(1).ws(), &bob.token).await?;
    for room in &rooms {
        bobs.join(room, None).await?;
    }
    let js = s.js().await?;
    let layout = layout();
    let mut redis = s.redis().await?;

    for room in &rooms {
        // Sends land in the room's partition, reach the live socket on the other agent in order,
        // and come back in history.
        let mut seqs = Vec::new();
        for i in 0..3 {
            let path = format!("/api/v1/rooms/{room}/messages");
            let body = json!({"body": format!("m{i} @p_bob")});
            let sent = expect(&s.apis[0], &alice, "POST", &path, Some(body), 201).await?;
            // The post learns its `prev_seq` from the room's stream (partition).
            let prev = seqs.last().copied().unwrap_or(0);
            ensure!(sent["prev_seq"] == prev, "{room}: {sent}");
            seqs.push(sent["seq"].as_u64().context("seq")?);
        }
        let mut live = Vec::new();
        while live.len() < seqs.len() {
            let frame = bobs.recv_type("message").await?;
            if frame["room_id"] == room.as_str() {
                live.push(frame["seq"].as_u64().context("seq")?);
            }
        }
        ensure!(live == seqs, "{room}: live {live:?}, sent {seqs:?}");
        // A join with `since` replays from the room's stream.
        let mut late = WsClient::connect(&s.mesh.agent(0).ws(), &bob.token).await?;
        let joined = late.join(room, Some(seqs[0])).await?;
        ensure!(
            joined["last_seq"] == seqs[2] && joined["recovered"] == true,
            "{room}: {joined}"
        );
        for (i, want) in seqs.iter().enumerate().skip(1) {
            let m = late.recv_type("message").await?;
            ensure!(
                m["seq"] == *want && m["prev_seq"] == seqs[i - 1],
                "{room}: {m}"
            );
        }
        late.close().await;
        let stream = js.get_stream(layout.room_stream(room)).await?;
        let last = stream
            .get_last_raw_message_by_subject(&layout.stored_message(room))
            .await?;
        ensure!(
            last.sequence == seqs[2],
            "{room}: newest stored {}",
            last.sequence
        );
        let history = s.apis[1]
            .history_seqs(&bob.token, room, 3, STORED_WITHIN)
            .await?;
        ensure!(history == seqs, "{room}: history {history:?}");

        // Two edits: the second names the first as its predecessor (the compare-and-set on the
        // room's stored change subjects held).
        let path = format!("/api/v1/rooms/{room}/messages/{}", seqs[0]);
        let mut prev = 0;
        for body in ["edited once", "edited twice"] {
            expect(
                &s.apis[0],
                &alice,
                "PATCH",
                &path,
                Some(json!({"body": body})),
                200,
            )
            .await?;
            let u = updated(&mut bobs).await?;
            ensure!(
                u["message"]["body"] == body && u["prev_event_seq"] == prev,
                "{room}: {u}"
            );
            prev = u["event_seq"].as_u64().context("event_seq")?;
        }
        // A deletion: the writer erases the text from the room's stream.
        let path = format!("/api/v1/rooms/{room}/messages/{}", seqs[1]);
        expect(&s.apis[0], &alice, "DELETE", &path, None, 200).await?;
        let u = updated(&mut bobs).await?;
        ensure!(
            u["message"]["deleted"] == true && u["prev_event_seq"] == prev,
            "{u}"
        );
        let since = Instant::now();
        while stream.get_raw_message(seqs[1]).await.is_ok() {
            ensure!(
                since.elapsed() < STORED_WITHIN,
                "{room}: {} not erased",
                seqs[1]
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let state: Value = {
            let messages = s.apis[1].all_messages(&bob.token, room).await?;
            messages
                .into_iter()
                .find(|m| m["seq"] == seqs[1])
                .context("the deleted message is still listed")?
        };
        ensure!(state["deleted"] == true, "{state}");
        stored(&mut redis, room, 3).await?;
    }

    // Every partition's writer consumer stored and acknowledged its messages, and the high
    // water of each partition reached its ack floor.
    for k in layout.all() {
        let stream = js.get_stream(layout.stream_name(k)).await?;
        let since = Instant::now();
        loop {
            let info = stream.consumer_info(WRITER_CONSUMER).await?;
            let last = stream.cached_info().state.last_sequence;
            let floor = info.ack_floor.stream_sequence;
            let high: Option<f64> = redis::cmd("ZSCORE")
                .arg(history::meta_keys(layout, k).high_water)
                .arg(history::HIGH_WATER_MEMBER)
                .query_async(&mut redis)
                .await?;
            if info.num_pending == 0 && info.num_ack_pending == 0 {
                ensure!(
                    high.map(|h| h as u64) >= Some(floor),
                    "partition {k}: {high:?} < {floor}"
                );
                ensure!(floor > 0, "partition {k} stored nothing (last {last})");
                break;
            }
            ensure!(since.elapsed() < STORED_WITHIN, "partition {k}: {info:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    // One mention notification per message, whatever the partition (the feed consumes each).
    let want = rooms.len() * 3;
    let since = Instant::now();
    loop {
        let page = expect(
            &s.apis[1],
            &bob,
            "GET",
            "/api/v1/me/notifications?limit=100",
            None,
            200,
        )
        .await?;
        let n = page["notifications"].as_array().map_or(0, Vec::len);
        // The deleted message's notification is erased with it: one fewer per room.
        if n == want - rooms.len() {
            break;
        }
        ensure!(
            since.elapsed() < STORED_WITHIN,
            "{n} notifications of {want}: {page}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // A room's deletion purges its partition's subjects.
    let gone = &rooms[0];
    expect(
        &s.apis[0],
        &alice,
        "DELETE",
        &format!("/api/v1/rooms/{gone}"),
        None,
        200,
    )
    .await?;
    let stream = js.get_stream(layout.room_stream(gone)).await?;
    let since = Instant::now();
    for filter in layout.room_filters(gone) {
        // The clean-up runs after the answer.
        while stream
            .get_last_raw_message_by_subject(&filter)
            .await
            .is_ok()
        {
            ensure!(
                since.elapsed() < STORED_WITHIN,
                "{filter}: left after the deletion"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    // The other rooms of that partition keep theirs.
    let kept = rooms
        .iter()
        .find(|r| *r != gone && layout.partition_of(r) == layout.partition_of(gone))
        .context("a second room in the partition")?;
    stream
        .get_last_raw_message_by_subject(&layout.stored_message(kept))
        .await
        .with_context(|| format!("{kept} lost its messages"))?;
    let mut s = s;
    s.mesh.stop_all().await
}
