//! Contract sections 5, 6 and 9 (`GET /api/v1/users`, `GET /api/v1/rooms?q=`) at the agents'
//! edge, against real servers and the whole mesh: who gets 403 and who 404 on every route and
//! frame the agents decide, kicks, bans and deletions stopping every frame of the room on every
//! agent from the moment they are answered, `GET /api/v1/me/rooms` with exact unread counts, read markers (section 8),
//! direct rooms used like any room, and the user directory.

mod changes;
mod deletion;
mod eviction;
mod feed;
mod matrix;
mod read;
mod receipts;
mod summaries;

use anyhow::{ensure, Context};
use dyschat_tests::client::{create_room_with as create, expect, Api, LoggedIn, WsClient};
use dyschat_tests::mesh::Mesh;
use serde_json::{json, Value};

/// A mesh of `agents` agents and an API client on each.
struct Setup {
    mesh: Mesh,
    apis: Vec<Api>,
}

impl Setup {
    async fn start(agents: usize) -> anyhow::Result<Setup> {
        let mesh = Mesh::start(agents).await?;
        let apis = (0..agents)
            .map(|i| Api::new(mesh.agent(i).http()))
            .collect();
        Ok(Setup { mesh, apis })
    }

    fn api(&self) -> &Api {
        &self.apis[0]
    }

    async fn user(&self, name: &str) -> anyhow::Result<LoggedIn> {
        self.api().register_and_login(name).await
    }

    async fn ws(&self, agent: usize, user: &LoggedIn) -> anyhow::Result<WsClient> {
        WsClient::connect(&self.mesh.agent(agent).ws(), &user.token).await
    }

    async fn stop(mut self) -> anyhow::Result<()> {
        self.mesh.stop_all().await
    }
}

/// A room frame's answer: the frame itself, or (`typing`, which answers nothing) the `pong` of a
/// `ping` sent after it, unless an error came first.
async fn frame_answer(socket: &mut WsClient, frame: Value) -> anyhow::Result<Value> {
    socket.send(frame).await?;
    socket.send(json!({"type": "ping", "ref": "after"})).await?;
    loop {
        let answer = socket.recv().await?;
        match answer["type"].as_str() {
            Some("error" | "history" | "ack" | "joined" | "pong") => {
                if answer["type"] != "pong" {
                    // Drain the pong of this exchange.
                    socket.recv_type("pong").await?;
                }
                return Ok(answer);
            }
            _ => continue,
        }
    }
}
