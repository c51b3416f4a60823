//! dyschat-search on partitions: one follower per partition stream, one index.

use super::*;

/// The (room, seq) of every hit of `q` for `user` (first page of 50).
async fn hits(api: &Api, user: &LoggedIn, q: &str) -> anyhow::Result<BTreeSet<(String, u64)>> {
    let path = format!("/api/v1/search/messages?q={q}&limit=50");
    let (status, body) = api.call("GET", &path, Some(&user.token), None).await?;
    ensure!(status == 200, "search {q}: {status} {body}");
    Ok(body["results"]
        .as_array()
        .context("results")?
        .iter()
        .filter_map(|r| Some((r["room_id"].as_str()?.to_string(), r["seq"].as_u64()?)))
        .collect())
}

/// Waits until `q` finds exactly `want`.
async fn finds(
    api: &Api,
    user: &LoggedIn,
    q: &str,
    want: &BTreeSet<(String, u64)>,
) -> anyhow::Result<()> {
    let since = Instant::now();
    loop {
        let got = hits(api, user, q).await?;
        if &got == want {
            return Ok(());
        }
        ensure!(
            since.elapsed() < STORED_WITHIN,
            "{q}: {got:?}, want {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn search_follows_every_partition() -> anyhow::Result<()> {
    let mut s = Setup::start().await?;
    let alice = s.apis[0].register_and_login("s_alice").await?;
    let bob = s.apis[1].register_and_login("s_bob").await?;
    let rooms = s.rooms_in_every_partition(&alice, &bob, 1).await?;
    let dir = tempfile::tempdir()?;
    s.mesh.start_search("0", dir.path()).await?;
    let mut want = BTreeSet::new();
    for room in &rooms {
        // The same seqs in different partitions are different messages.
        let seq = post(&s.apis[0], &alice, room, "quokka sighted").await?;
        want.insert((room.clone(), seq));
    }
    finds(&s.apis[1], &bob, "quokka", &want).await?;
    // An edit in one partition changes that message's words only.
    let (room, seq) = want.iter().next().cloned().context("a hit")?;
    let path = format!("/api/v1/rooms/{room}/messages/{seq}");
    expect(
        &s.apis[0],
        &alice,
        "PATCH",
        &path,
        Some(json!({"body": "penguin"})),
        200,
    )
    .await?;
    want.remove(&(room.clone(), seq));
    finds(&s.apis[1], &bob, "quokka", &want).await?;
    finds(&s.apis[1], &bob, "penguin", &[(room, seq)].into()).await?;
    // A second instance on an empty index rebuilds every partition from its stream.
    let second = tempfile::tempdir()?;
    let first = s
        .mesh
        .services
        .iter()
        .position(|r| r.name == "search")
        .context("the search instance")?;
    s.mesh.services.remove(first).stop().await?;
    s.mesh.start_search("1", second.path()).await?;
    finds(&s.apis[1], &bob, "quokka", &want).await?;
    s.mesh.stop_all().await
}
