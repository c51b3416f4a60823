//! The writer on partitions: a restart resumes every partition's consumer, and an emptied Redis
//! is rebuilt partition by partition.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_restarted_writer_resumes_every_partition() -> anyhow::Result<()> {
    let mut s = Setup::start().await?;
    let alice = s.apis[0].register_and_login("w_alice").await?;
    let bob = s.apis[1].register_and_login("w_bob").await?;
    let rooms = s.rooms_in_every_partition(&alice, &bob, 1).await?;
    let mut redis = s.redis().await?;
    for room in &rooms {
        post(&s.apis[0], &alice, room, "before").await?;
        stored(&mut redis, room, 1).await?;
    }
    let writer = s
        .mesh
        .services
        .iter()
        .position(|r| r.name == "msg-writer")
        .context("a writer")?;
    s.mesh.services.remove(writer).stop().await?;
    for room in &rooms {
        for i in 0..5 {
            post(&s.apis[0], &alice, room, &format!("while stopped {i}")).await?;
        }
    }
    // Nothing is written while no writer runs.
    for room in &rooms {
        let have: u64 = redis::cmd("ZCARD")
            .arg(history::key(room))
            .query_async(&mut redis)
            .await?;
        ensure!(have == 1, "{room}: {have} stored without a writer");
    }
    s.mesh.start_writer()?;
    for room in &rooms {
        stored(&mut redis, room, 6).await?;
        let seqs = s.apis[1]
            .history_seqs(&bob.token, room, 6, STORED_WITHIN)
            .await?;
        ensure!(seqs.len() == 6, "{room}: {seqs:?}");
    }
    s.mesh.stop_all().await
}

/// An emptied Redis is rebuilt partition by partition: each partition's marker says complete
/// again and every room's history is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_emptied_redis_is_rebuilt_for_every_partition() -> anyhow::Result<()> {
    let mut s = Setup::start().await?;
    let alice = s.apis[0].register_and_login("r_alice").await?;
    let bob = s.apis[1].register_and_login("r_bob").await?;
    let rooms = s.rooms_in_every_partition(&alice, &bob, 1).await?;
    let mut redis = s.redis().await?;
    for room in &rooms {
        for i in 0..4 {
            post(&s.apis[0], &alice, room, &format!("kept {i}")).await?;
        }
        stored(&mut redis, room, 4).await?;
    }
    let layout = layout();
    for k in layout.all() {
        let marker: Option<String> = redis::cmd("GET")
            .arg(history::meta_keys(layout, k).marker)
            .query_async(&mut redis)
            .await?;
        ensure!(
            marker.as_deref() == Some(history::MARKER_COMPLETE),
            "p{k}: {marker:?}"
        );
    }
    let _: () = redis::cmd("FLUSHALL").query_async(&mut redis).await?;
    for room in &rooms {
        stored(&mut redis, room, 4).await?;
    }
    let since = Instant::now();
    for k in layout.all() {
        loop {
            let marker: Option<String> = redis::cmd("GET")
                .arg(history::meta_keys(layout, k).marker)
                .query_async(&mut redis)
                .await?;
            if marker.as_deref() == Some(history::MARKER_COMPLETE) {
                break;
            }
            ensure!(
                since.elapsed() < STORED_WITHIN,
                "p{k} not rebuilt: {marker:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    // The unpartitioned marker is not the one a partitioned mesh uses.
    let single: Option<String> = redis::cmd("GET")
        .arg(history::MARKER_KEY)
        .query_async(&mut redis)
        .await?;
    ensure!(single.is_none(), "{single:?}");
    for room in &rooms {
        let seqs = s.apis[1]
            .history_seqs(&bob.token, room, 4, STORED_WITHIN)
            .await?;
        ensure!(seqs.len() == 4, "{room}: {seqs:?}");
    }
    s.mesh.stop_all().await
}
