//! A deleted room's history leaves Redis (msg-writer on `room_deleted`): its history sorted set,
//! its retried-send index and its per-sender sets, and a late message of it is not stored again.

use std::time::Duration;

use dyschat_protocol::layout::history;

use super::*;

async fn keys(
    redis: &mut redis::aio::MultiplexedConnection,
    room: &str,
) -> anyhow::Result<Vec<String>> {
    let mut found = Vec::new();
    for pattern in [
        history::key(room),
        history::dedupe_pattern(room),
        history::sent_pattern(room),
    ] {
        let mut some: Vec<String> = redis::cmd("KEYS").arg(pattern).query_async(redis).await?;
        found.append(&mut some);
    }
    Ok(found)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_deleted_rooms_history_leaves_redis() -> anyhow::Result<()> {
    let s = Setup::start(1).await?;
    let owner = s.user("x_owner").await?;
    let room = create(s.api(), &owner, "doomed", "public").await?;
    for n in 0..3 {
        let body = Some(json!({"body": format!("m{n}"), "client_msg_id": format!("c{n}")}));
        expect(
            s.api(),
            &owner,
            "POST",
            &format!("/api/v1/rooms/{room}/messages"),
            body,
            201,
        )
        .await?;
    }
    let client = redis::Client::open(s.mesh.redis.url())?;
    let mut redis = client.get_multiplexed_async_connection().await?;
    let mut stored = Vec::new();
    for _ in 0..50 {
        stored = keys(&mut redis, &room).await?;
        if stored.len() >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    ensure!(
        stored.len() >= 3,
        "history, index and sent set stored: {stored:?}"
    );
    expect(
        s.api(),
        &owner,
        "DELETE",
        &format!("/api/v1/rooms/{room}"),
        None,
        200,
    )
    .await?;
    let mut left = stored;
    for _ in 0..50 {
        left = keys(&mut redis, &room).await?;
        if left.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    ensure!(left.is_empty(), "left after the deletion: {left:?}");
    let marker: bool = redis::cmd("EXISTS")
        .arg(history::deleted_key(&room))
        .query_async(&mut redis)
        .await?;
    ensure!(marker, "the deletion is recorded");
    s.stop().await
}

/// A history written before the per-sender sets existed (marker `complete`, no sent sets) is
/// rebuilt from the stream with them, and unread counts stay exact throughout.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_history_of_the_old_layout_is_rebuilt_with_the_sent_sets() -> anyhow::Result<()> {
    let s = Setup::start(1).await?;
    let alice = s.user("o_alice").await?;
    let bob = s.user("o_bob").await?;
    let room = create(s.api(), &alice, "old layout", "public").await?;
    s.api().join_room(&bob.token, &room).await?;
    let path = format!("/api/v1/rooms/{room}/messages");
    for (user, n) in [(&alice, 0), (&bob, 1), (&bob, 2)] {
        let body = Some(json!({"body": format!("m{n}")}));
        expect(s.api(), user, "POST", &path, body, 201).await?;
    }
    let client = redis::Client::open(s.mesh.redis.url())?;
    let mut redis = client.get_multiplexed_async_connection().await?;
    let sent = history::sent_key(&room, &alice.user_id);
    dyschat_tests::wait_until(Duration::from_secs(10), "the sent set", || {
        let (mut redis, sent) = (redis.clone(), sent.clone());
        async move {
            let n: u64 = redis::cmd("ZCARD")
                .arg(&sent)
                .query_async(&mut redis)
                .await
                .unwrap_or(0);
            n == 1
        }
    })
    .await?;
    // What an older writer left: the old marker, no sent sets.
    let _: () = redis::pipe()
        .cmd("SET")
        .arg(history::MARKER_KEY)
        .arg("complete")
        .ignore()
        .cmd("DEL")
        .arg(&sent)
        .ignore()
        .query_async(&mut redis)
        .await?;
    let unread = |body: Value| {
        body["rooms"]
            .as_array()
            .and_then(|rooms| rooms.iter().find(|r| r["room_id"] == room))
            .and_then(|r| r["unread"].as_u64())
    };
    let mine = expect(s.api(), &bob, "GET", "/api/v1/me/rooms", None, 200).await?;
    ensure!(
        unread(mine.clone()) == Some(1),
        "read from the stream meanwhile: {mine}"
    );
    dyschat_tests::wait_until(Duration::from_secs(15), "the rebuild", || {
        let (mut redis, sent) = (redis.clone(), sent.clone());
        async move {
            let marker: Option<String> = redis::cmd("GET")
                .arg(history::MARKER_KEY)
                .query_async(&mut redis)
                .await
                .unwrap_or(None);
            let n: u64 = redis::cmd("ZCARD")
                .arg(&sent)
                .query_async(&mut redis)
                .await
                .unwrap_or(0);
            marker.as_deref() == Some(history::MARKER_COMPLETE) && n == 1
        }
    })
    .await?;
    let mine = expect(s.api(), &bob, "GET", "/api/v1/me/rooms", None, 200).await?;
    ensure!(unread(mine.clone()) == Some(1), "{mine}");
    s.stop().await
}
