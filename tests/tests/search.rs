//! Message search (contract section 9) against the real mesh and real dyschat-search instances:
//! found within 5 s of the ack, whole words ignoring case and diacritics, every word required,
//! edits and deletions honoured from the moment they are answered, only the user's rooms at
//! query time, the `room_id` filter, paging newest first, the bounds; and the index's life:
//! killed and restarted, rebuilt from the stream on an empty directory (with or without its
//! durable consumer), two instances answering alike.

use std::time::{Duration, Instant};

use anyhow::{ensure, Context};
use dyschat_tests::client::{Api, LoggedIn};
use dyschat_tests::mesh::Mesh;
use dyschat_tests::procs::ServiceProcess;
use dyschat_tests::wait_until;
use serde_json::{json, Value};

/// The contract's bound for a new or edited text to be found.
const FOUND_WITHIN: Duration = Duration::from_secs(5);

/// A mesh of one agent and one in-process search instance on a fresh index.
async fn mesh() -> anyhow::Result<(Mesh, Api, tempfile::TempDir)> {
    let mut mesh = Mesh::start(1).await?;
    let dir = tempfile::tempdir()?;
    mesh.start_search("0", dir.path()).await?;
    let api = Api::new(mesh.agent(0).http());
    Ok((mesh, api, dir))
}

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

async fn search(api: &Api, user: &LoggedIn, params: &str) -> anyhow::Result<(u16, Value)> {
    api.call(
        "GET",
        &format!("/api/v1/search/messages?{params}"),
        Some(&user.token),
        None,
    )
    .await
}

/// The seqs of the first page (50) found for `q`.
async fn found(api: &Api, user: &LoggedIn, q: &str) -> anyhow::Result<Vec<u64>> {
    let (status, body) = search(api, user, &format!("q={}&limit=50", encode(q))).await?;
    ensure!(status == 200, "search {q:?}: {status} {body}");
    Ok(body["results"]
        .as_array()
        .context("results")?
        .iter()
        .filter_map(|r| r["seq"].as_u64())
        .collect())
}

/// Waits (at most the contract's 5 s from `since`) until `q` finds `seq`.
async fn found_in_time(
    api: &Api,
    user: &LoggedIn,
    q: &str,
    seq: u64,
    since: Instant,
) -> anyhow::Result<()> {
    loop {
        if found(api, user, q).await?.contains(&seq) {
            return Ok(());
        }
        ensure!(
            since.elapsed() < FOUND_WITHIN,
            "{q:?} did not find {seq} within 5 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn room(api: &Api, owner: &LoggedIn, name: &str, visibility: &str) -> anyhow::Result<String> {
    let (status, body) = api
        .call(
            "POST",
            "/api/v1/rooms",
            Some(&owner.token),
            Some(json!({"name": name, "visibility": visibility})),
        )
        .await?;
    ensure!(status == 201, "create room: {status} {body}");
    Ok(body["room_id"].as_str().context("room_id")?.to_string())
}

async fn post(api: &Api, user: &LoggedIn, room: &str, body: &str) -> anyhow::Result<u64> {
    let (status, answer) = api
        .call(
            "POST",
            &format!("/api/v1/rooms/{room}/messages"),
            Some(&user.token),
            Some(json!({"body": body})),
        )
        .await?;
    ensure!(status == 201, "post: {status} {answer}");
    answer["seq"].as_u64().context("seq")
}

async fn change(
    api: &Api,
    user: &LoggedIn,
    method: &str,
    room: &str,
    seq: u64,
    body: Option<Value>,
) -> anyhow::Result<()> {
    let (status, answer) = api
        .call(
            method,
            &format!("/api/v1/rooms/{room}/messages/{seq}"),
            Some(&user.token),
            body,
        )
        .await?;
    ensure!(
        status == 200 || status == 204,
        "{method} {seq}: {status} {answer}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn found_in_time_by_whole_words_ignoring_case_and_diacritics() -> anyhow::Result<()> {
    let (mut mesh, api, _dir) = mesh().await?;
    let alice = api.register_and_login("s_alice").await?;
    let r = room(&api, &alice, "words", "public").await?;
    let seq = post(&api, &alice, &r, "Le Café est ouvert, Straße!").await?;
    let acked = Instant::now();
    found_in_time(&api, &alice, "cafe", seq, acked).await?;
    for q in [
        "CAFÉ",
        "café",
        "Cafe\u{301}",
        "ouvert cafe",
        "OUVERT",
        "STRAßE",
    ] {
        ensure!(
            found(&api, &alice, q).await? == vec![seq],
            "{q:?} should find it"
        );
    }
    for q in ["caf", "ouv", "cafe ferme", "est-ce"] {
        ensure!(
            found(&api, &alice, q).await?.is_empty(),
            "{q:?} should not find it"
        );
    }
    let (status, body) = search(&api, &alice, "q=cafe").await?;
    ensure!(status == 200 && body["next_cursor"].is_null(), "{body}");
    let result = &body["results"][0];
    ensure!(
        result["room_id"] == r.as_str()
            && result["seq"] == seq
            && result["message"]["body"] == "Le Café est ouvert, Straße!"
            && result["message"]["sender_id"] == alice.user_id.as_str()
            && result["message"]["deleted"] == false,
        "{result}"
    );
    mesh.stop_all().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn edits_and_deletions_count_from_their_answer() -> anyhow::Result<()> {
    let (mut mesh, api, _dir) = mesh().await?;
    let alice = api.register_and_login("s_edit").await?;
    let r = room(&api, &alice, "changes", "public").await?;
    let seq = post(&api, &alice, &r, "apple banana").await?;
    found_in_time(&api, &alice, "apple", seq, Instant::now()).await?;
    change(
        &api,
        &alice,
        "PATCH",
        &r,
        seq,
        Some(json!({"body": "cherry banana"})),
    )
    .await?;
    let edited = Instant::now();
    // The old text is gone at once, whatever the index holds yet.
    ensure!(
        found(&api, &alice, "apple").await?.is_empty(),
        "found by its old text"
    );
    found_in_time(&api, &alice, "cherry", seq, edited).await?;
    let (_, body) = search(&api, &alice, "q=banana").await?;
    ensure!(
        body["results"][0]["message"]["body"] == "cherry banana",
        "{body}"
    );
    ensure!(
        body["results"][0]["message"]["edited_at"].is_string(),
        "{body}"
    );
    change(&api, &alice, "DELETE", &r, seq, None).await?;
    for _ in 0..20 {
        for q in ["banana", "cherry", "apple"] {
            ensure!(
                found(&api, &alice, q).await?.is_empty(),
                "deleted, found by {q:?}"
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    mesh.stop_all().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn only_the_rooms_of_the_user_at_query_time() -> anyhow::Result<()> {
    let (mut mesh, api, _dir) = mesh().await?;
    let alice = api.register_and_login("s_owner").await?;
    let bob = api.register_and_login("s_member").await?;
    let carol = api.register_and_login("s_private").await?;
    let public = room(&api, &alice, "open", "public").await?;
    let (status, _) = api.join_room(&bob.token, &public).await?;
    ensure!(status == 200, "join");
    let private = room(&api, &carol, "closed", "private").await?;
    let in_public = post(&api, &bob, &public, "zebra crossing").await?;
    let in_private = post(&api, &carol, &private, "zebra secret").await?;
    let since = Instant::now();
    found_in_time(&api, &carol, "zebra", in_private, since).await?;
    found_in_time(&api, &bob, "zebra", in_public, since).await?;
    ensure!(
        found(&api, &bob, "zebra").await? == vec![in_public],
        "bob sees only his room"
    );
    ensure!(
        found(&api, &carol, "zebra").await? == vec![in_private],
        "carol sees only hers"
    );
    ensure!(
        found(&api, &alice, "zebra").await? == vec![in_public],
        "alice"
    );
    // The room filter.
    let (status, body) = search(&api, &alice, &format!("q=zebra&room_id={public}")).await?;
    ensure!(
        status == 200 && body["results"].as_array().map(Vec::len) == Some(1),
        "{body}"
    );
    let (status, _) = search(&api, &alice, &format!("q=zebra&room_id={private}")).await?;
    ensure!(status == 404, "a private room of others: {status}");
    let (status, _) = search(&api, &alice, "q=zebra&room_id=no-such-room").await?;
    ensure!(status == 404, "an unknown room: {status}");
    // A room left is gone at query time; its public room is then forbidden by id.
    let (status, _) = api.leave_room(&bob.token, &public).await?;
    ensure!(status == 200, "leave");
    ensure!(
        found(&api, &bob, "zebra").await?.is_empty(),
        "a room left still searched"
    );
    let (status, _) = search(&api, &bob, &format!("q=zebra&room_id={public}")).await?;
    ensure!(
        status == 403,
        "a public room of which bob is no member: {status}"
    );
    // A deleted room's messages leave.
    let (status, _) = api
        .call(
            "DELETE",
            &format!("/api/v1/rooms/{private}"),
            Some(&carol.token),
            None,
        )
        .await?;
    ensure!(status == 204 || status == 200, "delete room: {status}");
    ensure!(
        found(&api, &carol, "zebra").await?.is_empty(),
        "a deleted room searched"
    );
    mesh.stop_all().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pages_newest_first_and_bounds() -> anyhow::Result<()> {
    let (mut mesh, api, _dir) = mesh().await?;
    let alice = api.register_and_login("s_pager").await?;
    let a = room(&api, &alice, "pages a", "public").await?;
    let b = room(&api, &alice, "pages b", "public").await?;
    let mut posted = Vec::new();
    for i in 0..7 {
        posted.push(
            post(
                &api,
                &alice,
                if i % 2 == 0 { &a } else { &b },
                &format!("paging word {i}"),
            )
            .await?,
        );
    }
    let since = Instant::now();
    for seq in &posted {
        found_in_time(&api, &alice, "paging word", *seq, since).await?;
    }
    let mut seen = Vec::new();
    let mut before: Option<String> = None;
    for _ in 0..10 {
        let mut params = "q=word%20PAGING&limit=3".to_string();
        if let Some(c) = &before {
            params.push_str(&format!("&before={}", encode(c)));
        }
        let (status, body) = search(&api, &alice, &params).await?;
        ensure!(status == 200, "{status} {body}");
        let page = body["results"].as_array().context("results")?;
        ensure!(page.len() <= 3, "{body}");
        seen.extend(page.iter().filter_map(|r| r["seq"].as_u64()));
        match body["next_cursor"].as_str() {
            Some(c) => before = Some(c.to_string()),
            None => break,
        }
    }
    let mut expected = posted.clone();
    expected.reverse();
    ensure!(seen == expected, "pages {seen:?}, posted {posted:?}");
    let one = found(&api, &alice, "word").await?;
    ensure!(one == expected, "one page of 50: {one:?}");
    for params in [
        "q=word&limit=0",
        "q=word&limit=51",
        "q=word&limit=x",
        "q=",
        "q=%20%20",
        "",
        "limit=5",
        "q=word&before=garbage",
        "q=word&before=1.x",
    ] {
        let (status, body) = search(&api, &alice, params).await?;
        ensure!(status == 400, "{params:?}: {status} {body}");
        ensure!(body["error"]["code"] == "bad_request", "{body}");
    }
    let (status, _) = api
        .call("GET", "/api/v1/search/messages?q=word", None, None)
        .await?;
    ensure!(status == 401, "unauthenticated: {status}");
    let (status, body) = search(&api, &alice, "q=word&limit=50").await?;
    ensure!(
        status == 200 && body["results"].as_array().map(Vec::len) == Some(7),
        "{body}"
    );
    mesh.stop_all().await
}

/// How many search instances answer the service API's ping.
async fn instances(client: &async_nats::Client) -> anyhow::Result<usize> {
    let inbox = client.new_inbox();
    let mut replies = client.subscribe(inbox.clone()).await?;
    client
        .publish_with_reply(
            dyschat_protocol::subjects::service_ping(dyschat_protocol::subjects::search::SERVICE),
            inbox,
            "".into(),
        )
        .await?;
    let mut count = 0;
    while let Ok(Some(_)) = tokio::time::timeout(
        Duration::from_millis(300),
        futures::StreamExt::next(&mut replies),
    )
    .await
    {
        count += 1;
    }
    Ok(count)
}

/// How many requests each running search instance answered (`$SRV.STATS`), in no order.
async fn answered(client: &async_nats::Client) -> anyhow::Result<Vec<u64>> {
    let inbox = client.new_inbox();
    let mut replies = client.subscribe(inbox.clone()).await?;
    client
        .publish_with_reply(
            format!("$SRV.STATS.{}", dyschat_protocol::subjects::search::SERVICE),
            inbox,
            "".into(),
        )
        .await?;
    let mut counts = Vec::new();
    while let Ok(Some(reply)) = tokio::time::timeout(
        Duration::from_millis(300),
        futures::StreamExt::next(&mut replies),
    )
    .await
    {
        let stats: Value = serde_json::from_slice(&reply.payload)?;
        counts.push(
            stats["endpoints"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|e| e["num_requests"].as_u64())
                .sum(),
        );
    }
    Ok(counts)
}

/// The answers to a few fixed queries, once the index has settled on `expected` for the first.
async fn answers(api: &Api, user: &LoggedIn, expected: &[u64]) -> anyhow::Result<Vec<Vec<u64>>> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let first = found(api, user, "durable").await;
        if matches!(&first, Ok(seqs) if seqs == expected) {
            break;
        }
        ensure!(
            Instant::now() < deadline,
            "the index never settled: {first:?}, wanted {expected:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut all = Vec::new();
    for q in [
        "durable",
        "durable edited",
        "gone",
        "second",
        "durable kept",
    ] {
        all.push(found(api, user, q).await?);
    }
    Ok(all)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killed_restarted_rebuilt_and_two_instances_answer_alike() -> anyhow::Result<()> {
    let mut mesh = Mesh::start(1).await?;
    let api = Api::new(mesh.agent(0).http());
    let client = mesh.client().await?;
    let alice = api.register_and_login("s_durable").await?;
    let r = room(&api, &alice, "durable", "public").await?;
    let (dir_a, dir_b) = (tempfile::tempdir()?, tempfile::tempdir()?);
    let env = |instance: &str, dir: &std::path::Path| {
        vec![
            ("DYSCHAT_NATS_URL".to_string(), mesh.nats.url()),
            ("DYSCHAT_SEARCH_INSTANCE".to_string(), instance.to_string()),
            (
                "DYSCHAT_SEARCH_INDEX_DIR".to_string(),
                dir.to_string_lossy().into_owned(),
            ),
        ]
    };
    // Without any instance the route says so.
    let (status, body) = search(&api, &alice, "q=durable").await?;
    ensure!(
        status == 503 && body["error"]["code"] == "unavailable",
        "{status} {body}"
    );

    let mut kept = Vec::new();
    for i in 0..5 {
        kept.push(post(&api, &alice, &r, &format!("durable kept {i}")).await?);
    }
    let edited = post(&api, &alice, &r, "durable first").await?;
    change(
        &api,
        &alice,
        "PATCH",
        &r,
        edited,
        Some(json!({"body": "durable edited"})),
    )
    .await?;
    let gone = post(&api, &alice, &r, "durable gone").await?;
    change(&api, &alice, "DELETE", &r, gone, None).await?;
    let mut a = ServiceProcess::start("dyschat-search", env("a", dir_a.path()))?;
    dyschat_tests::wait_for_service(&client, "dyschat-search").await?;
    let mut expected: Vec<u64> = kept.iter().copied().chain([edited]).collect();
    expected.sort_unstable_by(|x, y| y.cmp(x));
    let reference = answers(&api, &alice, &expected).await?;
    ensure!(
        reference[1] == vec![edited] && reference[2].is_empty(),
        "{reference:?}"
    );

    // SIGKILL, a message meanwhile, restart on the same index: the same answers and the new one.
    a.kill9();
    let second = post(&api, &alice, &r, "durable second").await?;
    a.restart()?;
    wait_until(Duration::from_secs(30), "search again", || async {
        instances(&client).await.is_ok_and(|n| n == 1)
    })
    .await?;
    let mut with_second = expected.clone();
    with_second.insert(0, second);
    let after_kill = answers(&api, &alice, &with_second).await?;
    ensure!(after_kill[3] == vec![second], "{after_kill:?}");
    ensure!(
        after_kill[1..3] == reference[1..3] && after_kill[4] == reference[4],
        "{after_kill:?} vs {reference:?}"
    );

    // A second instance on an empty index rebuilds from the stream; both answer alike.
    let mut b = ServiceProcess::start("dyschat-search", env("b", dir_b.path()))?;
    wait_until(Duration::from_secs(30), "two search instances", || async {
        instances(&client).await.is_ok_and(|n| n == 2)
    })
    .await?;
    for _ in 0..20 {
        ensure!(
            answers(&api, &alice, &with_second).await? == after_kill,
            "the two instances disagree"
        );
    }
    // The queue group spread those queries over both.
    let counts = answered(&client).await?;
    ensure!(counts.len() == 2, "stats of {counts:?}");
    ensure!(
        counts.iter().all(|n| *n > 0),
        "an instance answered nothing: {counts:?}"
    );
    // Only b: the same answers from the rebuilt index.
    a.kill9();
    wait_until(Duration::from_secs(10), "only b", || async {
        instances(&client).await.is_ok_and(|n| n == 1)
    })
    .await?;
    ensure!(
        answers(&api, &alice, &with_second).await? == after_kill,
        "the rebuilt index differs"
    );

    // a's index lost while its durable consumer remains: a rebuilds all the same.
    drop(dir_a);
    let dir_a = tempfile::tempdir()?;
    b.kill9();
    let mut a = ServiceProcess::start("dyschat-search", env("a", dir_a.path()))?;
    dyschat_tests::wait_for_service(&client, "dyschat-search").await?;
    ensure!(
        answers(&api, &alice, &with_second).await? == after_kill,
        "a lost index was not rebuilt"
    );
    a.terminate(Duration::from_secs(10)).await?;
    mesh.stop_all().await
}
