//! Removal: a message's deletion removes its files (404 from the moment it is answered), a
//! room's deletion its files, and the sweep the files no message attached in time.

use std::time::{Duration, Instant};

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn deleting_the_message_or_the_room_removes_the_files() -> anyhow::Result<()> {
    let s = Setup::start(2).await?;
    let alice = s.user("i_alice").await?;
    let bob = s.user("i_bob").await?;
    let room = create(s.api(), &alice, "doomed", "public").await?;
    s.api().join_room(&bob.token, &room).await?;
    let a = s
        .uploaded(&alice, &room, "a.txt", "text/plain", b"first".to_vec())
        .await?;
    let b = s
        .uploaded(&alice, &room, "b.txt", "text/plain", b"second".to_vec())
        .await?;
    let posted = expect(
        s.api(),
        &alice,
        "POST",
        &format!("/api/v1/rooms/{room}/messages"),
        Some(json!({"body": "with files", "attachments": [id_of(&a)?, id_of(&b)?]})),
        201,
    )
    .await?;
    let seq = posted["seq"].as_u64().context("seq")?;
    ensure!(s.download(1, &bob, &id_of(&a)?, &[]).await?.status == 200);
    expect(
        &s.apis[1],
        &alice,
        "DELETE",
        &format!("/api/v1/rooms/{room}/messages/{seq}"),
        None,
        200,
    )
    .await?;
    // At once, from either agent.
    for (agent, file) in [(0, &a), (1, &b)] {
        let got = s.download(agent, &bob, &id_of(file)?, &[]).await?;
        ensure!(got.status == 404, "{file}: {}", got.status);
    }
    let page = expect(
        s.api(),
        &bob,
        "GET",
        &format!("/api/v1/rooms/{room}/messages"),
        None,
        200,
    )
    .await?;
    ensure!(page["messages"][0]["attachments"] == json!([]), "{page}");
    // A deleted message's files cannot be attached again.
    let (status, _) = s
        .api()
        .call(
            "POST",
            &format!("/api/v1/rooms/{room}/messages"),
            Some(&alice.token),
            Some(json!({"body": "again", "attachments": [id_of(&a)?]})),
        )
        .await?;
    ensure!(status == 400, "re-attaching a removed file: {status}");

    // The room's deletion: its files (attached or not) are 404 at once and their bytes go.
    let kept = s
        .uploaded(&alice, &room, "kept.txt", "text/plain", b"kept".to_vec())
        .await?;
    let pending = s
        .uploaded(
            &alice,
            &room,
            "pending.txt",
            "text/plain",
            b"pending".to_vec(),
        )
        .await?;
    expect(
        s.api(),
        &alice,
        "POST",
        &format!("/api/v1/rooms/{room}/messages"),
        Some(json!({"body": "kept", "attachments": [id_of(&kept)?]})),
        201,
    )
    .await?;
    expect(
        s.api(),
        &alice,
        "DELETE",
        &format!("/api/v1/rooms/{room}"),
        None,
        200,
    )
    .await?;
    for file in [&kept, &pending] {
        for agent in 0..2 {
            let got = s.download(agent, &alice, &id_of(file)?, &[]).await?;
            ensure!(got.status == 404, "{file}: {}", got.status);
        }
    }
    let js = async_nats::jetstream::new(s.mesh.client().await?);
    let store = js.get_object_store("dyschat_files").await?;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut gone = true;
        for file in [&kept, &pending] {
            match store.info(id_of(file)?).await {
                Ok(info) if !info.deleted => gone = false,
                _ => {}
            }
        }
        if gone {
            break;
        }
        ensure!(Instant::now() < deadline, "the room's objects stayed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    s.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn files_no_message_attaches_are_swept() -> anyhow::Result<()> {
    let s = Setup::start_with(
        1,
        vec![
            ("DYSCHAT_FILE_UNATTACHED_SECS".into(), "2".into()),
            ("DYSCHAT_FILE_SWEEP_SECS".into(), "1".into()),
            ("DYSCHAT_MAX_BYTES_PER_USER_PER_DAY".into(), "100000".into()),
        ],
    )
    .await?;
    let alice = s.user("j_alice").await?;
    let room = create(s.api(), &alice, "swept", "public").await?;
    let attached = s
        .uploaded(&alice, &room, "kept.txt", "text/plain", b"kept".to_vec())
        .await?;
    expect(
        s.api(),
        &alice,
        "POST",
        &format!("/api/v1/rooms/{room}/messages"),
        Some(json!({"body": "kept", "attachments": [id_of(&attached)?]})),
        201,
    )
    .await?;
    let loose = s
        .uploaded(&alice, &room, "loose.txt", "text/plain", b"loose".to_vec())
        .await?;
    ensure!(s.download(0, &alice, &id_of(&loose)?, &[]).await?.status == 200);
    // Removed within a few sweep periods of its age.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let got = s.download(0, &alice, &id_of(&loose)?, &[]).await?;
        if got.status == 404 {
            break;
        }
        ensure!(got.status == 200, "{}", got.status);
        ensure!(Instant::now() < deadline, "the unattached file stayed");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let js = async_nats::jetstream::new(s.mesh.client().await?);
    let store = js.get_object_store("dyschat_files").await?;
    let info = store.info(id_of(&loose)?).await;
    ensure!(
        info.map(|i| i.deleted).unwrap_or(true),
        "the swept file's bytes stayed"
    );
    // Too late to attach it now; the attached one stays.
    let (status, _) = s
        .api()
        .call(
            "POST",
            &format!("/api/v1/rooms/{room}/messages"),
            Some(&alice.token),
            Some(json!({"body": "late", "attachments": [id_of(&loose)?]})),
        )
        .await?;
    ensure!(status == 400, "attaching a swept file: {status}");
    let got = s.download(0, &alice, &id_of(&attached)?, &[]).await?;
    ensure!(got.status == 200 && got.body == b"kept", "{}", got.status);

    // Uploads count against the daily byte quota the sends use: 60 kB fits, 60 kB more does not
    // (declared or streamed), for that user alone.
    s.uploaded(&alice, &room, "a.bin", "application/zip", noise(60_000, 3))
        .await?;
    let (status, answer) = s
        .upload(0, &alice, &room, "b.bin", None, noise(60_000, 4).into())
        .await?;
    ensure!(
        status == 429 && answer["error"]["code"] == "rate_limited",
        "{status} {answer}"
    );
    let parts = vec![Ok::<_, std::io::Error>(noise(60_000, 5))];
    let streamed = reqwest::Body::wrap_stream(futures::stream::iter(parts));
    let (status, _) = s.upload(0, &alice, &room, "c.bin", None, streamed).await?;
    ensure!(status == 429, "streamed over the quota: {status}");
    let bob = s.user("j_bob").await?;
    let bobs_room = create(s.api(), &bob, "bobs", "public").await?;
    s.uploaded(
        &bob,
        &bobs_room,
        "b.bin",
        "application/zip",
        noise(60_000, 6),
    )
    .await?;
    s.stop().await
}
