//! The public user directory: search by the start of a username, lookups by id, what the
//! public buckets hold, and the backfill of users registered before it existed.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_are_found_by_the_start_of_their_name_ignoring_case() {
    let h = Harness::start().await;
    for name in ["Alice", "alicia", "al.ic", "Albert", "bob", "x_al", "al-x"] {
        h.register(name, "password-1").await.unwrap();
    }
    assert_eq!(
        h.found("al", 20).await,
        ["al-x", "al.ic", "Albert", "Alice", "alicia"]
    );
    assert_eq!(h.found("ALI", 20).await, ["Alice", "alicia"]);
    // The exact name comes first, whatever sorts before it.
    h.register("ali", "password-1").await.unwrap();
    assert_eq!(h.found("ali", 20).await, ["ali", "Alice", "alicia"]);
    assert_eq!(h.found("al.", 20).await, ["al.ic"]);
    assert_eq!(h.found("al-", 20).await, ["al-x"]);
    assert_eq!(h.found("bob", 20).await, ["bob"]);
    assert!(h.found("zed", 20).await.is_empty());
    // Nothing that cannot be in a username reaches a subject: simply nobody.
    for q in ["*", ">", "a b", "al*", "é"] {
        assert!(h.found(q, 20).await.is_empty(), "{q}");
    }
    let all = h.search("al", 20).await.unwrap();
    let alice = all.users.iter().find(|u| u.username == "Alice").unwrap();
    assert_eq!(alice, &h.lookup(&alice.user_id).await.unwrap());
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn searches_are_bounded_and_checked() {
    let h = Harness::start().await;
    let names: Vec<String> = (0..60).map(|i| format!("user{i:02}")).collect();
    futures::stream::iter(names.iter())
        .map(|n| h.register(n, "password-1"))
        .buffer_unordered(8)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .for_each(|r| {
            r.unwrap();
        });
    assert_eq!(h.found("user", 0).await.len(), 20, "the default limit");
    assert_eq!(h.found("user", 50).await.len(), 50);
    assert_eq!(h.found("user", 3).await.len(), 3);
    assert_eq!(code(h.search("user", 51).await), ErrorCode::BadRequest);
    assert_eq!(code(h.search("", 10).await), ErrorCode::BadRequest);
    assert_eq!(
        code(h.search(&"u".repeat(33), 10).await),
        ErrorCode::BadRequest
    );
    assert!(h.found(&"u".repeat(32), 10).await.is_empty());
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_directory_is_public_and_looked_up_by_id() {
    let h = Harness::start().await;
    let user = h.register("Frank", "password-1").await.unwrap();
    assert_eq!(h.lookup(&user.user_id).await.unwrap(), user);
    assert_eq!(code(h.lookup("no-such-user").await), ErrorCode::NotFound);
    assert_eq!(code(h.lookup("bad.id").await), ErrorCode::BadRequest);
    // What the public buckets hold: the id and the name, never a password hash.
    let js = async_nats::jetstream::new(h.client.clone());
    for (bucket, key) in [
        (layout::USERNAMES_BUCKET, "f.r.a.n.k".to_string()),
        (layout::USER_IDS_BUCKET, user.user_id.clone()),
    ] {
        let kv = js.get_key_value(bucket).await.unwrap();
        let value = kv.get(&key).await.unwrap().expect("listed");
        let listed: serde_json::Value = serde_json::from_slice(&value).unwrap();
        assert_eq!(
            listed,
            serde_json::json!({"user_id": user.user_id, "username": "Frank"})
        );
    }
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_registered_before_the_directory_are_listed_at_start() {
    let nats = NatsServer::start().await.unwrap();
    // Users as an auth of issue 9 stored them, with no directory.
    let client = async_nats::connect(nats.url()).await.unwrap();
    let js = async_nats::jetstream::new(client);
    let users = dyschat_runtime::topology::ensure_bucket(
        &js,
        dyschat_runtime::topology::users_bucket(&Default::default()),
    )
    .await
    .unwrap();
    for (id, name) in [("OLD1", "Gina.Old"), ("OLD2", "gino")] {
        let record = dyschat_auth::store::UserRecord {
            user_id: id.into(),
            username: name.into(),
            password_hash: "$argon2id$x".into(),
            created_at: "2026-01-01T00:00:00.000Z".into(),
        };
        users
            .put(
                dyschat_auth::store::user_key(name),
                record.encode().unwrap(),
            )
            .await
            .unwrap();
    }
    let h = Harness::start_on(nats).await;
    dyschat_tests::wait_until(Duration::from_secs(10), "the backfill", || async {
        h.search("gin", 10).await.is_ok_and(|l| l.users.len() == 2)
    })
    .await
    .unwrap();
    assert_eq!(h.found("gin", 10).await, ["Gina.Old", "gino"]);
    assert_eq!(h.lookup("OLD1").await.unwrap().username, "Gina.Old");
    h.stop().await;
}
