//! "Nothing bad gets in": rate limits, login throttling, socket bounds, the WebSocket Origin
//! allow-list and CORS, subject injection, and NATS/Redis credentials, against the real mesh.
//!
//! One test target (`cargo test --test security`) split by theme; this file holds the helpers.

mod connections;
mod credentials;
mod injection;
mod limits;
mod nats_users;
mod origins;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use dyschat_runtime::{config::DEV_AUTH_SECRET, connect, Env};
use dyschat_tests::client::{Api, LoggedIn, WsClient};
use dyschat_tests::mesh::Mesh;
use dyschat_tests::{wait_until, NatsServer, RedisServer};
use futures::StreamExt;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::{
    client::IntoClientRequest, http::HeaderValue, Error as WsError, Message as WsMessage,
};

const PROD_SECRET: &str = "a-production-secret-of-at-least-32-bytes!";

fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// A raw HTTP call that also returns the `Retry-After` header.
async fn call(
    base: &str,
    method: reqwest::Method,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> anyhow::Result<(u16, Option<String>, Value)> {
    let mut req = reqwest::Client::new().request(method, format!("{base}{path}"));
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    if let Some(body) = body {
        req = req.json(&body);
    }
    let resp = req.send().await?;
    let status = resp.status().as_u16();
    let retry_after = resp
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(String::from);
    let body = serde_json::from_slice(&resp.bytes().await?).unwrap_or(Value::Null);
    Ok((status, retry_after, body))
}

/// Checks a 429 answer: code, `retry_after_ms` within `(0, max_ms]` and a matching header.
fn ensure_429(
    what: &str,
    (status, retry_after, body): &(u16, Option<String>, Value),
    max_ms: u64,
) -> anyhow::Result<u64> {
    ensure!(*status == 429, "{what}: {status} {body}");
    ensure!(body["error"]["code"] == "rate_limited", "{what}: {body}");
    ensure!(body["error"]["message"].is_string(), "{what}: {body}");
    let ms = body["error"]["retry_after_ms"]
        .as_u64()
        .with_context(|| format!("{what}: no retry_after_ms in {body}"))?;
    ensure!(ms > 0 && ms <= max_ms, "{what}: retry_after_ms {ms}");
    let secs: u64 = retry_after
        .as_deref()
        .with_context(|| format!("{what}: no Retry-After header"))?
        .parse()?;
    ensure!(
        secs == ms.div_ceil(1000).max(1),
        "{what}: Retry-After {secs} vs {ms} ms"
    );
    Ok(ms)
}

/// Opens `/ws` with optional headers; `Err((status, body))` when the upgrade is refused.
async fn ws_open(
    url: &str,
    origin: Option<&str>,
) -> anyhow::Result<Result<WsClientRaw, (u16, Value)>> {
    let mut request = url.into_client_request()?;
    if let Some(origin) = origin {
        request
            .headers_mut()
            .insert("Origin", HeaderValue::from_str(origin)?);
    }
    match tokio_tungstenite::connect_async(request).await {
        Ok((stream, _)) => Ok(Ok(WsClientRaw { stream })),
        Err(WsError::Http(response)) => {
            let body = response
                .body()
                .as_deref()
                .and_then(|b| serde_json::from_slice(b).ok())
                .unwrap_or(Value::Null);
            Ok(Err((response.status().as_u16(), body)))
        }
        Err(e) => Err(e.into()),
    }
}

struct WsClientRaw {
    stream: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
}

impl WsClientRaw {
    async fn recv(&mut self) -> anyhow::Result<Value> {
        loop {
            match tokio::time::timeout(Duration::from_secs(10), self.stream.next()).await? {
                Some(Ok(WsMessage::Text(t))) => return Ok(serde_json::from_str(&t)?),
                Some(Ok(WsMessage::Close(frame))) => bail!("closed: {frame:?}"),
                Some(Ok(_)) => continue,
                Some(Err(e)) => bail!("socket error: {e}"),
                None => bail!("socket ended"),
            }
        }
    }

    async fn expect_ready(&mut self) -> anyhow::Result<()> {
        let frame = self.recv().await?;
        ensure!(frame["type"] == "ready", "expected ready, got {frame}");
        Ok(())
    }
}

async fn member_room(api: &Api, owner: &LoggedIn, others: &[&LoggedIn]) -> anyhow::Result<String> {
    let room = api.create_room(&owner.token, "security").await?;
    for user in others {
        let (status, body) = api.join_room(&user.token, &room).await?;
        ensure!(status == 200, "join: {status} {body}");
    }
    Ok(room)
}
