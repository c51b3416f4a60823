//! Logout against a real two-agent mesh: `POST /api/v1/auth/logout` revokes one token, and every
//! agent refuses it at once (every route, new sockets by URL or `auth` frame) and closes the
//! sockets it had opened, with 1008; the user's other tokens keep working; an agent started after
//! the logout refuses it too; tokens issued before `jti` existed are revoked the same way; bad
//! input is 401, never 500; an agent started after many logouts replays them within its NATS
//! grants (every test ends with `Mesh::stop_all`, which fails on a permissions violation).

use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use dyschat_protocol::layout;
use dyschat_runtime::config::DEV_AUTH_SECRET;
use dyschat_runtime::token;
use dyschat_tests::client::{Api, WsClient};
use dyschat_tests::mesh::Mesh;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Error as WsError;

/// How long another agent may take to learn of a revocation (its watch of the bucket delivers
/// within milliseconds; this is the bound the test holds it to).
const PROMPTLY: Duration = Duration::from_secs(2);

async fn login(api: &Api, username: &str) -> anyhow::Result<String> {
    let creds = json!({"username": username, "password": "correct horse"});
    let (status, body) = api
        .call("POST", "/api/v1/auth/login", None, Some(creds))
        .await?;
    ensure!(status == 200, "login {username}: {status} {body}");
    Ok(body["token"].as_str().context("token")?.to_string())
}

async fn logout(api: &Api, token: &str) -> anyhow::Result<(u16, Value)> {
    api.call("POST", "/api/v1/auth/logout", Some(token), None)
        .await
}

/// `GET /api/v1/me` with `token`: its status.
async fn me(api: &Api, token: &str) -> anyhow::Result<u16> {
    Ok(api.call("GET", "/api/v1/me", Some(token), None).await?.0)
}

fn ensure_revoked(what: &str, (status, body): &(u16, Value)) -> anyhow::Result<()> {
    ensure!(
        *status == 401 && body["error"]["code"] == "unauthorized",
        "{what}: {status} {body}"
    );
    Ok(())
}

/// A socket opened on plain `/ws` and authenticated with an `auth` frame.
async fn ws_by_frame(ws_url: &str, token: &str) -> anyhow::Result<WsClient> {
    let mut ws = WsClient::connect_raw(ws_url).await?;
    ws.send(json!({"type": "auth", "token": token, "ref": "a"}))
        .await?;
    let ready = ws.recv().await?;
    ensure!(ready["type"] == "ready", "{ready}");
    Ok(ws)
}

/// Waits for the revoked socket's `error` and its close code, and how long they took.
async fn closed_for_revocation(ws: &mut WsClient, since: Instant) -> anyhow::Result<Duration> {
    let error = ws.recv_type("error").await?;
    ensure!(
        error["code"] == "unauthorized" && error["message"] == "token revoked",
        "{error}"
    );
    let code = ws.recv_close().await?;
    ensure!(code == 1008, "closed with {code}");
    Ok(since.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_logout_revokes_the_token_on_every_agent_at_once() -> anyhow::Result<()> {
    let mut mesh = Mesh::start(2).await?;
    let (a, b) = (
        Api::new(mesh.agent(0).http()),
        Api::new(mesh.agent(1).http()),
    );
    let alice = a.register_and_login("alice").await?;
    let first = alice.token.clone();
    let second = login(&b, "alice").await?;
    let room = a.create_room(&first, "lobby").await?;

    // Sockets with the first token on both agents (by URL and by auth frame), one with the second.
    let mut on_a = WsClient::connect(&mesh.agent(0).ws(), &first).await?;
    let mut on_b_url = WsClient::connect(&mesh.agent(1).ws(), &first).await?;
    let mut on_b_frame = ws_by_frame(&mesh.agent(1).ws(), &first).await?;
    on_b_frame.join(&room, None).await?;
    let mut other = ws_by_frame(&mesh.agent(1).ws(), &second).await?;

    let at = Instant::now();
    let (status, body) = logout(&a, &first).await?;
    ensure!(status == 204 && body.is_null(), "logout: {status} {body}");

    // The agent that answered refuses it before answering; the other one within moments.
    ensure_revoked(
        "GET /me on the agent that logged out",
        &a.call("GET", "/api/v1/me", Some(&first), None).await?,
    )?;
    let mut refused_by_b = None;
    while at.elapsed() < PROMPTLY {
        if me(&b, &first).await? == 401 {
            refused_by_b = Some(at.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let refused_by_b = refused_by_b.context("the other agent still accepts the token")?;
    println!("refused by the other agent {refused_by_b:?} after the logout was sent");
    for api in [&a, &b] {
        for (method, path) in [
            ("GET", "/api/v1/rooms".to_string()),
            ("GET", format!("/api/v1/rooms/{room}")),
            ("GET", format!("/api/v1/rooms/{room}/messages")),
            ("POST", format!("/api/v1/rooms/{room}/join")),
        ] {
            let answer = api.call(method, &path, Some(&first), None).await?;
            ensure_revoked(&format!("{method} {path} at {}", api.base), &answer)?;
        }
        let post = api
            .call(
                "POST",
                &format!("/api/v1/rooms/{room}/messages"),
                Some(&first),
                Some(json!({"body": "still here?"})),
            )
            .await?;
        ensure_revoked("posting a message", &post)?;
    }

    // Every socket of the first token closes, on both agents, at once.
    for (name, ws) in [
        ("agent 0", &mut on_a),
        ("agent 1, token in the URL", &mut on_b_url),
        ("agent 1, auth frame, joined", &mut on_b_frame),
    ] {
        let took = closed_for_revocation(ws, at).await?;
        ensure!(took < PROMPTLY, "{name}: closed after {took:?}");
    }

    // New sockets with it are refused, by URL (before the upgrade) and by frame.
    for agent in 0..2 {
        let url = format!("{}?token={first}", mesh.agent(agent).ws());
        match WsClient::connect_raw(&url).await {
            Err(e) => match e.downcast_ref::<WsError>() {
                Some(WsError::Http(response)) => {
                    ensure!(response.status() == 401, "{}", response.status())
                }
                _ => bail!("upgrade failed for another reason: {e}"),
            },
            Ok(_) => bail!("agent {agent} upgraded a socket for a revoked token"),
        }
        let mut ws = WsClient::connect_raw(&mesh.agent(agent).ws()).await?;
        ws.send(json!({"type": "auth", "token": first, "ref": "again"}))
            .await?;
        let e = ws.recv().await?;
        ensure!(
            e["type"] == "error" && e["code"] == "unauthorized" && e["ref"] == "again",
            "{e}"
        );
        ws.send(json!({"type": "join", "room_id": room, "ref": "j"}))
            .await?;
        ensure!(
            ws.recv().await?["code"] == "unauthorized",
            "not authenticated"
        );
    }

    // The user's other token is untouched, on both agents and on its socket.
    for api in [&a, &b] {
        ensure!(me(api, &second).await? == 200, "the second token refused");
    }
    other.send(json!({"type": "ping", "ref": "p"})).await?;
    ensure!(other.recv().await? == json!({"type": "pong", "ref": "p"}));
    ensure!(other.join(&room, None).await?["room_id"] == room.as_str());

    // Logging out twice: the token is already refused.
    ensure_revoked("a second logout", &logout(&b, &first).await?)?;

    // An agent started after the logout refuses it too: its watch replays the bucket (and until
    // it has, the agent asks the bucket for each token).
    let late = mesh.start_agent().await?;
    let c = Api::new(mesh.agent(late).http());
    ensure_revoked(
        "GET /me on an agent started later",
        &c.call("GET", "/api/v1/me", Some(&first), None).await?,
    )?;
    ensure!(me(&c, &second).await? == 200);

    // And the second token's logout, on the new agent, closes the socket on agent 1.
    let at = Instant::now();
    ensure!(logout(&c, &second).await?.0 == 204);
    let took = closed_for_revocation(&mut other, at).await?;
    ensure!(took < PROMPTLY, "closed after {took:?}");
    ensure!(me(&a, &second).await? == 401);
    // And none of it needed a subject the services' NATS grants do not give them.
    mesh.stop_all().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_token_from_before_jti_is_revoked_too_and_bad_tokens_are_401() -> anyhow::Result<()> {
    let mut mesh = Mesh::start(1).await?;
    let api = Api::new(mesh.agent(0).http());
    let bob = api.register_and_login("bob").await?;

    // A token as auth issued them before `jti`: still valid until it expires, and revocable.
    let now = chrono::Utc::now().timestamp();
    let (_, mut claims) = token::issue(DEV_AUTH_SECRET, &bob.user_id, "bob", now, 3600)?;
    claims.jti = None;
    let legacy = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(DEV_AUTH_SECRET.as_bytes()),
    )?;
    ensure!(!legacy.contains("jti") && me(&api, &legacy).await? == 200);
    let mut ws = WsClient::connect(&mesh.agent(0).ws(), &legacy).await?;
    ensure!(logout(&api, &legacy).await?.0 == 204);
    ensure!(me(&api, &legacy).await? == 401);
    closed_for_revocation(&mut ws, Instant::now()).await?;
    ensure!(me(&api, &bob.token).await? == 200, "bob's own token stays");

    // Bad input is refused as unauthorized, never a server error.
    let (expired, _) = token::issue(DEV_AUTH_SECRET, &bob.user_id, "bob", now - 7200, 3600)?;
    let (foreign, _) = token::issue("not-our-secret", &bob.user_id, "bob", now, 3600)?;
    let http = reqwest::Client::new();
    let url = format!("{}/api/v1/auth/logout", api.base);
    for (case, header) in [
        ("no header", None),
        ("empty bearer", Some("Bearer ".to_string())),
        ("garbage", Some("Bearer garbage".to_string())),
        ("not bearer", Some(format!("Basic {}", bob.token))),
        ("three dots", Some("Bearer a.b.c".to_string())),
        ("expired", Some(format!("Bearer {expired}"))),
        ("another secret", Some(format!("Bearer {foreign}"))),
        ("huge", Some(format!("Bearer {}", "x".repeat(8000)))),
    ] {
        let mut req = http.post(&url);
        if let Some(header) = header {
            req = req.header("Authorization", header);
        }
        let resp = req.send().await?;
        let status = resp.status().as_u16();
        let body: Value = serde_json::from_slice(&resp.bytes().await?).unwrap_or(Value::Null);
        ensure_revoked(case, &(status, body))?;
    }
    ensure!(
        me(&api, &bob.token).await? == 200,
        "bad logouts revoked nothing"
    );
    mesh.stop_all().await
}

/// An agent started when the bucket already holds many revocations (50,000: enough that the
/// server asks the watch's ordered consumer for flow control, which the agent must be allowed to
/// answer) replays them and refuses the revoked token, and only that one.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_agent_started_after_many_logouts_replays_them_within_its_grants() -> anyhow::Result<()>
{
    const SEEDED: u32 = 50_000;
    let mut mesh = Mesh::start(1).await?;
    let api = Api::new(mesh.agent(0).http());
    let carol = api.register_and_login("carol").await?;
    let revoked = login(&api, "carol").await?;

    // Revocations as auth writes them (id -> expiry), published directly to save time.
    let js = async_nats::jetstream::new(mesh.client().await?);
    let expires = chrono::Utc::now().timestamp() + 3600;
    let mut acks = Vec::new();
    for i in 0..SEEDED {
        let subject = layout::kv_subject(layout::REVOKED_BUCKET, &format!("{i:032x}"));
        acks.push(js.publish(subject, expires.to_string().into()).await?);
        if acks.len() >= 1_000 {
            for ack in acks.drain(..) {
                ack.await?;
            }
        }
    }
    for ack in acks.drain(..) {
        ack.await?;
    }
    ensure!(logout(&api, &revoked).await?.0 == 204);

    let late = mesh.start_agent().await?;
    let c = Api::new(mesh.agent(late).http());
    ensure_revoked(
        "GET /me on the agent started later",
        &c.call("GET", "/api/v1/me", Some(&revoked), None).await?,
    )?;
    ensure!(me(&c, &carol.token).await? == 200, "carol's other token");
    // Long enough for the replay to finish (it takes well under a second here).
    tokio::time::sleep(Duration::from_secs(2)).await;
    ensure!(me(&c, &carol.token).await? == 200);
    ensure!(me(&c, &revoked).await? == 401);
    mesh.stop_all().await
}
