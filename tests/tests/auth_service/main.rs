//! The auth service against a real nats-server (the harness's [`NatsServer`]), exercised over
//! NATS like ws-agent does. The public directory (user search, lookups by id) is in
//! [`directory`].

mod directory;

use std::time::Duration;

use dyschat_protocol::wire::{
    Credentials, LoginReply, UserList, UserRequest, UserSearchRequest, UserView,
};
use dyschat_protocol::{layout, subjects, ApiError, ErrorCode};
use dyschat_runtime::{rpc, token};
use dyschat_tests::{nats_only_env, service_endpoints, wait_for_service, NatsServer};
use futures::StreamExt;
use tokio_util::sync::CancellationToken;

const TIMEOUT: Duration = Duration::from_secs(10);

struct Harness {
    client: async_nats::Client,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<Result<(), dyschat_auth::Error>>,
    secret: String,
    // Last, so the server outlives everything that talks to it.
    _nats: NatsServer,
}

impl Harness {
    async fn start() -> Harness {
        let nats = NatsServer::start().await.expect("start nats-server");
        Harness::start_on(nats).await
    }

    /// The service on a server a test already prepared.
    async fn start_on(nats: NatsServer) -> Harness {
        let config = dyschat_auth::Config::from_env(&nats_only_env(&nats)).expect("valid");
        let secret = config.auth.auth_secret.clone();
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(dyschat_auth::run(config, shutdown.clone()));
        let client = async_nats::connect(nats.url())
            .await
            .expect("connect to test nats");
        wait_for_service(&client, subjects::auth::SERVICE)
            .await
            .expect("the service comes up");
        Harness {
            client,
            shutdown,
            task,
            secret,
            _nats: nats,
        }
    }

    async fn register(&self, username: &str, password: &str) -> Result<UserView, ApiError> {
        rpc::request(
            &self.client,
            subjects::auth::REGISTER_SUBJECT.to_string(),
            &creds(username, password),
            TIMEOUT,
        )
        .await
    }

    async fn login(&self, username: &str, password: &str) -> Result<LoginReply, ApiError> {
        rpc::request(
            &self.client,
            subjects::auth::LOGIN_SUBJECT.to_string(),
            &creds(username, password),
            TIMEOUT,
        )
        .await
    }

    async fn search(&self, q: &str, limit: usize) -> Result<UserList, ApiError> {
        let req = UserSearchRequest { q: q.into(), limit };
        rpc::request(
            &self.client,
            subjects::auth::SEARCH_SUBJECT.to_string(),
            &req,
            TIMEOUT,
        )
        .await
    }

    /// The usernames a search finds, in its order.
    async fn found(&self, q: &str, limit: usize) -> Vec<String> {
        let list = self.search(q, limit).await.unwrap();
        list.users.into_iter().map(|u| u.username).collect()
    }

    async fn lookup(&self, user_id: &str) -> Result<UserView, ApiError> {
        let req = UserRequest {
            user_id: user_id.into(),
        };
        rpc::request(
            &self.client,
            subjects::auth::USER_SUBJECT.to_string(),
            &req,
            TIMEOUT,
        )
        .await
    }

    async fn stop(self) {
        self.shutdown.cancel();
        let result = tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("run returns after shutdown")
            .expect("run did not panic");
        assert!(result.is_ok(), "{result:?}");
    }
}

fn creds(username: &str, password: &str) -> Credentials {
    Credentials {
        username: username.into(),
        password: password.into(),
    }
}

fn code<T: std::fmt::Debug>(r: Result<T, ApiError>) -> ErrorCode {
    r.expect_err("expected an error").code
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_then_login_issues_a_verifiable_token() {
    let h = Harness::start().await;
    let user = h.register("Alice.B", "password-1").await.unwrap();
    assert_eq!(user.username, "Alice.B");
    assert!(dyschat_protocol::ids::is_valid_id(&user.user_id));

    let reply = h.login("Alice.B", "password-1").await.unwrap();
    assert_eq!(reply.token_type, "Bearer");
    assert_eq!(reply.user_id, user.user_id);
    assert_eq!(reply.username, "Alice.B");
    assert_eq!(reply.expires_at.len(), "2026-11-23T00:43:41.165Z".len());
    let claims = token::verify(&h.secret, &reply.token).unwrap();
    assert_eq!(claims.sub, user.user_id);
    assert_eq!(claims.name, "Alice.B");
    assert_eq!(
        dyschat_protocol::time::from_unix_secs(claims.exp),
        reply.expires_at
    );

    // Names are unique ignoring case, so any case finds the same account.
    let again = h.login("alice.b", "password-1").await.unwrap();
    assert_eq!(again.user_id, user.user_id);
    assert_eq!(again.username, "Alice.B");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usernames_are_unique_ignoring_case() {
    let h = Harness::start().await;
    h.register("bob", "password-1").await.unwrap();
    let err = h.register("BoB", "password-2").await.unwrap_err();
    assert_eq!(err.code, ErrorCode::UsernameTaken);
    assert_eq!(err.message, "username is taken");
    // Dots are legal anywhere in a name, even where a KV key could not have them.
    h.register(".dot.", "password-1").await.unwrap();
    h.register("a..b", "password-1").await.unwrap();
    assert_eq!(
        code(h.register(".DOT.", "password-1").await),
        ErrorCode::UsernameTaken
    );
    h.login(".dot.", "password-1").await.unwrap();
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_registrations_of_one_name_admit_exactly_one() {
    let h = Harness::start().await;
    let attempts = (0..20).map(|i| {
        let client = h.client.clone();
        // Vary the case too: uniqueness ignores it.
        let name = if i % 2 == 0 { "carol" } else { "CAROL" };
        async move {
            rpc::request::<_, UserView>(
                &client,
                subjects::auth::REGISTER_SUBJECT.to_string(),
                &creds(name, &format!("password-{i}")),
                Duration::from_secs(30),
            )
            .await
        }
    });
    let results = futures::future::join_all(attempts).await;
    let ok = results.iter().filter(|r| r.is_ok()).count();
    let taken = results
        .iter()
        .filter(|r| matches!(r, Err(e) if e.code == ErrorCode::UsernameTaken))
        .count();
    assert_eq!((ok, taken), (1, 19), "{results:?}");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_credentials_are_bad_requests() {
    let h = Harness::start().await;
    for (user, pass) in [
        ("ab", "password-1"),
        ("has space", "password-1"),
        ("bang!", "password-1"),
        (&"x".repeat(33)[..], "password-1"),
        ("dave", "short"),
        ("dave", &"p".repeat(129)[..]),
    ] {
        assert_eq!(code(h.register(user, pass).await), ErrorCode::BadRequest);
        assert_eq!(code(h.login(user, pass).await), ErrorCode::BadRequest);
    }
    // A body that is not Credentials at all.
    let reply = h
        .client
        .request(subjects::auth::REGISTER_SUBJECT, "{\"user\":1}".into())
        .await
        .unwrap();
    let reply: dyschat_protocol::wire::Reply<UserView> =
        serde_json::from_slice(&reply.payload).unwrap();
    let result: Result<UserView, ApiError> = reply.into();
    assert_eq!(code(result), ErrorCode::BadRequest);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_password_and_unknown_user_look_the_same() {
    let h = Harness::start().await;
    h.register("erin", "password-1").await.unwrap();
    let wrong = h.login("erin", "password-2").await.unwrap_err();
    let unknown = h.login("nobody", "password-1").await.unwrap_err();
    assert_eq!(wrong.code, ErrorCode::Unauthorized);
    assert_eq!(wrong, unknown);
    assert_eq!(wrong.message, "invalid username or password");
    h.stop().await;
}

/// `logout` verifies the token and writes its id to the revoked bucket with the token's expiry,
/// kept (per-message TTL) until a little after the token expires; twice is the same answer; a
/// token that is not ours, or expired, is `unauthorized`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_writes_the_revocation_once_with_a_ttl() {
    use dyschat_protocol::layout;
    use dyschat_protocol::wire::{LogoutRequest, Revoked};

    let h = Harness::start().await;
    h.register("frank", "password-1").await.unwrap();
    let token = h.login("frank", "password-1").await.unwrap().token;
    let logout = |token: String| async {
        let r: Result<Revoked, ApiError> = rpc::request(
            &h.client,
            subjects::auth::LOGOUT_SUBJECT.to_string(),
            &LogoutRequest { token },
            TIMEOUT,
        )
        .await;
        r
    };
    let revoked = logout(token.clone()).await.unwrap();
    let claims = token::verify(&h.secret, &token).unwrap();
    assert_eq!(Some(&revoked.token_id), claims.jti.as_ref());
    assert_eq!(revoked.expires, claims.exp);
    assert_eq!(logout(token.clone()).await.unwrap(), revoked);

    let js = async_nats::jetstream::new(h.client.clone());
    let stream = js
        .get_stream(layout::kv_stream(layout::REVOKED_BUCKET))
        .await
        .unwrap();
    let info = stream.get_info().await.unwrap();
    assert!(info.config.allow_message_ttl, "{:?}", info.config);
    assert_eq!(info.state.messages, 1, "revoked twice, stored once");
    let stored = stream
        .get_last_raw_message_by_subject(&layout::kv_subject(
            layout::REVOKED_BUCKET,
            &revoked.token_id,
        ))
        .await
        .unwrap();
    assert_eq!(
        layout::parse_revoked_value(&stored.payload),
        Some(claims.exp)
    );
    let ttl: u64 = stored
        .headers
        .get("Nats-TTL")
        .and_then(|v| v.as_str().parse().ok())
        .expect("a per-message TTL");
    let left = u64::try_from(claims.exp - chrono::Utc::now().timestamp()).unwrap();
    let grace = layout::REVOKED_GRACE.as_secs();
    assert!(
        (left + grace - 5..=left + grace + 1).contains(&ttl),
        "ttl {ttl}, {left} s left"
    );

    assert_eq!(
        code(logout("not.a.token".into()).await),
        ErrorCode::Unauthorized
    );
    let (expired, _) = token::issue(&h.secret, "u1", "frank", 1_000, 60).unwrap();
    assert_eq!(code(logout(expired).await), ErrorCode::Unauthorized);
    let now = chrono::Utc::now().timestamp();
    let (foreign, _) = token::issue("another-secret", "u1", "frank", now, 3600).unwrap();
    assert_eq!(code(logout(foreign).await), ErrorCode::Unauthorized);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_service_is_discoverable_and_stops_cleanly() {
    let h = Harness::start().await;
    let endpoints = service_endpoints(&h.client, subjects::auth::SERVICE)
        .await
        .unwrap();
    let mut subjects_seen: Vec<&str> = endpoints.iter().map(String::as_str).collect();
    subjects_seen.sort_unstable();
    assert_eq!(
        subjects_seen,
        [
            subjects::auth::LOGIN_SUBJECT,
            subjects::auth::LOGOUT_SUBJECT,
            subjects::auth::REGISTER_SUBJECT,
            subjects::auth::SEARCH_SUBJECT,
            subjects::auth::USER_SUBJECT,
            subjects::auth::USERS_BY_NAME_SUBJECT,
        ]
    );
    h.stop().await;
}

/// The peak resident memory of a process, from /proc (kB).
fn peak_rss_kb(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| anyhow::anyhow!("no VmHWM in /proc/{pid}/status"))
}

/// A burst of registrations (64 at a time, as a load test from outside once sent) queues for a
/// bounded number of hashing slots instead of running hundreds of argon2 hashes of 19 MiB each
/// at once: the binary's peak memory stays small, and what cannot be hashed in time is answered
/// `unavailable` rather than left to time out.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_registration_burst_is_bounded_in_memory_and_time() -> anyhow::Result<()> {
    let nats = NatsServer::start().await?;
    let mut auth = dyschat_tests::procs::ServiceProcess::start(
        "dyschat-auth",
        vec![
            ("DYSCHAT_NATS_URL".to_string(), nats.url()),
            ("DYSCHAT_AUTH_HASH_CONCURRENCY".to_string(), "2".to_string()),
            ("DYSCHAT_AUTH_HASH_WAIT_MS".to_string(), "2000".to_string()),
        ],
    )?;
    let client = async_nats::connect(nats.url()).await?;
    wait_for_service(&client, subjects::auth::SERVICE).await?;
    let pid = auth
        .pid()
        .ok_or_else(|| anyhow::anyhow!("auth is not running"))?;
    let outcomes = futures::stream::iter(0..300)
        .map(|i| {
            let client = client.clone();
            async move {
                let started = std::time::Instant::now();
                let answer: Result<UserView, ApiError> = rpc::request(
                    &client,
                    subjects::auth::REGISTER_SUBJECT.to_string(),
                    &creds(&format!("burst{i}"), "correct horse"),
                    Duration::from_secs(10),
                )
                .await;
                (answer, started.elapsed())
            }
        })
        .buffer_unordered(64)
        .collect::<Vec<_>>()
        .await;
    let registered = outcomes.iter().filter(|(a, _)| a.is_ok()).count();
    let busy = outcomes
        .iter()
        .filter(|(a, _)| matches!(a, Err(e) if e.code == ErrorCode::Unavailable))
        .count();
    assert_eq!(
        registered + busy,
        300,
        "every answer is a user or `unavailable`"
    );
    assert!(registered > 0, "nothing was registered");
    let slowest = outcomes.iter().map(|(_, t)| *t).max().unwrap_or_default();
    assert!(
        slowest < Duration::from_secs(10),
        "an answer took {slowest:?}"
    );
    let peak = peak_rss_kb(pid)?;
    // Two reused buffers of 19 MiB plus the process itself (about 55 MB measured); a fresh
    // 19 MiB allocation per hash peaked at 730 MB with the same two slots, and unbounded
    // hashing at 3.7 GB.
    assert!(peak < 150 * 1024, "dyschat-auth peaked at {peak} kB");
    auth.terminate(Duration::from_secs(10)).await?;
    Ok(())
}
