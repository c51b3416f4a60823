//! Room chat end to end: real nats-server and redis-server, the four services in-process, two
//! ws-agents, WebSocket clients.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use anyhow::{ensure, Context};
use dyschat_tests::client::{Api, LoggedIn, WsClient, WsReceiver};
use dyschat_tests::mesh::Mesh;
use serde_json::{json, Value};

/// Reads frames until `count` messages arrived, collecting acks on the way.
async fn collect(
    rx: &mut WsReceiver,
    count: usize,
    acks_expected: usize,
) -> anyhow::Result<(Vec<Value>, Vec<Value>)> {
    let mut messages = Vec::new();
    let mut acks = Vec::new();
    while messages.len() < count || acks.len() < acks_expected {
        let frame = rx.recv().await.with_context(|| {
            format!("after {} messages and {} acks", messages.len(), acks.len())
        })?;
        match frame["type"].as_str() {
            Some("message") => messages.push(frame),
            Some("ack") => acks.push(frame),
            Some("error") => anyhow::bail!("unexpected error frame {frame}"),
            _ => {}
        }
    }
    Ok((messages, acks))
}

/// Checks that `messages` are strictly ordered, each once, and that `prev_seq` chains.
fn check_chain(messages: &[Value], first_prev: u64) -> anyhow::Result<Vec<u64>> {
    let mut seqs = Vec::with_capacity(messages.len());
    let mut prev = first_prev;
    for m in messages {
        let seq = m["seq"].as_u64().context("seq")?;
        ensure!(seq > prev, "seq {seq} not after {prev}");
        ensure!(
            m["prev_seq"].as_u64() == Some(prev),
            "prev_seq of {seq} is {} not {prev}",
            m["prev_seq"]
        );
        prev = seq;
        seqs.push(seq);
    }
    Ok(seqs)
}

async fn history_when_complete(
    api: &Api,
    user: &LoggedIn,
    room: &str,
    count: usize,
) -> anyhow::Result<Vec<Value>> {
    for _ in 0..200 {
        let all = api.all_messages(&user.token, room).await?;
        if all.len() >= count {
            return Ok(all);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    anyhow::bail!("history never reached {count} messages")
}

struct Setup {
    mesh: Mesh,
    api: Api,
    users: Vec<LoggedIn>,
    room: String,
}

async fn setup(agents: usize, users: usize) -> anyhow::Result<Setup> {
    let mesh = Mesh::start(agents).await?;
    let api = Api::new(mesh.agent(0).http());
    let mut logged = Vec::new();
    for i in 0..users {
        logged.push(api.register_and_login(&format!("user{i}")).await?);
    }
    let room = api.create_room(&logged[0].token, "general").await?;
    for user in &logged[1..] {
        let (status, body) = api.join_room(&user.token, &room).await?;
        ensure!(
            status == 200 && body["joined"] == true,
            "join: {status} {body}"
        );
    }
    Ok(Setup {
        mesh,
        api,
        users: logged,
        room,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn thousand_concurrent_messages_across_two_agents() -> anyhow::Result<()> {
    const TOTAL: usize = 1000;
    let s = setup(2, 3).await?;
    let mut tasks = Vec::new();
    for (i, user) in s.users.iter().enumerate() {
        let agent = s.mesh.agent(i % 2).ws();
        let mut socket = WsClient::connect(&agent, &user.token).await?;
        let joined = socket.join(&s.room, None).await?;
        ensure!(joined["last_seq"] == 0, "fresh room: {joined}");
        tasks.push((user.clone(), socket));
    }
    // Everyone is joined before anyone sends.
    let mut handles = Vec::new();
    for (i, (user, socket)) in tasks.into_iter().enumerate() {
        let room = s.room.clone();
        let mine = (0..TOTAL).filter(|n| n % 3 == i).count();
        handles.push(tokio::spawn(async move {
            let (mut tx, mut rx) = socket.split();
            let reader = tokio::spawn(async move { collect(&mut rx, TOTAL, mine).await });
            for n in (0..TOTAL).filter(|n| n % 3 == i) {
                tx.send(
                    json!({"type": "send", "room_id": room, "body": format!("message {n}"),
                    "client_msg_id": format!("c{n}"), "ref": format!("r{n}")}),
                )
                .await?;
            }
            let (messages, acks) = reader.await??;
            anyhow::Ok((user, messages, acks, tx))
        }));
    }
    let mut orders = Vec::new();
    let mut acked: HashMap<String, u64> = HashMap::new();
    let mut seen: HashMap<String, u64> = HashMap::new();
    for handle in handles {
        let (user, messages, acks, _tx) = handle.await??;
        ensure!(
            messages.len() == TOTAL,
            "{} got {} messages",
            user.username,
            messages.len()
        );
        let seqs = check_chain(&messages, 0)?;
        for m in &messages {
            seen.insert(
                m["client_msg_id"].as_str().context("cmid")?.to_string(),
                m["seq"].as_u64().context("seq")?,
            );
        }
        for a in &acks {
            ensure!(a["duplicate"] == false, "unexpected duplicate {a}");
            let cmid = a["client_msg_id"].as_str().context("cmid")?.to_string();
            ensure!(
                a["ref"] == json!(format!("r{}", &cmid[1..])),
                "ref not echoed: {a}"
            );
            acked.insert(cmid, a["seq"].as_u64().context("seq")?);
        }
        orders.push(seqs);
    }
    ensure!(
        orders.windows(2).all(|w| w[0] == w[1]),
        "sockets saw different orders"
    );
    ensure!(acked.len() == TOTAL, "{} acks", acked.len());
    ensure!(acked == seen, "acked seqs differ from delivered seqs");

    let history = history_when_complete(&s.api, &s.users[0], &s.room, TOTAL).await?;
    ensure!(history.len() == TOTAL, "history has {}", history.len());
    let history_seqs = check_chain(&history, 0)?;
    ensure!(
        history_seqs == orders[0],
        "history order differs from live order"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn retried_client_msg_id_is_one_message() -> anyhow::Result<()> {
    let s = setup(1, 2).await?;
    let mut alice = WsClient::connect(&s.mesh.agent(0).ws(), &s.users[0].token).await?;
    let mut bob = WsClient::connect(&s.mesh.agent(0).ws(), &s.users[1].token).await?;
    alice.join(&s.room, None).await?;
    bob.join(&s.room, None).await?;
    let send =
        json!({"type": "send", "room_id": s.room, "body": "once", "client_msg_id": "retry-1"});
    alice.send(send.clone()).await?;
    let first = alice.recv_type("ack").await?;
    alice.send(send).await?;
    let second = alice.recv_type("ack").await?;
    ensure!(
        first["duplicate"] == false && second["duplicate"] == true,
        "{first} {second}"
    );
    for key in ["seq", "message_id", "sent_at", "client_msg_id"] {
        ensure!(first[key] == second[key], "{key} differs: {first} {second}");
    }
    // The same id over HTTP is the same message too.
    let (status, posted) = s
        .api
        .call(
            "POST",
            &format!("/api/v1/rooms/{}/messages", s.room),
            Some(&s.users[0].token),
            Some(json!({"body": "once", "client_msg_id": "retry-1"})),
        )
        .await?;
    ensure!(
        status == 201 && posted["seq"] == first["seq"],
        "{status} {posted}"
    );
    // Bob sees it once: the next message he gets after it is a new one.
    let got = bob.recv_type("message").await?;
    ensure!(got["seq"] == first["seq"]);
    alice
        .send(json!({"type": "send", "room_id": s.room, "body": "next"}))
        .await?;
    let next = bob.recv_type("message").await?;
    ensure!(
        next["body"] == "next" && next["prev_seq"] == first["seq"],
        "{next}"
    );
    let history = history_when_complete(&s.api, &s.users[1], &s.room, 2).await?;
    ensure!(
        history.len() == 2,
        "history holds {} messages",
        history.len()
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rejoin_with_since_on_the_other_agent_misses_nothing() -> anyhow::Result<()> {
    let s = setup(2, 2).await?;
    let (alice, bob) = (&s.users[0], &s.users[1]);
    let mut sender = WsClient::connect(&s.mesh.agent(0).ws(), &alice.token).await?;
    sender.join(&s.room, None).await?;
    let mut b = WsClient::connect(&s.mesh.agent(1).ws(), &bob.token).await?;
    b.join(&s.room, None).await?;
    sender
        .send(json!({"type": "send", "room_id": s.room, "body": "before"}))
        .await?;
    sender.recv_type("ack").await?;
    let last_seen = b.recv_type("message").await?["seq"]
        .as_u64()
        .context("seq")?;
    b.close().await;

    let mut acked = vec![last_seen];
    let (mut tx, mut rx) = sender.split();
    for n in 0..200 {
        tx.send(json!({"type": "send", "room_id": s.room, "body": format!("missed {n}")}))
            .await?;
    }
    let (_, acks) = collect(&mut rx, 0, 200).await?;
    acked.extend(acks.iter().filter_map(|a| a["seq"].as_u64()));
    // Keep sending while bob rejoins on the other agent.
    let room = s.room.clone();
    let live = tokio::spawn(async move {
        for n in 0..100 {
            tx.send(json!({"type": "send", "room_id": room, "body": format!("live {n}")}))
                .await?;
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let (_, acks) = collect(&mut rx, 0, 100).await?;
        anyhow::Ok(
            acks.iter()
                .filter_map(|a| a["seq"].as_u64())
                .collect::<Vec<_>>(),
        )
    });
    let mut b = WsClient::connect(&s.mesh.agent(0).ws(), &bob.token).await?;
    let joined = b.join(&s.room, Some(last_seen)).await?;
    ensure!(joined["recovered"] == true, "{joined}");
    acked.extend(live.await??);
    acked.sort_unstable();
    let mut got = Vec::new();
    while got.len() < 300 {
        got.push(b.recv_type("message").await?);
    }
    let seqs = check_chain(&got, last_seen)?;
    ensure!(
        seqs[..] == acked[1..],
        "rejoin delivered a different set than was acked"
    );
    let set: HashSet<u64> = seqs.iter().copied().collect();
    ensure!(set.len() == 300, "duplicates after rejoin");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn history_survives_a_restart_of_every_service() -> anyhow::Result<()> {
    let mut s = setup(1, 1).await?;
    let mut ws = WsClient::connect(&s.mesh.agent(0).ws(), &s.users[0].token).await?;
    ws.join(&s.room, None).await?;
    for n in 0..50 {
        ws.send(json!({"type": "send", "room_id": s.room, "body": format!("m{n}")}))
            .await?;
        ws.recv_type("ack").await?;
    }
    let before = history_when_complete(&s.api, &s.users[0], &s.room, 50).await?;
    ws.close().await;
    s.mesh.stop_all().await?;
    s.mesh.start_services().await?;
    s.mesh.start_agent().await?;
    let api = Api::new(s.mesh.agent(0).http());
    let after = api.all_messages(&s.users[0].token, &s.room).await?;
    ensure!(before == after, "history changed across the restart");
    // And the room carries on where it was.
    let mut ws = WsClient::connect(&s.mesh.agent(0).ws(), &s.users[0].token).await?;
    let joined = ws.join(&s.room, None).await?;
    ensure!(joined["last_seq"] == before[49]["seq"], "{joined}");
    ws.send(json!({"type": "send", "room_id": s.room, "body": "after restart"}))
        .await?;
    let m = ws.recv_type("message").await?;
    ensure!(m["prev_seq"] == before[49]["seq"], "{m}");
    s.mesh.stop_all().await?;
    Ok(())
}

/// `since` need not be a message of the room: the first replayed message still follows the
/// room's message before it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn since_from_another_room_still_replays_with_the_right_prev_seq() -> anyhow::Result<()> {
    let s = setup(1, 1).await?;
    let user = &s.users[0];
    let other_room = s.api.create_room(&user.token, "other").await?;
    let mut ws = WsClient::connect(&s.mesh.agent(0).ws(), &user.token).await?;
    let send = |room: &str, body: &str| json!({"type": "send", "room_id": room, "body": body, "client_msg_id": body});
    let mut seqs = Vec::new();
    for (room, body) in [(&s.room, "a"), (&other_room, "x"), (&s.room, "b")] {
        ws.send(send(room, body)).await?;
        seqs.push(ws.recv_type("ack").await?["seq"].as_u64().context("seq")?);
    }
    let joined = ws.join(&s.room, Some(seqs[1])).await?;
    ensure!(
        joined["last_seq"] == seqs[2] && joined["recovered"] == true,
        "{joined}"
    );
    let m = ws.recv_type("message").await?;
    ensure!(m["seq"] == seqs[2] && m["prev_seq"] == seqs[0], "{m}");
    Ok(())
}

/// A user with sockets on two agents stays online until the last one closes: the agent whose
/// socket closes first sees the other agent's presence entry and announces nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn presence_goes_offline_only_with_the_last_socket_on_any_agent() -> anyhow::Result<()> {
    let s = setup(2, 1).await?;
    let user = &s.users[0];
    let nats = s.mesh.client().await?;
    let mut events = nats.subscribe("dyschat.events.presence.*").await?;
    nats.flush().await?;
    let first = WsClient::connect(&s.mesh.agent(0).ws(), &user.token).await?;
    let second = WsClient::connect(&s.mesh.agent(1).ws(), &user.token).await?;
    // Each agent announces its first socket of the user.
    for _ in 0..2 {
        let e = next_presence(&mut events)
            .await
            .context("online announcement")?;
        ensure!(
            e["online"] == true && e["user_id"] == json!(user.user_id),
            "{e}"
        );
    }
    first.close().await;
    ensure!(
        next_presence(&mut events).await.is_none(),
        "went offline while a socket on the other agent is open"
    );
    second.close().await;
    let e = next_presence(&mut events)
        .await
        .context("offline announcement")?;
    ensure!(
        e["online"] == false && e["user_id"] == json!(user.user_id),
        "{e}"
    );
    Ok(())
}

/// The next presence event within 3 s.
async fn next_presence(events: &mut async_nats::Subscriber) -> Option<Value> {
    use futures::StreamExt;
    let message = tokio::time::timeout(Duration::from_secs(3), events.next())
        .await
        .ok()??;
    serde_json::from_slice(&message.payload).ok()
}

/// A join or leave over HTTP is announced to the room's sockets on every agent, the agent that
/// answered the join included (it knew the new membership before the event arrived).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn joins_and_leaves_over_http_are_announced_on_every_agent() -> anyhow::Result<()> {
    let s = setup(2, 2).await?;
    let (owner, newcomer) = (&s.users[0], &s.users[1]);
    let mut here = WsClient::connect(&s.mesh.agent(0).ws(), &owner.token).await?;
    let mut there = WsClient::connect(&s.mesh.agent(1).ws(), &owner.token).await?;
    here.join(&s.room, None).await?;
    there.join(&s.room, None).await?;
    // user1 joined in setup; it leaves and joins again through agent 0.
    let (status, body) = s.api.leave_room(&newcomer.token, &s.room).await?;
    ensure!(status == 200, "leave: {status} {body}");
    let (status, body) = s.api.join_room(&newcomer.token, &s.room).await?;
    ensure!(status == 200, "join: {status} {body}");
    for ws in [&mut here, &mut there] {
        let left = ws.recv_type("member_left").await?;
        ensure!(left["user_id"] == json!(newcomer.user_id), "{left}");
        let joined = ws.recv_type("member_joined").await?;
        ensure!(joined["user_id"] == json!(newcomer.user_id), "{joined}");
    }
    Ok(())
}
