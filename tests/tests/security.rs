//! "Nothing bad gets in": rate limits, login throttling, socket bounds, the WebSocket Origin
//! allow-list and CORS, subject injection, and NATS/Redis credentials, against the real mesh.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use dyschat_shared::{config::DEV_AUTH_SECRET, connect, Config};
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
        let (status, body) = api
            .call(
                "POST",
                &format!("/api/v1/rooms/{room}/join"),
                Some(&user.token),
                None,
            )
            .await?;
        ensure!(status == 200, "join: {status} {body}");
    }
    Ok(room)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sends_over_the_rate_are_refused_on_websocket_and_http() -> anyhow::Result<()> {
    // Three at once, then one every two seconds.
    let mesh = Mesh::start_with(
        1,
        vars(&[
            ("DYSCHAT_SEND_RATE_PER_SEC", "0.5"),
            ("DYSCHAT_SEND_BURST", "3"),
        ]),
    )
    .await?;
    let base = mesh.agent(0).http();
    let api = Api::new(base.clone());
    let alice = api.register_and_login("alice").await?;
    let bob = api.register_and_login("bobby").await?;
    let room = member_room(&api, &alice, &[&bob]).await?;

    let mut ws = WsClient::connect(&mesh.agent(0).ws(), &alice.token).await?;
    ws.join(&room, None).await?;
    for n in 0..4 {
        ws.send(json!({"type": "send", "room_id": room, "body": format!("m{n}"), "ref": format!("r{n}")}))
            .await?;
    }
    let (mut acks, mut refused) = (0, Vec::new());
    while acks + refused.len() < 4 {
        let frame = ws.recv().await?;
        match frame["type"].as_str() {
            Some("ack") => acks += 1,
            Some("error") => refused.push(frame),
            _ => {}
        }
    }
    ensure!(acks == 3 && refused.len() == 1, "{acks} acks, {refused:?}");
    let err = &refused[0];
    ensure!(err["code"] == "rate_limited" && err["ref"] == "r3", "{err}");
    let ms = err["retry_after_ms"].as_u64().context("retry_after_ms")?;
    ensure!(ms > 0 && ms <= 2000, "{err}");

    // The same user over HTTP shares the bucket.
    let path = format!("/api/v1/rooms/{room}/messages");
    let post = |token: String, body: &'static str| {
        let (base, path) = (base.clone(), path.clone());
        async move {
            call(
                &base,
                reqwest::Method::POST,
                &path,
                Some(&token),
                Some(json!({"body": body})),
            )
            .await
        }
    };
    let answer = post(alice.token.clone(), "over http").await?;
    let ms = ensure_429("http send", &answer, 2000)?;
    // Another user is not affected.
    let (status, _, body) = post(bob.token.clone(), "bob speaks").await?;
    ensure!(status == 201, "bob: {status} {body}");
    // After the advertised wait, alice may send again.
    tokio::time::sleep(Duration::from_millis(ms + 50)).await;
    let (status, _, body) = post(alice.token.clone(), "later").await?;
    ensure!(status == 201, "after waiting: {status} {body}");
    Ok(())
}

async fn auth_request(
    nc: &async_nats::Client,
    op: &str,
    user: &str,
    pw: &str,
) -> anyhow::Result<Value> {
    let payload = json!({"username": user, "password": pw}).to_string();
    let reply = nc
        .request(format!("dyschat.auth.{op}"), payload.into())
        .await?;
    Ok(serde_json::from_slice(&reply.payload)?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn logins_are_throttled_per_address_and_per_username() -> anyhow::Result<()> {
    let mesh = Mesh::start_with(1, vars(&[("DYSCHAT_LOGIN_ATTEMPTS_PER_MIN", "3")])).await?;
    let base = mesh.agent(0).http();
    let creds = |u: &str, p: &str| Some(json!({"username": u, "password": p}));
    let post = reqwest::Method::POST;

    // Per address (at the agent): register and login attempts share 3 a minute.
    let (status, _, body) = call(
        &base,
        post.clone(),
        "/api/v1/auth/register",
        None,
        creds("alice", "password1"),
    )
    .await?;
    ensure!(status == 201, "{status} {body}");
    let (status, _, body) = call(
        &base,
        post.clone(),
        "/api/v1/auth/login",
        None,
        creds("alice", "password1"),
    )
    .await?;
    ensure!(status == 200, "{status} {body}");
    let (status, _, body) = call(
        &base,
        post.clone(),
        "/api/v1/auth/login",
        None,
        creds("alice", "wrong-one"),
    )
    .await?;
    ensure!(status == 401, "{status} {body}");
    let answer = call(
        &base,
        post.clone(),
        "/api/v1/auth/login",
        None,
        creds("alice", "password1"),
    )
    .await?;
    ensure_429("login from a busy address", &answer, 20_000)?;
    let answer = call(
        &base,
        post.clone(),
        "/api/v1/auth/register",
        None,
        creds("carol", "password1"),
    )
    .await?;
    ensure_429("register from a busy address", &answer, 20_000)?;

    // Per username (in auth, whatever the address): 3 failures, then 429 even for the right
    // password, for any case of the name, while other names are unaffected.
    let nc = async_nats::connect(mesh.nats.url()).await?;
    let reply = auth_request(&nc, "register", "bobby", "password1").await?;
    ensure!(reply["ok"]["username"] == "bobby", "{reply}");
    for _ in 0..3 {
        let reply = auth_request(&nc, "login", "bobby", "bad-password").await?;
        ensure!(reply["error"]["code"] == "unauthorized", "{reply}");
    }
    for (name, pw) in [
        ("bobby", "bad-password"),
        ("bobby", "password1"),
        ("BOBBY", "password1"),
    ] {
        let reply = auth_request(&nc, "login", name, pw).await?;
        ensure!(reply["error"]["code"] == "rate_limited", "{name}: {reply}");
        let ms = reply["error"]["retry_after_ms"]
            .as_u64()
            .context("retry_after_ms")?;
        ensure!(ms > 0 && ms <= 20_000, "{reply}");
    }
    // Unknown names are throttled the same way, so a 429 does not tell which names exist.
    for n in 0..4 {
        let reply = auth_request(&nc, "login", "nobody-here", "bad-password").await?;
        let expected = if n < 3 {
            "unauthorized"
        } else {
            "rate_limited"
        };
        ensure!(reply["error"]["code"] == expected, "attempt {n}: {reply}");
    }
    let reply = auth_request(&nc, "login", "alice", "password1").await?;
    ensure!(reply["ok"]["token"].is_string(), "{reply}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sockets_per_user_are_bounded() -> anyhow::Result<()> {
    let mesh = Mesh::start_with(1, vars(&[("DYSCHAT_MAX_SOCKETS_PER_USER", "2")])).await?;
    let api = Api::new(mesh.agent(0).http());
    let alice = api.register_and_login("alice").await?;
    let bob = api.register_and_login("bobby").await?;
    let ws = mesh.agent(0).ws();
    let with_token = format!("{ws}?token={}", alice.token);

    let first = WsClient::connect(&ws, &alice.token).await?;
    let _second = WsClient::connect(&ws, &alice.token).await?;
    // A third with the token in the URL is refused before the upgrade.
    match ws_open(&with_token, None).await? {
        Err((429, body)) => {
            ensure!(body["error"]["code"] == "rate_limited", "{body}");
            ensure!(body["error"]["retry_after_ms"].as_u64() > Some(0), "{body}");
        }
        Err(other) => bail!("third socket: {other:?}"),
        Ok(_) => bail!("a third socket was upgraded"),
    }
    // A third that authenticates by frame gets an error and close 1008.
    let mut late = WsClient::connect_raw(&ws).await?;
    late.send(json!({"type": "auth", "token": alice.token, "ref": "a"}))
        .await?;
    let frame = late.recv().await?;
    ensure!(
        frame["type"] == "error" && frame["code"] == "rate_limited" && frame["ref"] == "a",
        "{frame}"
    );
    ensure!(late.recv_close().await? == 1008, "close code");
    // Other users are not affected (and dev admits any Origin).
    let mut other = ws_open(
        &format!("{ws}?token={}", bob.token),
        Some("https://anywhere.example"),
    )
    .await?
    .map_err(|e| anyhow::anyhow!("bob refused: {e:?}"))?;
    other.expect_ready().await?;
    // Closing one frees a slot.
    first.close().await;
    wait_until(Duration::from_secs(5), "a freed socket slot", || {
        let url = with_token.clone();
        async move { matches!(ws_open(&url, None).await, Ok(Ok(_))) }
    })
    .await?;
    Ok(())
}

/// Percent-encodes a path segment.
fn encode(segment: &str) -> String {
    segment
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ids_that_could_inject_subjects_never_reach_nats() -> anyhow::Result<()> {
    let mesh = Mesh::start(1).await?;
    let base = mesh.agent(0).http();
    let api = Api::new(base.clone());
    let user = api.register_and_login("alice").await?;
    let room = api.create_room(&user.token, "real").await?;
    let mut ws = WsClient::connect(&mesh.agent(0).ws(), &user.token).await?;
    ws.join(&room, None).await?;

    // Everything published from now on, subjects and payloads.
    let nc = async_nats::connect(mesh.nats.url()).await?;
    let mut all = nc.subscribe(">").await?;
    nc.flush().await?;
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let sink = seen.clone();
    let monitor = tokio::spawn(async move {
        while let Some(m) = all.next().await {
            let line = format!("{} {}", m.subject, String::from_utf8_lossy(&m.payload));
            sink.lock().unwrap_or_else(|p| p.into_inner()).push(line);
        }
    });

    let long = format!("inj3ct{}", "z".repeat(59));
    let bad = [
        "inj3ct.a", "inj3ct*", "inj3ct>", "inj3ct a", "inj3ct.>", "inj3ct\t", &long, "*", ">",
        "a.b",
    ];
    let get = reqwest::Method::GET;
    let post = reqwest::Method::POST;
    for id in bad {
        let r = encode(id);
        for (method, path, body) in [
            (get.clone(), format!("/api/v1/rooms/{r}"), None),
            (post.clone(), format!("/api/v1/rooms/{r}/join"), None),
            (post.clone(), format!("/api/v1/rooms/{r}/leave"), None),
            (get.clone(), format!("/api/v1/rooms/{r}/members"), None),
            (get.clone(), format!("/api/v1/rooms/{r}/messages"), None),
            (
                post.clone(),
                format!("/api/v1/rooms/{r}/messages"),
                Some(json!({"body": "x"})),
            ),
            (get.clone(), format!("/api/v1/rooms?cursor={r}"), None),
        ] {
            let (status, _, b) =
                call(&base, method.clone(), &path, Some(&user.token), body).await?;
            ensure!(
                status == 400 || status == 404,
                "{method} {path}: {status} {b}"
            );
            ensure!(
                b["error"]["code"] == "bad_request" || b["error"]["code"] == "not_found",
                "{path}: {b}"
            );
        }
        for frame in [
            json!({"type": "join", "room_id": id}),
            json!({"type": "leave", "room_id": id}),
            json!({"type": "send", "room_id": id, "body": "x"}),
            json!({"type": "typing", "room_id": id}),
            json!({"type": "history", "room_id": id}),
            json!({"type": "send", "room_id": room, "body": "x", "client_msg_id": id}),
        ] {
            let mut frame = frame;
            frame["ref"] = json!("inj");
            ws.send(frame.clone()).await?;
            let answer = ws.recv_type("error").await?;
            ensure!(
                answer["code"] == "bad_request" && answer["ref"] == "inj",
                "{frame}: {answer}"
            );
        }
    }
    // The socket is still usable, and the monitor does see what a valid send publishes.
    ws.send(json!({"type": "send", "room_id": room, "body": "monitorcheck"}))
        .await?;
    ws.recv_type("ack").await?;
    wait_until(
        Duration::from_secs(5),
        "the monitor to see the valid send",
        || {
            let seen = seen.clone();
            async move {
                seen.lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .iter()
                    .any(|l| l.contains("monitorcheck"))
            }
        },
    )
    .await?;
    monitor.abort();
    let seen = seen.lock().unwrap_or_else(|p| p.into_inner());
    let leaked: Vec<&String> = seen.iter().filter(|l| l.contains("inj3ct")).collect();
    ensure!(leaked.is_empty(), "reached NATS: {leaked:?}");
    Ok(())
}

fn prod_vars(origins: &str) -> Vec<(String, String)> {
    vars(&[
        ("DYSCHAT_ENV_MODE", "prod"),
        ("DYSCHAT_AUTH_SECRET", PROD_SECRET),
        ("DYSCHAT_ALLOWED_ORIGINS", origins),
    ])
}

/// The `Access-Control-Allow-Origin` a preflight from `origin` gets.
async fn preflight(base: &str, origin: &str) -> anyhow::Result<Option<String>> {
    let resp = reqwest::Client::new()
        .request(reqwest::Method::OPTIONS, format!("{base}/api/v1/rooms"))
        .header("Origin", origin)
        .header("Access-Control-Request-Method", "POST")
        .header(
            "Access-Control-Request-Headers",
            "authorization,content-type",
        )
        .send()
        .await?;
    Ok(resp
        .headers()
        .get("access-control-allow-origin")
        .and_then(|v| v.to_str().ok())
        .map(String::from))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn prod_admits_only_listed_origins_and_never_a_cors_wildcard() -> anyhow::Result<()> {
    const ALLOWED: &str = "https://chat.example.com";
    let mesh = Mesh::start_with(1, prod_vars(ALLOWED)).await?;
    let base = mesh.agent(0).http();
    let api = Api::new(base.clone());
    let user = api.register_and_login("alice").await?;
    let url = format!("{}?token={}", mesh.agent(0).ws(), user.token);
    let same_origin = base.clone();

    for refused in [
        "https://evil.example",
        "null",
        same_origin.as_str(),
        "https://chat.example.com.evil.example",
    ] {
        match ws_open(&url, Some(refused)).await? {
            Err((403, body)) => ensure!(body["error"]["code"] == "forbidden", "{refused}: {body}"),
            Err(other) => bail!("{refused}: {other:?}"),
            Ok(_) => bail!("{refused} was admitted"),
        }
    }
    for admitted in [Some(ALLOWED), Some("https://Chat.Example.com"), None] {
        let mut ws = ws_open(&url, admitted)
            .await?
            .map_err(|e| anyhow::anyhow!("{admitted:?} refused: {e:?}"))?;
        ws.expect_ready().await?;
    }
    // An auth-frame socket is checked before it can authenticate.
    ensure!(
        matches!(
            ws_open(&mesh.agent(0).ws(), Some("https://evil.example")).await?,
            Err((403, _))
        ),
        "auth-frame socket from a foreign origin"
    );

    ensure!(
        preflight(&base, ALLOWED).await?.as_deref() == Some(ALLOWED),
        "allowed preflight"
    );
    ensure!(
        preflight(&base, "https://evil.example").await?.is_none(),
        "foreign preflight"
    );
    let resp = reqwest::Client::new()
        .get(format!("{base}/api/v1/me"))
        .bearer_auth(&user.token)
        .header("Origin", ALLOWED)
        .send()
        .await?;
    let acao = resp.headers().get("access-control-allow-origin").cloned();
    ensure!(
        acao.as_ref().and_then(|v| v.to_str().ok()) == Some(ALLOWED),
        "{acao:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn prod_without_a_list_is_same_origin_only() -> anyhow::Result<()> {
    let mesh = Mesh::start_with(1, prod_vars("")).await?;
    let base = mesh.agent(0).http();
    let api = Api::new(base.clone());
    let user = api.register_and_login("alice").await?;
    let url = format!("{}?token={}", mesh.agent(0).ws(), user.token);

    let mut ws = ws_open(&url, Some(&base))
        .await?
        .map_err(|e| anyhow::anyhow!("same origin refused: {e:?}"))?;
    ws.expect_ready().await?;
    ensure!(
        matches!(
            ws_open(&url, Some("https://evil.example")).await?,
            Err((403, _))
        ),
        "foreign origin admitted"
    );
    for origin in [base.as_str(), "https://evil.example"] {
        ensure!(
            preflight(&base, origin).await?.is_none(),
            "CORS answered {origin}"
        );
    }
    ensure!(
        dyschat_ws_agent::http::origin::cors(&mesh.config).is_none(),
        "prod CORS layer without a list"
    );
    Ok(())
}

#[test]
fn prod_configuration_refuses_the_dev_secret() {
    let err = Config::from_iter(vars(&[
        ("DYSCHAT_ENV_MODE", "prod"),
        ("DYSCHAT_AUTH_SECRET", DEV_AUTH_SECRET),
    ]))
    .expect_err("dev secret accepted in prod")
    .to_string();
    assert!(err.contains("DYSCHAT_AUTH_SECRET"), "{err}");
    assert!(Config::from_iter(vars(&[("DYSCHAT_ENV_MODE", "prod")])).is_err());
    let err = Config::from_iter(vars(&[("DYSCHAT_ALLOWED_ORIGINS", "*")]))
        .expect_err("a wildcard origin accepted")
        .to_string();
    assert!(err.contains("DYSCHAT_ALLOWED_ORIGINS"), "{err}");
}

fn connect_config(
    nats: &NatsServer,
    redis: &RedisServer,
    extra: &[(&str, &str)],
) -> anyhow::Result<Config> {
    let mut pairs = vars(&[
        ("DYSCHAT_NATS_URL", &nats.url()),
        ("DYSCHAT_REDIS_ADDR", &redis.addr()),
        ("DYSCHAT_CONNECT_TIMEOUT_SECS", "3"),
    ]);
    pairs.extend(vars(extra));
    Ok(Config::from_iter(pairs)?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_authenticate_to_nats_and_redis() -> anyhow::Result<()> {
    let nats = NatsServer::start_with_args(&["--user", "svc", "--pass", "s3cret-pw"]).await?;
    let redis = RedisServer::start_with_args(&["--requirepass", "redis-pw"]).await?;
    let cfg = |extra: &[(&str, &str)]| connect_config(&nats, &redis, extra);

    let good = cfg(&[
        ("DYSCHAT_NATS_USER", "svc"),
        ("DYSCHAT_NATS_PASSWORD", "s3cret-pw"),
    ])?;
    let client = connect::nats(&good, "security-test").await?;
    client.flush().await?;
    // A refused credential stops at once instead of retrying until the connect timeout.
    for extra in [
        vec![
            ("DYSCHAT_NATS_USER", "svc"),
            ("DYSCHAT_NATS_PASSWORD", "wrong"),
        ],
        vec![],
    ] {
        let started = Instant::now();
        let err = connect::nats(&cfg(&extra)?, "security-test")
            .await
            .expect_err("wrong credentials accepted");
        ensure!(
            matches!(err, connect::ConnectError::NatsRefused { .. }),
            "{err}"
        );
        ensure!(
            started.elapsed() < Duration::from_secs(3),
            "took {:?}",
            started.elapsed()
        );
    }

    let token_server = NatsServer::start_with_args(&["--auth", "t0ken-value"]).await?;
    let mut token_cfg = connect_config(
        &token_server,
        &redis,
        &[("DYSCHAT_NATS_TOKEN", "t0ken-value")],
    )?;
    connect::nats(&token_cfg, "security-test")
        .await?
        .flush()
        .await?;
    token_cfg.nats_token = "other".into();
    ensure!(
        connect::nats(&token_cfg, "security-test").await.is_err(),
        "wrong token accepted"
    );

    connect::redis(&cfg(&[("DYSCHAT_REDIS_PASS", "redis-pw")])?).await?;
    connect::redis(&cfg(&[
        ("DYSCHAT_REDIS_USER", "default"),
        ("DYSCHAT_REDIS_PASS", "redis-pw"),
    ])?)
    .await?;
    ensure!(
        connect::redis(&cfg(&[("DYSCHAT_REDIS_PASS", "wrong")])?)
            .await
            .is_err(),
        "wrong Redis password accepted"
    );
    Ok(())
}
