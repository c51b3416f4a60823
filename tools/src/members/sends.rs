//! The send of the members scenario: each room's owner on a WebSocket of an agent, one message at
//! a time to its `ack`, the two rooms interleaved.

use std::time::Instant;

use anyhow::{bail, ensure};
use futures::SinkExt;
use hdrhistogram::Histogram;
use tokio_tungstenite::tungstenite::Message as WsMessage;

use super::{order, MembersSpec};
use crate::client::{self, BenchUser};
use crate::env::Env;
use crate::stats;

/// Sends per room before measuring (the agent's membership cache fills on the first).
const WARM_UP_SENDS: usize = 5;

/// Each owner's socket joins its room, then sends one message at a time, to its ack.
pub(super) async fn measure(
    env: &Env,
    owners: &[BenchUser; 2],
    rooms: [&String; 2],
    spec: &MembersSpec,
) -> anyhow::Result<[Histogram<u64>; 2]> {
    let agent = env.ws_addr(0);
    let mut sockets = Vec::new();
    for (owner, room) in owners.iter().zip(rooms) {
        let mut ws = client::connect(agent, &owner.token).await?;
        let join = serde_json::json!({"type": "join", "room_id": room});
        ws.send(WsMessage::Text(join.to_string().into())).await?;
        wait_for(&mut ws, "joined").await?;
        sockets.push(ws);
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
        }
    }
    for mut ws in sockets {
        let _ = ws.close(None).await;
    }
    Ok(sent)
}

/// Reads frames until one of type `kind` (others, like the socket's own messages, are skipped).
async fn wait_for(ws: &mut client::Ws, kind: &str) -> anyhow::Result<serde_json::Value> {
    loop {
        let frame = client::next_json(ws).await?;
        match frame["type"].as_str() {
            Some(k) if k == kind => return Ok(frame),
            Some("error") => bail!("waiting for {kind}: {frame}"),
            _ => {}
        }
    }
}
