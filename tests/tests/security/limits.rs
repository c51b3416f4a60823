//! Send rate per user, login attempts per address and per username, sockets per user.

use super::*;

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
    let mesh = Mesh::start_with(
        1,
        vars(&[
            ("DYSCHAT_LOGIN_ATTEMPTS_PER_MIN", "3"),
            ("DYSCHAT_LOGIN_ATTEMPTS_PER_ADDR_PER_MIN", "3"),
        ]),
    )
    .await?;
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

/// Status codes of `n` GET /api/v1/me requests spread over `bases` round robin.
async fn me_statuses(bases: &[String], token: &str, n: usize) -> anyhow::Result<Vec<u16>> {
    let mut out = Vec::new();
    for i in 0..n {
        let (status, _, _) = call(
            &bases[i % bases.len()],
            reqwest::Method::GET,
            "/api/v1/me",
            Some(token),
            None,
        )
        .await?;
        out.push(status);
    }
    Ok(out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn limits_hold_across_agents_and_without_redis() -> anyhow::Result<()> {
    // Two agents; a burst of 6 sends and 8 requests per user, refilled very slowly.
    let mut mesh = Mesh::start_with(
        2,
        vars(&[
            ("DYSCHAT_SEND_RATE_PER_SEC", "0.01"),
            ("DYSCHAT_SEND_BURST", "6"),
            ("DYSCHAT_REQUEST_RATE_PER_SEC", "0.01"),
            ("DYSCHAT_REQUEST_BURST", "8"),
        ]),
    )
    .await?;
    let bases = [mesh.agent(0).http(), mesh.agent(1).http()];
    let api = Api::new(bases[0].clone());
    let alice = api.register_and_login("alice").await?;
    let bob = api.register_and_login("bobby").await?;
    let room = api.create_room(&alice.token, "limited").await?;
    // Both agents have counted each other (for the share each allows without Redis).
    tokio::time::sleep(Duration::from_secs(3)).await;

    // Sends alternate between the agents: six in total, not six per agent.
    let mut sent = 0;
    for i in 0..12 {
        let (status, _, _) = call(
            &bases[i % 2],
            reqwest::Method::POST,
            &format!("/api/v1/rooms/{room}/messages"),
            Some(&alice.token),
            Some(json!({"body": format!("m{i}")})),
        )
        .await?;
        ensure!(status == 201 || status == 429, "send {i}: {status}");
        if status == 201 {
            sent += 1;
        }
    }
    ensure!(sent == 6, "{sent} sends over two agents with a burst of 6");

    // Every route is limited too, across agents (alice used one request creating the room).
    let statuses = me_statuses(&bases, &bob.token, 16).await?;
    let ok = statuses.iter().filter(|s| **s == 200).count();
    ensure!(
        ok == 8,
        "{ok} requests over two agents with a burst of 8: {statuses:?}"
    );
    // ... and every WebSocket frame type (ping here).
    let mut ws = WsClient::connect(&mesh.agent(1).ws(), &alice.token).await?;
    let mut limited = false;
    for n in 0..20 {
        ws.send(json!({"type": "ping", "ref": format!("p{n}")}))
            .await?;
        let answer = ws.recv().await?;
        if answer["type"] == "error" {
            ensure!(answer["code"] == "rate_limited", "{answer}");
            limited = true;
            break;
        }
    }
    ensure!(limited, "pings were never limited");

    // Without Redis each agent limits on its own to its share (half of the burst each).
    mesh.redis.stop().await;
    let carol = api.register_and_login("carol").await;
    // Registration needs no Redis (auth), but keep the check independent of it.
    let token = match carol {
        Ok(c) => c.token,
        Err(_) => bob.token.clone(),
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let statuses = me_statuses(&bases, &token, 16).await?;
    let ok = statuses.iter().filter(|s| **s == 200).count();
    ensure!(
        ok <= 8,
        "{ok} requests allowed over two agents without Redis: {statuses:?}"
    );
    mesh.redis.start_again().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn typing_reaches_others_at_most_once_per_two_seconds() -> anyhow::Result<()> {
    let mesh = Mesh::start(2).await?;
    let api = Api::new(mesh.agent(0).http());
    let typist = api.register_and_login("typist").await?;
    let reader = api.register_and_login("reader").await?;
    let room = member_room(&api, &typist, &[&reader]).await?;
    let mut watcher = WsClient::connect(&mesh.agent(1).ws(), &reader.token).await?;
    watcher.join(&room, None).await?;
    // The typist hammers from two sockets on two agents for 3 s.
    let mut a = WsClient::connect(&mesh.agent(0).ws(), &typist.token).await?;
    let mut b = WsClient::connect(&mesh.agent(1).ws(), &typist.token).await?;
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(3) {
        for ws in [&mut a, &mut b] {
            ws.send(json!({"type": "typing", "room_id": room})).await?;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let mut typing = 0;
    while let Some(frame) = watcher.recv_within(Duration::from_millis(500)).await? {
        if frame["type"] == "typing" {
            typing += 1;
        }
    }
    // 3 s of typing: at 0 s and 2 s (a third only if the timing straddles 4 s).
    ensure!((1..=2).contains(&typing), "{typing} typing frames in 3 s");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_user_past_the_daily_byte_quota_is_stopped_alone() -> anyhow::Result<()> {
    let mesh =
        Mesh::start_with(1, vars(&[("DYSCHAT_MAX_BYTES_PER_USER_PER_DAY", "10000")])).await?;
    let api = Api::new(mesh.agent(0).http());
    let hog = api.register_and_login("hog").await?;
    let other = api.register_and_login("other").await?;
    let room = member_room(&api, &hog, &[&other]).await?;
    let path = format!("/api/v1/rooms/{room}/messages");
    let body = "x".repeat(4000);
    let mut statuses = Vec::new();
    for _ in 0..4 {
        let answer = call(
            &mesh.agent(0).http(),
            reqwest::Method::POST,
            &path,
            Some(&hog.token),
            Some(json!({"body": body})),
        )
        .await?;
        statuses.push(answer.0);
        if answer.0 == 429 {
            ensure_429("over the byte quota", &answer, 86_400_000)?;
        }
    }
    ensure!(statuses == [201, 201, 429, 429], "{statuses:?}");
    // Everyone else goes on.
    let (status, _, _) = call(
        &mesh.agent(0).http(),
        reqwest::Method::POST,
        &path,
        Some(&other.token),
        Some(json!({"body": body})),
    )
    .await?;
    ensure!(status == 201, "another user: {status}");
    Ok(())
}
