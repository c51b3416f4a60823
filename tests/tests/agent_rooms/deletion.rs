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
