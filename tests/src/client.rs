//! Test clients speaking the contract: a small HTTP helper and a WebSocket client.

use std::time::Duration;

use anyhow::{bail, Context};
use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::{tungstenite::Message as WsMessage, MaybeTlsStream, WebSocketStream};

/// How long a test waits for one expected frame.
pub const FRAME_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Clone)]
pub struct Api {
    pub base: String,
    http: reqwest::Client,
}

/// A registered and logged-in user.
#[derive(Debug, Clone)]
pub struct LoggedIn {
    pub user_id: String,
    pub username: String,
    pub token: String,
}

/// A call that must answer `status`; returns the body.
pub async fn expect(
    api: &Api,
    user: &LoggedIn,
    method: &str,
    path: &str,
    body: Option<Value>,
    status: u16,
) -> anyhow::Result<Value> {
    let (got, answer) = api.call(method, path, Some(&user.token), body).await?;
    anyhow::ensure!(
        got == status,
        "{} {method} {path}: {got} {answer}, expected {status}",
        user.username
    );
    Ok(answer)
}

/// Creates a room with `visibility` (`public` or `private`); returns its id.
pub async fn create_room_with(
    api: &Api,
    owner: &LoggedIn,
    name: &str,
    visibility: &str,
) -> anyhow::Result<String> {
    let room = expect(
        api,
        owner,
        "POST",
        "/api/v1/rooms",
        Some(json!({"name": name, "visibility": visibility})),
        201,
    )
    .await?;
    anyhow::ensure!(room["visibility"] == visibility, "{room}");
    Ok(room["room_id"].as_str().context("room_id")?.to_string())
}

impl Api {
    pub fn new(base: impl Into<String>) -> Self {
        Api {
            base: base.into(),
            http: reqwest::Client::new(),
        }
    }

    /// Any request; returns the status and the JSON body (Null when empty or not JSON).
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> anyhow::Result<(u16, Value)> {
        let method = reqwest::Method::from_bytes(method.as_bytes())?;
        let mut req = self.http.request(method, format!("{}{}", self.base, path));
        if let Some(token) = token {
            req = req.header("Authorization", format!("Bearer {token}"));
        }
        if let Some(body) = body {
            req = req.json(&body);
        }
        let resp = req.send().await?;
        let status = resp.status().as_u16();
        let bytes = resp.bytes().await?;
        let value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Ok((status, value))
    }

    pub async fn register_and_login(&self, username: &str) -> anyhow::Result<LoggedIn> {
        let creds = json!({"username": username, "password": "correct horse"});
        let (status, body) = self
            .call("POST", "/api/v1/auth/register", None, Some(creds.clone()))
            .await?;
        if status != 201 {
            bail!("register {username}: {status} {body}");
        }
        let (status, body) = self
            .call("POST", "/api/v1/auth/login", None, Some(creds))
            .await?;
        if status != 200 {
            bail!("login {username}: {status} {body}");
        }
        Ok(LoggedIn {
            user_id: body["user_id"].as_str().context("user_id")?.to_string(),
            username: username.to_string(),
            token: body["token"].as_str().context("token")?.to_string(),
        })
    }

    pub async fn create_room(&self, token: &str, name: &str) -> anyhow::Result<String> {
        let (status, body) = self
            .call(
                "POST",
                "/api/v1/rooms",
                Some(token),
                Some(json!({"name": name})),
            )
            .await?;
        if status != 201 {
            bail!("create room: {status} {body}");
        }
        Ok(body["room_id"].as_str().context("room_id")?.to_string())
    }

    /// `POST /api/v1/rooms/{room_id}/join` as `token`'s user; the status and body, for the
    /// caller to check as its test needs.
    pub async fn join_room(&self, token: &str, room_id: &str) -> anyhow::Result<(u16, Value)> {
        self.call(
            "POST",
            &format!("/api/v1/rooms/{room_id}/join"),
            Some(token),
            None,
        )
        .await
    }

    /// `POST /api/v1/rooms/{room_id}/leave` as `token`'s user; the status and body.
    pub async fn leave_room(&self, token: &str, room_id: &str) -> anyhow::Result<(u16, Value)> {
        self.call(
            "POST",
            &format!("/api/v1/rooms/{room_id}/leave"),
            Some(token),
            None,
        )
        .await
    }

    /// The `seq`s of a room's history once it holds at least `count` messages (the writer may lag),
    /// or whatever it holds after `wait`.
    pub async fn history_seqs(
        &self,
        token: &str,
        room_id: &str,
        count: usize,
        wait: Duration,
    ) -> anyhow::Result<Vec<u64>> {
        let deadline = std::time::Instant::now() + wait;
        loop {
            let seqs: Vec<u64> = self
                .all_messages(token, room_id)
                .await?
                .iter()
                .filter_map(|m| m["seq"].as_u64())
                .collect();
            if seqs.len() >= count || std::time::Instant::now() >= deadline {
                return Ok(seqs);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Every message of a room through paged history (`after`), oldest first.
    pub async fn all_messages(&self, token: &str, room_id: &str) -> anyhow::Result<Vec<Value>> {
        let mut out = Vec::new();
        let mut after = 0u64;
        loop {
            let (status, body) = self
                .call(
                    "GET",
                    &format!("/api/v1/rooms/{room_id}/messages?after={after}&limit=100"),
                    Some(token),
                    None,
                )
                .await?;
            if status != 200 {
                bail!("history: {status} {body}");
            }
            let page = body["messages"].as_array().context("messages")?.clone();
            if let Some(last) = page.last() {
                after = last["seq"].as_u64().context("seq")?;
            }
            out.extend(page);
            if !body["has_more"].as_bool().unwrap_or(false) {
                return Ok(out);
            }
        }
    }
}

pub struct WsClient {
    stream: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

impl WsClient {
    /// Connects with the token in the URL and waits for `ready`.
    pub async fn connect(ws_url: &str, token: &str) -> anyhow::Result<WsClient> {
        let mut client = Self::connect_raw(&format!("{ws_url}?token={token}")).await?;
        let ready = client.recv().await?;
        if ready["type"] != "ready" {
            bail!("expected ready, got {ready}");
        }
        Ok(client)
    }

    /// Connects without authenticating.
    pub async fn connect_raw(url: &str) -> anyhow::Result<WsClient> {
        let (stream, _) = tokio_tungstenite::connect_async(url).await?;
        Ok(WsClient { stream })
    }

    pub async fn send(&mut self, value: Value) -> anyhow::Result<()> {
        self.send_text(value.to_string()).await
    }

    pub async fn send_text(&mut self, text: String) -> anyhow::Result<()> {
        self.stream.send(WsMessage::Text(text.into())).await?;
        Ok(())
    }

    /// The next JSON frame, failing on close or after [`FRAME_TIMEOUT`].
    pub async fn recv(&mut self) -> anyhow::Result<Value> {
        next_json(&mut self.stream, FRAME_TIMEOUT)
            .await?
            .context("timed out waiting for a frame")
    }

    /// The next JSON frame if one arrives within `wait`, `None` otherwise.
    pub async fn recv_within(&mut self, wait: Duration) -> anyhow::Result<Option<Value>> {
        next_json(&mut self.stream, wait).await
    }

    /// The next frame of type `kind`, skipping others (e.g. presence or member events).
    pub async fn recv_type(&mut self, kind: &str) -> anyhow::Result<Value> {
        loop {
            let frame = self.recv().await?;
            if frame["type"] == kind {
                return Ok(frame);
            }
        }
    }

    /// Sends a text frame the server is expected to refuse part-way; a connection reset before
    /// all of it was written (the server stopped reading, as it should) is not an error.
    pub async fn send_refused(&mut self, text: String) -> anyhow::Result<()> {
        match self.stream.send(WsMessage::Text(text.into())).await {
            Err(e) if !is_reset(&e) => Err(e.into()),
            _ => Ok(()),
        }
    }

    /// The close code, or `None` when the server reset the connection instead: a server that
    /// closes while the peer's unread bytes are still in its buffer resets the connection, and
    /// the peer's kernel then drops the close frame it had received.
    pub async fn recv_close_or_reset(&mut self) -> anyhow::Result<Option<u16>> {
        loop {
            let next = tokio::time::timeout(FRAME_TIMEOUT, self.stream.next())
                .await
                .context("timed out waiting for close")?;
            match next {
                Some(Ok(WsMessage::Close(Some(frame)))) => return Ok(Some(frame.code.into())),
                Some(Ok(WsMessage::Close(None))) => return Ok(Some(1005)),
                Some(Ok(_)) => continue,
                Some(Err(e)) if is_reset(&e) => return Ok(None),
                Some(Err(e)) => bail!("socket error before close: {e}"),
                None => bail!("socket ended without a close frame"),
            }
        }
    }

    pub async fn recv_close(&mut self) -> anyhow::Result<u16> {
        loop {
            let next = tokio::time::timeout(FRAME_TIMEOUT, self.stream.next())
                .await
                .context("timed out waiting for close")?;
            match next {
                Some(Ok(WsMessage::Close(Some(frame)))) => return Ok(frame.code.into()),
                Some(Ok(WsMessage::Close(None))) => return Ok(1005),
                Some(Ok(_)) => continue,
                Some(Err(e)) => bail!("socket error before close: {e}"),
                None => bail!("socket ended without a close frame"),
            }
        }
    }

    /// Joins a room and returns the `joined` frame.
    pub async fn join(&mut self, room_id: &str, since: Option<u64>) -> anyhow::Result<Value> {
        let mut frame = json!({"type": "join", "room_id": room_id});
        if let Some(since) = since {
            frame["since"] = json!(since);
        }
        self.send(frame).await?;
        self.recv_type("joined").await
    }

    pub async fn close(mut self) {
        let _ = self.stream.close(None).await;
    }
}

/// The writing half of a split [`WsClient`].
pub struct WsSender {
    sink: futures::stream::SplitSink<WebSocketStream<MaybeTlsStream<TcpStream>>, WsMessage>,
}

/// The reading half of a split [`WsClient`].
pub struct WsReceiver {
    stream: futures::stream::SplitStream<WebSocketStream<MaybeTlsStream<TcpStream>>>,
}

impl WsClient {
    pub fn split(self) -> (WsSender, WsReceiver) {
        let (sink, stream) = self.stream.split();
        (WsSender { sink }, WsReceiver { stream })
    }
}

impl WsSender {
    pub async fn send(&mut self, value: Value) -> anyhow::Result<()> {
        self.sink
            .send(WsMessage::Text(value.to_string().into()))
            .await?;
        Ok(())
    }
}

impl WsReceiver {
    pub async fn recv(&mut self) -> anyhow::Result<Value> {
        next_json(&mut self.stream, FRAME_TIMEOUT)
            .await?
            .context("timed out waiting for a frame")
    }
}

/// The next text frame within `wait` as JSON (`None` on timeout), skipping pings; a close, an
/// error or the end of the stream is an error.
async fn next_json<S>(stream: &mut S, wait: Duration) -> anyhow::Result<Option<Value>>
where
    S: futures::Stream<Item = Result<WsMessage, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    loop {
        let next = match tokio::time::timeout(wait, stream.next()).await {
            Ok(next) => next,
            Err(_) => return Ok(None),
        };
        match next {
            Some(Ok(WsMessage::Text(t))) => return Ok(Some(serde_json::from_str(&t)?)),
            Some(Ok(WsMessage::Close(frame))) => bail!("socket closed: {frame:?}"),
            Some(Ok(_)) => continue,
            Some(Err(e)) => bail!("socket error: {e}"),
            None => bail!("socket ended"),
        }
    }
}

/// Whether a WebSocket error is the connection reset by the peer (by its kind, not its text).
fn is_reset(e: &tokio_tungstenite::tungstenite::Error) -> bool {
    use tokio_tungstenite::tungstenite::error::{Error, ProtocolError};
    match e {
        Error::Io(io) => matches!(
            io.kind(),
            std::io::ErrorKind::ConnectionReset
                | std::io::ErrorKind::BrokenPipe
                | std::io::ErrorKind::ConnectionAborted
        ),
        Error::Protocol(ProtocolError::ResetWithoutClosingHandshake) => true,
        _ => false,
    }
}
