//! msg-writer applies change events (edits, reactions, deletions) to Redis history: each
//! message's entry is its newest state whatever order, and however often, entries arrive; a
//! deletion leaves `{deleted: true, body: ""}` and erases the text from the stream; a rebuilt
//! history equals the live one; a deleted room leaves nothing. Entries are published straight to
//! JetStream, as ws-agent would, and Redis is read directly.

use std::time::Duration;

use anyhow::{ensure, Context};
use async_nats::jetstream::{self, consumer::pull, stream::Stream, AckKind};
use dyschat_protocol::layout::{history, MESSAGES_STREAM, WRITER_CONSUMER};
use dyschat_protocol::subjects;
use dyschat_protocol::wire::{ChangeKind, Reaction, StoredChange, StoredMessage};
use dyschat_tests::client::Api;
use dyschat_tests::mesh::Mesh;
use futures::{StreamExt, TryStreamExt};
use serde_json::{json, Value};

type Conn = redis::aio::MultiplexedConnection;

struct Setup {
    mesh: Mesh,
    js: jetstream::Context,
    stream: Stream,
    redis: Conn,
}

impl Setup {
    async fn start(agents: usize) -> anyhow::Result<Setup> {
        let mesh = Mesh::start(agents).await?;
        let js = jetstream::new(async_nats::connect(mesh.nats.url()).await?);
        let mut stream = None;
        for _ in 0..100 {
            if let Ok(s) = js.get_stream(MESSAGES_STREAM).await {
                stream = Some(s);
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let stream = stream.context("the writer never ensured the stream")?;
        let client = redis::Client::open(mesh.redis.url())?;
        let redis = client.get_multiplexed_async_connection().await?;
        Ok(Setup {
            mesh,
            js,
            stream,
            redis,
        })
    }

    async fn publish(&self, subject: String, payload: Vec<u8>) -> anyhow::Result<u64> {
        Ok(self
            .js
            .publish(subject, payload.into())
            .await?
            .await?
            .sequence)
    }

    /// Publishes a message as a send would; its seq and what it stored.
    async fn send(&self, room: &str, body: &str) -> anyhow::Result<(u64, StoredMessage)> {
        let n = dyschat_protocol::ids::new_id();
        let m = StoredMessage::sent(
            room.into(),
            format!("m{n}"),
            format!("c{n}"),
            "sender".into(),
            "ann".into(),
            body.into(),
            "2026-12-01T00:00:00.000Z".into(),
        );
        let seq = self
            .publish(subjects::room_messages(room), serde_json::to_vec(&m)?)
            .await?;
        Ok((seq, m))
    }

    /// Publishes a change of message `seq` leaving it in `state`; the event's seq.
    async fn change(
        &self,
        room: &str,
        seq: u64,
        change: ChangeKind,
        state: &StoredMessage,
    ) -> anyhow::Result<u64> {
        let event = StoredChange {
            room_id: room.into(),
            seq,
            prev_seq: 0,
            change,
            prev_event_seq: 0,
            by: "sender".into(),
            at: "2026-12-01T00:01:00.000Z".into(),
            message: state.clone(),
        };
        self.publish(
            subjects::room_change(room, seq),
            serde_json::to_vec(&event)?,
        )
        .await
    }

    /// The members Redis holds at `seq` in the room's history.
    async fn at(&self, room: &str, seq: u64) -> anyhow::Result<Vec<Value>> {
        let mut conn = self.redis.clone();
        let members: Vec<Vec<u8>> = redis::cmd("ZRANGEBYSCORE")
            .arg(history::key(room))
            .arg(seq)
            .arg(seq)
            .query_async(&mut conn)
            .await?;
        Ok(members
            .iter()
            .map(|m| serde_json::from_slice(m))
            .collect::<Result<_, _>>()?)
    }

    /// Waits until Redis holds exactly one member at `seq` and `check` accepts it.
    async fn wait_at(
        &self,
        room: &str,
        seq: u64,
        what: &str,
        check: impl Fn(&Value) -> bool,
    ) -> anyhow::Result<Value> {
        let mut last = Vec::new();
        for _ in 0..300 {
            last = self.at(room, seq).await?;
            if let [one] = &last[..] {
                if check(one) {
                    return Ok(one.clone());
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        anyhow::bail!("timed out waiting for {what} at {room}/{seq}; Redis holds {last:?}")
    }

    /// A room's history and per-sender sets, members with scores.
    async fn snapshot(&self, room: &str) -> anyhow::Result<Vec<(String, Vec<(Vec<u8>, f64)>)>> {
        let mut conn = self.redis.clone();
        let mut keys: Vec<String> = redis::cmd("KEYS")
            .arg(history::sent_pattern(room))
            .query_async(&mut conn)
            .await?;
        keys.sort();
        keys.insert(0, history::key(room));
        let mut out = Vec::new();
        for key in keys {
            let members: Vec<(Vec<u8>, f64)> = redis::cmd("ZRANGE")
                .arg(&key)
                .arg(0)
                .arg(-1)
                .arg("WITHSCORES")
                .query_async(&mut conn)
                .await?;
            out.push((key, members));
        }
        Ok(out)
    }

    /// How many entries the stream holds on `subject`.
    async fn on_subject(&self, subject: &str) -> anyhow::Result<usize> {
        let counts: Vec<(String, usize)> = self
            .stream
            .info_with_subjects(subject)
            .await?
            .try_collect()
            .await?;
        Ok(counts.iter().map(|(_, n)| n).sum())
    }

    async fn in_stream(&self, seq: u64) -> anyhow::Result<bool> {
        use async_nats::jetstream::stream::RawMessageErrorKind;
        match self.stream.get_raw_message(seq).await {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == RawMessageErrorKind::NoMessageFound => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Waits until the writer's consumer holds nothing back.
    async fn settled(&self) -> anyhow::Result<()> {
        self.settled_but(0).await
    }

    /// Waits until the writer's consumer holds nothing back but the `held` entries the test
    /// took from it.
    async fn settled_but(&self, held: usize) -> anyhow::Result<()> {
        for _ in 0..300 {
            let info = self.stream.consumer_info(WRITER_CONSUMER).await?;
            if info.num_pending == 0 && info.num_ack_pending == held {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        anyhow::bail!("the writer's consumer never settled")
    }

    /// Waits until the history marker says complete (a rebuild finished).
    async fn rebuilt(&self) -> anyhow::Result<()> {
        let mut conn = self.redis.clone();
        for _ in 0..300 {
            let marker: Option<String> = redis::cmd("GET")
                .arg(history::MARKER_KEY)
                .query_async(&mut conn)
                .await?;
            if marker.as_deref() == Some(history::MARKER_COMPLETE) {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        anyhow::bail!("history never rebuilt")
    }

    async fn stop_writer(&mut self) -> anyhow::Result<()> {
        let at = self
            .mesh
            .services
            .iter()
            .position(|s| s.name == "msg-writer")
            .context("no writer running")?;
        self.mesh.services.remove(at).stop().await
    }
}

fn edited(m: &StoredMessage, body: &str) -> StoredMessage {
    let mut m = m.clone();
    m.body = body.into();
    m.edited_at = Some("2026-12-01T00:01:00.000Z".into());
    m
}

fn reacted(m: &StoredMessage, emoji: &str, users: &[&str]) -> StoredMessage {
    let mut m = m.clone();
    m.reactions.push(Reaction {
        emoji: emoji.into(),
        count: users.len() as u32,
        user_ids: users.iter().map(|u| u.to_string()).collect(),
    });
    m
}

/// What Redis must hold for a state stored by the event at `event_seq`.
fn stored(state: &StoredMessage, event_seq: u64) -> anyhow::Result<Value> {
    let mut state = state.clone();
    state.version = event_seq;
    Ok(serde_json::to_value(state)?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn edits_and_reactions_leave_the_newest_state() -> anyhow::Result<()> {
    let mut s = Setup::start(0).await?;
    let room = "chgroom";
    let (seq, sent) = s.send(room, "hello").await?;
    let (other, _) = s.send(room, "untouched").await?;
    let original = s.wait_at(room, seq, "the original", |_| true).await?;
    ensure!(original == serde_json::to_value(&sent)? && original.get("v").is_none());

    let one = edited(&sent, "hello, edited");
    let e1 = s.change(room, seq, ChangeKind::Edited, &one).await?;
    let want = stored(&one, e1)?;
    s.wait_at(room, seq, "the edit", |m| *m == want).await?;

    let two = reacted(&one, "👍", &["u1", "u2"]);
    let e2 = s.change(room, seq, ChangeKind::Reaction, &two).await?;
    let want = stored(&two, e2)?;
    let got = s.wait_at(room, seq, "the reaction", |m| *m == want).await?;
    ensure!(got["reactions"][0]["count"] == 2 && got["v"] == e2);

    // The last reaction taken back: the emoji leaves.
    let three = one.clone();
    let e3 = s.change(room, seq, ChangeKind::Reaction, &three).await?;
    let want = stored(&three, e3)?;
    s.wait_at(room, seq, "the unreaction", |m| *m == want)
        .await?;
    ensure!(s.at(room, other).await?[0]["body"] == "untouched");

    // A Redis that forgot the script (restarted, flushed scripts) is given it again.
    let mut conn = s.redis.clone();
    let _: () = redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query_async(&mut conn)
        .await?;
    let (after, _) = s.send(room, "after the flush").await?;
    s.wait_at(room, after, "a message after SCRIPT FLUSH", |m| {
        m["body"] == "after the flush"
    })
    .await?;

    // A change that is no change is set aside like a message that is no message.
    s.publish(subjects::room_change(room, seq), b"not a change".to_vec())
        .await?;
    let dead = s.js.get_stream("DYSCHAT_DEADLETTER").await?;
    for _ in 0..100 {
        if dead.get_info().await?.state.messages == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let first = dead.get_info().await?.state.first_sequence;
    let letter: Value = serde_json::from_slice(&dead.get_raw_message(first).await?.payload)?;
    ensure!(
        letter["reason"]
            .as_str()
            .is_some_and(|r| r.contains("not a stored change")),
        "{letter}"
    );
    s.settled().await?;
    ensure!(
        s.at(room, seq).await? == vec![want],
        "poison changed the state"
    );
    s.mesh.stop_all().await
}

/// The test takes the entries from the writer's own consumer and hands them back (nak) in the
/// order it wants, so the writer sees the newest change first, the older ones and the original
/// after it; then a replay of the whole stream delivers everything once more.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn late_duplicated_and_out_of_order_entries_end_with_the_newest_state() -> anyhow::Result<()>
{
    let mut s = Setup::start(0).await?;
    let room = "disorder";
    s.settled().await?;
    s.stop_writer().await?;
    let (seq, sent) = s.send(room, "first").await?;
    let one = edited(&sent, "one");
    let e1 = s.change(room, seq, ChangeKind::Edited, &one).await?;
    let two = edited(&sent, "two");
    let e2 = s.change(room, seq, ChangeKind::Edited, &two).await?;
    let three = reacted(&two, "🎉", &["u9"]);
    let e3 = s.change(room, seq, ChangeKind::Reaction, &three).await?;

    let consumer: jetstream::consumer::Consumer<pull::Config> = s
        .stream
        .get_consumer(WRITER_CONSUMER)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut held = Vec::new();
    for _ in 0..20 {
        let mut batch = consumer
            .fetch()
            .max_messages(4 - held.len())
            .expires(Duration::from_secs(1))
            .messages()
            .await?;
        while let Some(m) = batch.next().await {
            held.push(m.map_err(|e| anyhow::anyhow!("{e}"))?);
        }
        if held.len() == 4 {
            break;
        }
    }
    let seqs: Vec<u64> = held
        .iter()
        .map(|m| m.info().map(|i| i.stream_sequence))
        .collect::<Result<_, _>>()
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    ensure!(seqs == [seq, e1, e2, e3], "held {seqs:?}");

    s.mesh.start_writer()?;
    // The newest change first: nothing is stored at seq yet, so its state is inserted.
    held[3]
        .ack_with(AckKind::Nak(None))
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let newest = stored(&three, e3)?;
    s.wait_at(room, seq, "the newest change before its message", |m| {
        *m == newest
    })
    .await?;
    s.settled_but(3).await?;
    // Then an older change, the original (with a new message behind it) and another older
    // change, each in a chunk of its own: none of them brings anything back.
    for (i, m) in [&held[1], &held[0], &held[2]].into_iter().enumerate() {
        m.ack_with(AckKind::Nak(None))
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        if i == 1 {
            let (later, _) = s.send(room, "later").await?;
            s.wait_at(room, later, "a message after the late original", |m| {
                m["body"] == "later"
            })
            .await?;
        }
        s.settled_but(2 - i).await?;
        ensure!(
            s.at(room, seq).await? == vec![newest.clone()],
            "entry {i} changed the state: {:?}",
            s.at(room, seq).await?
        );
    }
    let sent_set = history::sent_key(room, "sender");
    let mut conn = s.redis.clone();
    let sent_seqs: Vec<u64> = redis::cmd("ZRANGE")
        .arg(&sent_set)
        .arg(0)
        .arg(-1)
        .query_async(&mut conn)
        .await?;
    ensure!(
        sent_seqs.len() == 2 && sent_seqs[0] == seq,
        "sent set {sent_seqs:?}"
    );

    // Everything once more, over what Redis holds: a replay of a Redis of the old layout.
    let before = s.snapshot(room).await?;
    // Keys of the layout before hash tags (spelled here: no code names them any more), left by
    // an old writer; the rebuild removes them.
    let legacy = [
        format!("dyschat:history:{room}"),
        format!("dyschat:meta:deleted:{room}"),
        format!("dyschat:meta:rebuilding:{room}"),
    ];
    for key in &legacy {
        let _: () = redis::cmd("ZADD")
            .arg(key)
            .arg(1)
            .arg("old")
            .query_async(&mut conn)
            .await?;
    }
    let _: () = redis::cmd("SET")
        .arg(history::MARKER_KEY)
        .arg("complete-v3")
        .query_async(&mut conn)
        .await?;
    // The old layout's marker is not this one's: the writer rebuilds once.
    ensure!(history::MARKER_COMPLETE == "complete-v4");
    s.rebuilt().await?;
    ensure!(
        s.snapshot(room).await? == before,
        "the replay changed history"
    );
    let left: u64 = redis::cmd("EXISTS")
        .arg(&legacy[..])
        .query_async(&mut conn)
        .await?;
    ensure!(left == 0, "{left} keys of the old layout left");
    s.mesh.stop_all().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_deletion_erases_the_text_from_history_and_stream_and_a_rebuild_ends_equal(
) -> anyhow::Result<()> {
    let mut s = Setup::start(0).await?;
    let room = "erasing";
    let (seq, sent) = s.send(room, "a secret").await?;
    let (kept, kept_message) = s.send(room, "stays").await?;
    let (elsewhere, _) = s.send("bystander", "not yours").await?;
    let e1 = s
        .change(
            room,
            seq,
            ChangeKind::Edited,
            &edited(&sent, "a secret, edited"),
        )
        .await?;
    let reacted_to = reacted(&kept_message, "👀", &["u3"]);
    let r1 = s
        .change(room, kept, ChangeKind::Reaction, &reacted_to)
        .await?;
    s.wait_at(room, seq, "the edit", |m| m["v"] == e1).await?;
    ensure!(s.on_subject(&subjects::room_change(room, seq)).await? == 1);

    let tombstone = edited(&sent, "a secret, edited").erased();
    let d1 = s.change(room, seq, ChangeKind::Deleted, &tombstone).await?;
    let want = stored(&tombstone, d1)?;
    let got = s.wait_at(room, seq, "the deletion", |m| *m == want).await?;
    ensure!(got["deleted"] == true && got["body"] == "", "{got}");
    s.settled().await?;
    // Acknowledged only once erased: the original is gone, and of its changes only the
    // tombstone is left.
    ensure!(
        !s.in_stream(seq).await?,
        "the deleted message is still in the stream"
    );
    ensure!(s.on_subject(&subjects::room_change(room, seq)).await? == 1);
    let last = s
        .stream
        .get_last_raw_message_by_subject(&subjects::room_change(room, seq))
        .await?;
    ensure!(last.sequence == d1, "the tombstone is what is left");
    ensure!(s.in_stream(kept).await? && s.in_stream(r1).await? && s.in_stream(elsewhere).await?);

    // A deletion delivered again (the same tombstone, republished) finds the message gone.
    let d2 = s.change(room, seq, ChangeKind::Deleted, &tombstone).await?;
    s.wait_at(room, seq, "the repeated deletion", |m| m["v"] == d2)
        .await?;
    s.settled().await?;
    ensure!(s.on_subject(&subjects::room_change(room, seq)).await? == 1);
    // A deletion naming another room's message erases nothing of that room.
    s.change(room, elsewhere, ChangeKind::Deleted, &tombstone)
        .await?;
    s.settled().await?;
    ensure!(
        s.in_stream(elsewhere).await?,
        "another room's message was erased"
    );

    // Redis emptied: the rebuild from what the stream still holds is the live history.
    // Three entries: the deleted message, the one reacted to, and the state the stray
    // deletion left at the other room's seq (the agent checks what it deletes; the writer only
    // makes sure it erases nothing of another room).
    let live = s.snapshot(room).await?;
    ensure!(live[0].1.len() == 3, "history {:?}", live[0]);
    let mut conn = s.redis.clone();
    let _: () = redis::cmd("FLUSHALL").query_async(&mut conn).await?;
    s.rebuilt().await?;
    let rebuilt = s.snapshot(room).await?;
    ensure!(rebuilt == live, "rebuilt {rebuilt:?}\nlive {live:?}");
    s.mesh.stop_all().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_deleted_room_leaves_nothing_of_its_messages_or_changes() -> anyhow::Result<()> {
    let mut s = Setup::start(1).await?;
    let api = Api::new(s.mesh.agent(0).http());
    let owner = api.register_and_login("chg_owner").await?;
    let room = api.create_room(&owner.token, "changing").await?;
    let (status, body) = api
        .call(
            "POST",
            &format!("/api/v1/rooms/{room}/messages"),
            Some(&owner.token),
            Some(json!({"body": "to be changed", "client_msg_id": "c1"})),
        )
        .await?;
    ensure!(status == 201, "{status} {body}");
    let seq = body["seq"].as_u64().context("seq")?;
    let sent: StoredMessage =
        serde_json::from_slice(&s.stream.get_raw_message(seq).await?.payload)?;
    let e1 = s
        .change(&room, seq, ChangeKind::Edited, &edited(&sent, "changed"))
        .await?;
    s.wait_at(&room, seq, "the edit", |m| m["v"] == e1).await?;
    let mut conn = s.redis.clone();
    let mut keys = Vec::new();
    for pattern in [
        history::key(&room),
        history::dedupe_pattern(&room),
        history::sent_pattern(&room),
    ] {
        let mut some: Vec<String> = redis::cmd("KEYS")
            .arg(pattern)
            .query_async(&mut conn)
            .await?;
        keys.append(&mut some);
    }
    ensure!(keys.len() == 3, "history, index and sent set: {keys:?}");

    let (status, body) = api
        .call(
            "DELETE",
            &format!("/api/v1/rooms/{room}"),
            Some(&owner.token),
            None,
        )
        .await?;
    ensure!(status == 200, "{status} {body}");
    let mut left = keys.clone();
    for _ in 0..100 {
        left.clear();
        for key in &keys {
            let exists: bool = redis::cmd("EXISTS").arg(key).query_async(&mut conn).await?;
            if exists {
                left.push(key.clone());
            }
        }
        if left.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    ensure!(left.is_empty(), "left in Redis: {left:?}");
    for filter in subjects::room_stream_filters(&room) {
        ensure!(
            s.on_subject(&filter).await? == 0,
            "left in the stream on {filter}"
        );
    }
    s.mesh.stop_all().await
}
