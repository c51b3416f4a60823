//! Each user's feed (contract section 8) against the whole mesh, two agents:
//! a mention, a reply, a direct message and an invitation reach every socket of the user on
//! both agents within a second; none for oneself, none from a blocked user, one per message
//! (a mention that is also a reply is one `mention`), none for an edit; a user who was offline
//! finds them later, paged newest first; read marking and `unread_notifications`; a deleted
//! message's (and room's) notifications erased with it.
//!
//! Mentions and replies are filled in by the send path (`reply_to_sender`, `mentions`); until it
//! does, these tests publish such a message into the stream themselves, exactly as a send would
//! (same subject, `Nats-Msg-Id`, payload), and the feed takes it from there.

use std::time::{Duration, Instant};

use dyschat_protocol::wire::{ChangeKind, StoredChange, StoredMessage};
use dyschat_protocol::{ids, subjects, time};

use super::*;

/// The contract's bound on a notification's delivery.
const WITHIN: Duration = Duration::from_secs(1);

/// Publishes a message of `from` into the room as the send path does; returns its `seq`.
async fn publish(
    js: &async_nats::jetstream::Context,
    room: &str,
    from: &LoggedIn,
    body: &str,
    mentions: &[&LoggedIn],
    reply_to: Option<(u64, &LoggedIn)>,
) -> anyhow::Result<u64> {
    let mut message = StoredMessage::sent(
        room.to_string(),
        ids::new_id(),
        ids::new_id(),
        from.user_id.clone(),
        from.username.clone(),
        body.to_string(),
        time::now(),
    );
    message.mentions = mentions.iter().map(|u| u.user_id.clone()).collect();
    if let Some((seq, parent_sender)) = reply_to {
        message.reply_to = Some(seq);
        message.reply_to_sender = Some(parent_sender.user_id.clone());
    }
    let mut headers = async_nats::HeaderMap::new();
    let id = dyschat_protocol::wire::dedupe_id(&from.user_id, room, &message.client_msg_id);
    headers.insert("Nats-Msg-Id", id.as_str());
    let ack = js
        .publish_with_headers(
            subjects::room_messages(room),
            headers,
            serde_json::to_vec(&message)?.into(),
        )
        .await?
        .await?;
    Ok(ack.sequence)
}

/// The next `notification` frame of each socket, each within [`WITHIN`] of `since`; returns
/// the notifications and the slowest delivery.
async fn notified(
    sockets: &mut [&mut WsClient],
    since: Instant,
) -> anyhow::Result<(Vec<Value>, Duration)> {
    let mut out = Vec::new();
    let mut slowest = Duration::ZERO;
    for socket in sockets.iter_mut() {
        let frame = tokio::time::timeout(WITHIN * 3, socket.recv_type("notification"))
            .await
            .context("no notification within 3 s")??;
        let took = since.elapsed();
        ensure!(took < WITHIN, "a notification took {took:?}");
        slowest = slowest.max(took);
        out.push(frame["notification"].clone());
    }
    Ok((out, slowest))
}

/// Nothing but other frames than `notification` on `socket` for a while.
async fn no_notification(socket: &mut WsClient, wait: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + wait;
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match socket.recv_within(left).await? {
            Some(frame) if frame["type"] == "notification" => {
                anyhow::bail!("unexpected notification {frame}")
            }
            Some(_) => continue,
            None => break,
        }
    }
    Ok(())
}

async fn feed(api: &Api, user: &LoggedIn, query: &str) -> anyhow::Result<Value> {
    let path = format!("/api/v1/me/notifications{query}");
    expect(api, user, "GET", &path, None, 200).await
}

async fn unread(api: &Api, user: &LoggedIn) -> anyhow::Result<u64> {
    let me = expect(api, user, "GET", "/api/v1/me", None, 200).await?;
    me["unread_notifications"].as_u64().context("unread")
}

/// The user's feed once it holds exactly `n` notifications (within 10 s).
async fn wait_for_feed(api: &Api, user: &LoggedIn, n: usize) -> anyhow::Result<Value> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let page = feed(api, user, "").await?;
        if ids_of(&page).len() == n {
            return Ok(page);
        }
        ensure!(Instant::now() < deadline, "never {n} notifications: {page}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn ids_of(page: &Value) -> Vec<String> {
    page["notifications"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|n| {
            n["notification_id"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn notifications_reach_every_device_once_and_wait_for_the_offline() -> anyhow::Result<()> {
    let s = Setup::start(2).await?;
    let js = async_nats::jetstream::new(s.mesh.client().await?);
    let alice = s.user("f_alice").await?;
    let bob = s.user("f_bob").await?;
    let carol = s.user("f_carol").await?;
    let dave = s.user("f_dave").await?;
    let room = create(s.api(), &alice, "feed room", "public").await?;
    for user in [&bob, &carol, &dave] {
        s.api().join_room(&user.token, &room).await?;
    }
    // Bob on both agents, joined to nothing; alice and carol on one each. Dave is offline.
    let mut bob0 = s.ws(0, &bob).await?;
    let mut bob1 = s.ws(1, &bob).await?;
    let mut alice0 = s.ws(0, &alice).await?;
    let mut carol1 = s.ws(1, &carol).await?;

    // A mention: both of bob's sockets, within a second.
    let start = Instant::now();
    let seq = publish(&js, &room, &alice, "hi @f_bob", &[&bob], None).await?;
    let (got, slowest) = notified(&mut [&mut bob0, &mut bob1], start).await?;
    println!("mention delivered to bob's two sockets (two agents) within {slowest:?}");
    for n in &got {
        ensure!(
            n["kind"] == "mention"
                && n["room_id"] == room.as_str()
                && n["seq"] == seq
                && n["from"]["user_id"] == alice.user_id.as_str()
                && n["from"]["username"] == alice.username.as_str()
                && n["preview"] == "hi @f_bob"
                && n["read"] == false,
            "{n}"
        );
    }
    ensure!(got[0]["notification_id"] == got[1]["notification_id"]);

    // A reply to carol's message: carol; a reply that also mentions bob, to bob: one mention.
    let carols = publish(&js, &room, &carol, "carol says", &[], None).await?;
    let start = Instant::now();
    publish(&js, &room, &alice, "answer", &[], Some((carols, &carol))).await?;
    let (got, slowest) = notified(&mut [&mut carol1], start).await?;
    println!("reply delivered within {slowest:?}");
    ensure!(got[0]["kind"] == "reply", "{}", got[0]);
    let bobs = publish(&js, &room, &bob, "bob says", &[], None).await?;
    let start = Instant::now();
    let both = publish(
        &js,
        &room,
        &alice,
        "@f_bob yes",
        &[&bob],
        Some((bobs, &bob)),
    )
    .await?;
    let (got, _) = notified(&mut [&mut bob0, &mut bob1], start).await?;
    ensure!(
        got[0]["kind"] == "mention" && got[0]["seq"] == both,
        "{}",
        got[0]
    );

    // None for oneself: a message of alice's mentioning and answering alice.
    let own = publish(&js, &room, &alice, "me", &[], None).await?;
    publish(
        &js,
        &room,
        &alice,
        "@f_alice",
        &[&alice],
        Some((own, &alice)),
    )
    .await?;
    // An edit makes none, whatever its new text mentions.
    let mut edited = StoredMessage::sent(
        room.clone(),
        ids::new_id(),
        ids::new_id(),
        alice.user_id.clone(),
        alice.username.clone(),
        "now @f_carol".into(),
        time::now(),
    );
    edited.mentions = vec![carol.user_id.clone()];
    edited.edited_at = Some(time::now());
    let change = StoredChange {
        room_id: room.clone(),
        seq: own,
        prev_seq: 0,
        change: ChangeKind::Edited,
        prev_event_seq: 0,
        by: alice.user_id.clone(),
        at: time::now(),
        message: edited,
    };
    js.publish(
        subjects::room_change(&room, own),
        serde_json::to_vec(&change)?.into(),
    )
    .await?
    .await?;

    // None from a blocked user: bob blocks alice, then alice mentions and answers him.
    let path = format!("/api/v1/me/blocks/{}", alice.user_id);
    expect(s.api(), &bob, "PUT", &path, None, 200).await?;
    publish(&js, &room, &alice, "@f_bob?", &[&bob], Some((bobs, &bob))).await?;
    // A later message to carol shows the feed got past all of them.
    let start = Instant::now();
    let last = publish(&js, &room, &alice, "@f_carol", &[&carol], None).await?;
    let (got, _) = notified(&mut [&mut carol1], start).await?;
    ensure!(got[0]["seq"] == last, "the edit notified carol: {}", got[0]);
    no_notification(&mut alice0, Duration::from_millis(300)).await?;
    no_notification(&mut bob0, Duration::from_millis(300)).await?;
    no_notification(&mut bob1, Duration::from_millis(100)).await?;
    let bobs_feed = feed(s.api(), &bob, "").await?;
    ensure!(ids_of(&bobs_feed).len() == 2, "bob: {bobs_feed}");
    expect(s.api(), &bob, "DELETE", &path, None, 200).await?;

    // A direct message, through the real send path: the peer, on her socket.
    let dm = expect(
        s.api(),
        &alice,
        "POST",
        "/api/v1/dms",
        Some(json!({"user_id": carol.user_id})),
        200,
    )
    .await?;
    let dm = dm["room_id"].as_str().context("room_id")?.to_string();
    let start = Instant::now();
    let path = format!("/api/v1/rooms/{dm}/messages");
    let sent = expect(
        &s.apis[1],
        &alice,
        "POST",
        &path,
        Some(json!({"body": "psst"})),
        201,
    )
    .await?;
    let (got, slowest) = notified(&mut [&mut carol1], start).await?;
    println!("dm delivered within {slowest:?}");
    ensure!(
        got[0]["kind"] == "dm" && got[0]["seq"] == sent["seq"] && got[0]["preview"] == "psst",
        "{}",
        got[0]
    );

    // An invitation: carol, on her socket, and dave, who is offline.
    let secret = create(s.api(), &alice, "secret", "private").await?;
    let start = Instant::now();
    for user in [&carol, &dave] {
        let path = format!("/api/v1/rooms/{secret}/invites");
        let body = json!({"user_id": user.user_id});
        expect(s.api(), &alice, "POST", &path, Some(body), 200).await?;
    }
    let (got, slowest) = notified(&mut [&mut carol1], start).await?;
    println!("invite delivered within {slowest:?}");
    ensure!(
        got[0]["kind"] == "invite" && got[0]["seq"] == 0 && got[0]["room_id"] == secret.as_str(),
        "{}",
        got[0]
    );

    // Dave was offline: three mentions more, then he pages his feed, newest first.
    for n in 0..3 {
        publish(&js, &room, &alice, &format!("@f_dave {n}"), &[&dave], None).await?;
    }
    let all = wait_for_feed(&s.apis[1], &dave, 4).await?;
    let all_ids = ids_of(&all);
    ensure!(all_ids.len() == 4 && all["next_cursor"].is_null(), "{all}");
    let kinds: Vec<&str> = all["notifications"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|n| n["kind"].as_str().unwrap_or_default())
        .collect();
    ensure!(
        kinds == ["mention", "mention", "mention", "invite"],
        "{kinds:?}"
    );
    let numbers: Vec<u64> = all_ids.iter().filter_map(|id| id.parse().ok()).collect();
    ensure!(numbers.windows(2).all(|w| w[0] > w[1]), "{numbers:?}");
    let first = feed(s.api(), &dave, "?limit=3").await?;
    ensure!(ids_of(&first) == all_ids[..3], "{first}");
    ensure!(first["next_cursor"] == all_ids[2].as_str(), "{first}");
    let rest = feed(s.api(), &dave, &format!("?limit=3&before={}", all_ids[2])).await?;
    ensure!(
        ids_of(&rest) == all_ids[3..] && rest["next_cursor"].is_null(),
        "{rest}"
    );
    for bad in ["?limit=0", "?limit=101", "?before=x"] {
        let path = format!("/api/v1/me/notifications{bad}");
        expect(s.api(), &dave, "GET", &path, None, 400).await?;
    }

    // Read marking: up to the second newest; the newest stays unread; never backwards.
    ensure!(unread(s.api(), &dave).await? == 4);
    let path = "/api/v1/me/notifications/read";
    let answer = expect(
        s.api(),
        &dave,
        "POST",
        path,
        Some(json!({"up_to": all_ids[1]})),
        200,
    )
    .await?;
    ensure!(answer["unread_notifications"] == 1, "{answer}");
    ensure!(unread(&s.apis[1], &dave).await? == 1);
    let answer = expect(
        s.api(),
        &dave,
        "POST",
        path,
        Some(json!({"up_to": all_ids[3]})),
        200,
    )
    .await?;
    ensure!(answer["up_to"] == all_ids[1].as_str(), "{answer}");
    let page = feed(s.api(), &dave, "").await?;
    let read: Vec<bool> = page["notifications"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|n| n["read"] == true)
        .collect();
    ensure!(read == [false, true, true, true], "{page}");
    let too_far = (numbers[0] + 1_000).to_string();
    expect(
        s.api(),
        &dave,
        "POST",
        path,
        Some(json!({"up_to": too_far})),
        400,
    )
    .await?;
    expect(
        s.api(),
        &dave,
        "POST",
        path,
        Some(json!({"up_to": "zero"})),
        400,
    )
    .await?;
    ensure!(unread(s.api(), &bob).await? == 2);

    // A deleted message's notifications go with its text; a deleted room's too.
    let mentions: Vec<u64> = all["notifications"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|n| n["kind"] == "mention")
        .filter_map(|n| n["seq"].as_u64())
        .collect();
    let mut erased = StoredMessage::sent(
        room.clone(),
        ids::new_id(),
        ids::new_id(),
        alice.user_id.clone(),
        alice.username.clone(),
        String::new(),
        time::now(),
    );
    erased.deleted = true;
    let deletion = StoredChange {
        room_id: room.clone(),
        seq: mentions[0],
        prev_seq: 0,
        change: ChangeKind::Deleted,
        prev_event_seq: 0,
        by: alice.user_id.clone(),
        at: time::now(),
        message: erased,
    };
    js.publish(
        subjects::room_change(&room, mentions[0]),
        serde_json::to_vec(&deletion)?.into(),
    )
    .await?
    .await?;
    let left = wait_for_feed(s.api(), &dave, 3).await?;
    ensure!(
        left["notifications"]
            .as_array()
            .into_iter()
            .flatten()
            .all(|n| n["seq"] != mentions[0]),
        "{left}"
    );
    expect(
        s.api(),
        &alice,
        "DELETE",
        &format!("/api/v1/rooms/{room}"),
        None,
        200,
    )
    .await?;
    let left = wait_for_feed(s.api(), &dave, 1).await?;
    ensure!(
        left["notifications"][0]["kind"] == "invite" && left["notifications"][0]["read"] == true,
        "{left}"
    );
    // The one unread (the newest mention) went with the room.
    ensure!(unread(s.api(), &dave).await? == 0);

    for socket in [bob0, bob1, alice0, carol1] {
        socket.close().await;
    }
    s.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn full_pages_and_counts_stay_bounded() -> anyhow::Result<()> {
    let s = Setup::start(1).await?;
    let js = async_nats::jetstream::new(s.mesh.client().await?);
    let alice = s.user("p_alice").await?;
    let eve = s.user("p_eve").await?;
    let room = create(s.api(), &alice, "many", "public").await?;
    s.api().join_room(&eve.token, &room).await?;
    // Other users' notifications in between: eve's are not contiguous in the stream.
    let other = s.user("p_other").await?;
    s.api().join_room(&other.token, &room).await?;
    for n in 0..110 {
        publish(
            &js,
            &room,
            &alice,
            &format!("@p_eve {n}"),
            &[&eve, &other],
            None,
        )
        .await?;
    }
    wait_for_unread(s.api(), &eve, 110).await?;
    let start = Instant::now();
    let page = feed(s.api(), &eve, "?limit=100").await?;
    let page_took = start.elapsed();
    let ids = ids_of(&page);
    ensure!(ids.len() == 100, "{}", ids.len());
    let cursor = page["next_cursor"].as_str().context("a cursor")?;
    ensure!(cursor == ids[99], "{cursor}");
    let rest = feed(s.api(), &eve, &format!("?before={cursor}")).await?;
    ensure!(
        ids_of(&rest).len() == 10 && rest["next_cursor"].is_null(),
        "{rest}"
    );
    let start = Instant::now();
    ensure!(unread(s.api(), &eve).await? == 110);
    let me_took = start.elapsed();
    println!("a page of 100 notifications took {page_took:?}, GET /api/v1/me {me_took:?}");
    s.stop().await
}

/// Until the user has `n` unread notifications (within 10 s).
async fn wait_for_unread(api: &Api, user: &LoggedIn, n: u64) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while unread(api, user).await? != n {
        ensure!(Instant::now() < deadline, "never {n} unread");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}
