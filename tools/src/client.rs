//! Bench clients: minted tokens, HTTP set-up calls and WebSocket connections from spread source
//! addresses.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::{bail, Context};
use futures::{SinkExt, StreamExt};
use serde_json::json;
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::WebSocketStream;

pub type Ws = WebSocketStream<TcpStream>;

/// Sockets per client source address: below the ~28k ephemeral ports one address has towards one
/// listening address.
const SOCKETS_PER_SOURCE: usize = 10_000;
static NEXT_SOURCE: AtomicUsize = AtomicUsize::new(0);

/// A user the bench made up: the token is signed with the mesh's (development) secret, so no
/// registration (and no argon2 hashing) is needed to have thousands of them.
#[derive(Debug, Clone)]
pub struct BenchUser {
    pub username: String,
    pub token: String,
}

impl BenchUser {
    pub fn mint(user_id: String, username: String) -> anyhow::Result<BenchUser> {
        let now = chrono::Utc::now().timestamp();
        let (token, _) = dyschat_runtime::token::issue(
            dyschat_runtime::config::DEV_AUTH_SECRET,
            &user_id,
            &username,
            now,
            24 * 3600,
        )?;
        Ok(BenchUser { username, token })
    }
}

/// The next client source address: 127.0.0.2, then .3 after [`SOCKETS_PER_SOURCE`] sockets, ...
fn next_source() -> Ipv4Addr {
    let n = NEXT_SOURCE.fetch_add(1, Ordering::Relaxed) / SOCKETS_PER_SOURCE;
    Ipv4Addr::new(127, 0, 0, 2 + (n % 250) as u8)
}

/// Opens an authenticated WebSocket (token in the URL) and waits for `ready`.
pub async fn connect(agent: SocketAddr, token: &str) -> anyhow::Result<Ws> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(next_source().into(), 0))?;
    let stream = socket.connect(agent).await?;
    stream.set_nodelay(true)?;
    let url = format!("ws://{agent}/ws?token={token}");
    let config = WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0);
    let (mut ws, _) = tokio::time::timeout(
        Duration::from_secs(30),
        tokio_tungstenite::client_async_with_config(url, stream, Some(config)),
    )
    .await
    .context("WebSocket handshake timed out")??;
    let ready = next_json(&mut ws).await?;
    if ready["type"] != "ready" {
        bail!("expected ready, got {ready}");
    }
    Ok(ws)
}

/// The next text frame as JSON (set-up only; the load path parses frames itself).
pub async fn next_json(ws: &mut Ws) -> anyhow::Result<serde_json::Value> {
    loop {
        let next = tokio::time::timeout(Duration::from_secs(30), ws.next())
            .await
            .context("timed out waiting for a frame")?;
        match next {
            Some(Ok(WsMessage::Text(t))) => return Ok(serde_json::from_str(&t)?),
            Some(Ok(WsMessage::Close(f))) => bail!("socket closed: {f:?}"),
            Some(Ok(_)) => continue,
            Some(Err(e)) => bail!("socket error: {e}"),
            None => bail!("socket ended"),
        }
    }
}

/// A socket of `token`'s user on `agent`, joined to `room`.
pub async fn joined(agent: std::net::SocketAddr, token: &str, room: &str) -> anyhow::Result<Ws> {
    let mut ws = connect(agent, token).await?;
    join(&mut ws, room).await?;
    Ok(ws)
}

/// Joins the socket to `room`; answers the `joined` frame.
pub async fn join(ws: &mut Ws, room: &str) -> anyhow::Result<serde_json::Value> {
    let join = serde_json::json!({"type": "join", "room_id": room});
    ws.send(WsMessage::Text(join.to_string().into())).await?;
    wait_for(ws, "joined").await
}

/// Reads frames until one of type `kind` (others, like the socket's own messages, are skipped).
pub async fn wait_for(ws: &mut Ws, kind: &str) -> anyhow::Result<serde_json::Value> {
    loop {
        let frame = next_json(ws).await?;
        match frame["type"].as_str() {
            Some(k) if k == kind => return Ok(frame),
            Some("error") => bail!("waiting for {kind}: {frame}"),
            _ => {}
        }
    }
}

/// HTTP calls for set-up: create rooms, join users.
#[derive(Clone)]
pub struct Http {
    http: reqwest::Client,
}

impl Http {
    pub fn new() -> Http {
        Http {
            http: reqwest::Client::builder()
                .pool_max_idle_per_host(64)
                .build()
                .unwrap_or_default(),
        }
    }

    pub async fn create_room(
        &self,
        base: &str,
        user: &BenchUser,
        name: &str,
    ) -> anyhow::Result<String> {
        let resp = self
            .http
            .post(format!("{base}/api/v1/rooms"))
            .bearer_auth(&user.token)
            .json(&json!({"name": name}))
            .send()
            .await?;
        let status = resp.status();
        let body: serde_json::Value = resp.json().await.unwrap_or_default();
        if status.as_u16() != 201 {
            bail!("create room: {status} {body}");
        }
        Ok(body["room_id"].as_str().context("room_id")?.to_string())
    }

    pub async fn join(&self, base: &str, user: &BenchUser, room_id: &str) -> anyhow::Result<()> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let resp = self
                .http
                .post(format!("{base}/api/v1/rooms/{room_id}/join"))
                .bearer_auth(&user.token)
                .send()
                .await?;
            let status = resp.status();
            if status.is_success() {
                return Ok(());
            }
            let body = resp.text().await.unwrap_or_default();
            if attempt >= 5 {
                bail!("join {room_id} as {}: {status} {body}", user.username);
            }
            tokio::time::sleep(Duration::from_millis(100 * attempt)).await;
        }
    }
}
