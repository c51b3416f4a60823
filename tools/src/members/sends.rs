//! The send of the members scenario: each room's owner on a WebSocket of an agent, one message at
//! a time to its `ack`, the two rooms interleaved, while members of each room are connected over
//! every agent and joined (so a send of the big room fans out to real sockets). Every connected
//! member must receive every message of its room: loss is counted, not assumed.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::ensure;
use futures::SinkExt;
use hdrhistogram::Histogram;
use tokio_tungstenite::tungstenite::Message as WsMessage;

use super::{order, MembersSpec};
use crate::client::{self, joined, wait_for, BenchUser};
use crate::env::Env;
use crate::fill::member_id;
use crate::stats;

/// Sends per room before measuring (the agent's membership cache fills on the first).
const WARM_UP_SENDS: usize = 5;

/// How long a connected member may take to receive the last message after it was acked.
const DELIVERY_WAIT: Duration = Duration::from_secs(30);

/// Each owner's socket joins its room, then sends one message at a time, to its ack; meanwhile
/// `spec.connected` members of the big room (and as many of the small room as it has) receive.
/// The next send waits until every connected member got the previous message: the send is
/// measured in a room with sockets to deliver to, not against the previous message's fan-out
/// still running on the same two cores (the fan-out scenario measures that). Answers the send
/// latencies and how many sockets received every message.
pub(super) async fn measure(
    env: &Env,
    owners: &[BenchUser; 2],
    rooms: [&String; 2],
    spec: &MembersSpec,
) -> anyhow::Result<([Histogram<u64>; 2], usize)> {
    let expected = WARM_UP_SENDS + spec.samples;
    let delivered: Arc<[AtomicUsize; 2]> = Arc::new([AtomicUsize::new(0), AtomicUsize::new(0)]);
    let mut per_side = [0usize; 2];
    let mut members = Vec::new();
    for (side, (r, n)) in [('b', spec.big), ('s', spec.small)].into_iter().enumerate() {
        for i in 1..=spec.connected.min(n - 1) {
            let user = member_id(&spec.tag, r, i);
            let user = BenchUser::mint(user.clone(), user)?;
            members.push((
                env.ws_addr(i % env.agents.len()),
                user.token,
                rooms[side].clone(),
                side,
            ));
            per_side[side] += 1;
        }
    }
    let listeners = listen(members, expected, delivered.clone()).await?;
    let agent = env.ws_addr(0);
    let mut sockets = Vec::new();
    for (owner, room) in owners.iter().zip(rooms) {
        sockets.push(joined(agent, &owner.token, room).await?);
    }
    let mut sent = [stats::histogram(), stats::histogram()];
    for k in 0..WARM_UP_SENDS + spec.samples {
        for side in order(k) {
            let id = format!("{}s{side}n{k}", spec.tag);
            let frame = serde_json::json!({
                "type": "send", "room_id": rooms[side], "body": "x", "client_msg_id": id,
            });
            let t = Instant::now();
            sockets[side]
                .send(WsMessage::Text(frame.to_string().into()))
                .await?;
            let ack = wait_for(&mut sockets[side], "ack").await?;
            ensure!(
                ack["client_msg_id"] == id.as_str(),
                "ack of another send: {ack}"
            );
            if k >= WARM_UP_SENDS {
                stats::record(&mut sent[side], t.elapsed());
            }
            let all = (k + 1) * per_side[side];
            let waited = Instant::now();
            while delivered[side].load(Ordering::Relaxed) < all {
                ensure!(
                    waited.elapsed() < DELIVERY_WAIT,
                    "message {k} not delivered to every connected member"
                );
                tokio::time::sleep(Duration::from_micros(200)).await;
            }
        }
    }
    for mut ws in sockets {
        let _ = ws.close(None).await;
    }
    let connected = per_side[0] + per_side[1];
    let received = listeners
        .await
        .map_err(|_| anyhow::anyhow!("the listeners' thread ended early"))??;
    for got in received {
        ensure!(
            got == expected,
            "a connected member received {got} of {expected} messages"
        );
    }
    Ok((sent, connected))
}

/// The members' sockets on a runtime of their own, in a thread of their own: reading their
/// deliveries must not put the owners' acks behind hundreds of reads in one runtime's queue
/// (the OS shares the cores between the two instead). Answers once every socket has joined;
/// the returned receiver gives each socket's count of messages when all are done.
async fn listen(
    members: Vec<(std::net::SocketAddr, String, String, usize)>,
    expected: usize,
    delivered: Arc<[AtomicUsize; 2]>,
) -> anyhow::Result<tokio::sync::oneshot::Receiver<anyhow::Result<Vec<usize>>>> {
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel::<anyhow::Result<()>>();
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("members-listeners".into())
        .spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(r) => r,
                Err(e) => {
                    let _ = ready_tx.send(Err(e.into()));
                    return;
                }
            };
            runtime.block_on(async move {
                let mut tasks = Vec::new();
                for (agent, token, room, side) in members {
                    match joined(agent, &token, &room).await {
                        Ok(ws) => {
                            tasks.push(tokio::spawn(receive(ws, expected, delivered.clone(), side)))
                        }
                        Err(e) => {
                            let _ = ready_tx.send(Err(e));
                            return;
                        }
                    }
                }
                let _ = ready_tx.send(Ok(()));
                let mut counts = Vec::with_capacity(tasks.len());
                for task in tasks {
                    match task.await {
                        Ok(Ok(n)) => counts.push(n),
                        Ok(Err(e)) => return drop(done_tx.send(Err(e))),
                        Err(e) => return drop(done_tx.send(Err(e.into()))),
                    }
                }
                let _ = done_tx.send(Ok(counts));
            });
        })?;
    ready_rx
        .await
        .map_err(|_| anyhow::anyhow!("the listeners' thread ended early"))??;
    Ok(done_rx)
}

/// Counts the messages a connected member receives until it has `expected` (each once, in
/// order) or none comes for [`DELIVERY_WAIT`].
async fn receive(
    mut ws: client::Ws,
    expected: usize,
    delivered: Arc<[AtomicUsize; 2]>,
    side: usize,
) -> anyhow::Result<usize> {
    let (mut got, mut last_seq) = (0, 0u64);
    while got < expected {
        let frame = match tokio::time::timeout(DELIVERY_WAIT, wait_for(&mut ws, "message")).await {
            Ok(frame) => frame?,
            Err(_) => break,
        };
        let seq = frame["seq"].as_u64().unwrap_or(0);
        ensure!(seq > last_seq, "message {seq} after {last_seq}");
        last_seq = seq;
        got += 1;
        delivered[side].fetch_add(1, Ordering::Relaxed);
    }
    let _ = ws.close(None).await;
    Ok(got)
}
