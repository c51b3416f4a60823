//! Messages that change (contract section 7) against the whole mesh on two agents: replies,
//! edits, deletions that erase, reactions; `message_updated` with the whole new state and a
//! `prev_event_seq` chain on every subscribed socket of both agents; `joined.last_event_seq` and
//! `since` replays of changes in their current state; who may do what, and the errors.

use std::time::Duration;

use super::*;

async fn post(api: &Api, user: &LoggedIn, room: &str, body: Value) -> anyhow::Result<Value> {
    let path = format!("/api/v1/rooms/{room}/messages");
    expect(api, user, "POST", &path, Some(body), 201).await
}

fn seq_of(message: &Value) -> anyhow::Result<u64> {
    message["seq"].as_u64().context("seq")
}

/// The answer of type `answer` and the next `message_updated`, which may come in either order
/// (the live copy of a change can overtake its answer).
async fn answer_and_update(socket: &mut WsClient, answer: &str) -> anyhow::Result<(Value, Value)> {
    let (mut got, mut update) = (None, None);
    while got.is_none() || update.is_none() {
        let frame = socket.recv().await?;
        if frame["type"] == answer {
            got = Some(frame);
        } else if frame["type"] == "message_updated" && update.is_none() {
            update = Some(frame);
        }
    }
    Ok((got.context("answer")?, update.context("update")?))
}

/// The next `message_updated` on `socket`.
async fn updated(socket: &mut WsClient) -> anyhow::Result<Value> {
    socket.recv_type("message_updated").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn edits_reactions_and_deletions_reach_every_socket_in_one_chain() -> anyhow::Result<()> {
    let s = Setup::start(2).await?;
    let alice = s.user("c_alice").await?;
    let bob = s.user("c_bob").await?;
    let room = create(s.api(), &alice, "changing", "public").await?;
    s.api().join_room(&bob.token, &room).await?;
    let mut alices = s.ws(0, &alice).await?;
    let mut bobs = s.ws(1, &bob).await?;
    alices.join(&room, None).await?;
    bobs.join(&room, None).await?;

    let first = post(s.api(), &alice, &room, json!({"body": "helo"})).await?;
    let seq = seq_of(&first)?;
    for field in ["reply_to", "edited_at"] {
        ensure!(first[field].is_null(), "{field}: {first}");
    }
    ensure!(
        first["deleted"] == false
            && first["reactions"] == json!([])
            && first["mentions"] == json!([])
            && first["attachments"] == json!([]),
        "{first}"
    );

    // An edit over WebSocket: answered `edited`, both agents' sockets get the whole new state.
    alices
        .send(json!({"type": "edit", "room_id": room, "seq": seq, "body": "hello", "ref": "e"}))
        .await?;
    let (edited, alices_update) = answer_and_update(&mut alices, "edited").await?;
    ensure!(
        edited["ref"] == "e" && edited["seq"] == seq && edited["edited_at"].is_string(),
        "{edited}"
    );
    let mut chain = 0;
    let bobs_update = updated(&mut bobs).await?;
    for u in [alices_update, bobs_update] {
        ensure!(
            u["change"] == "edited"
                && u["message"]["body"] == "hello"
                && u["message"]["seq"] == seq
                && u["message"]["edited_at"] == edited["edited_at"]
                && u["message"]["message_id"] == first["message_id"]
                && u["prev_event_seq"] == 0
                && u["event_seq"].as_u64() > Some(seq),
            "{u}"
        );
        chain = u["event_seq"].as_u64().context("event_seq")?;
    }

    // Reactions over HTTP on the other agent; a repeat changes nothing and sends nothing.
    let thumbs = "%F0%9F%91%8D";
    let path = format!("/api/v1/rooms/{room}/messages/{seq}/reactions/{thumbs}");
    let reacted = expect(&s.apis[1], &bob, "PUT", &path, None, 200).await?;
    ensure!(
        reacted["reactions"] == json!([{"emoji": "👍", "count": 1, "user_ids": [bob.user_id]}])
            && reacted["body"] == "hello",
        "{reacted}"
    );
    let again = expect(&s.apis[1], &bob, "PUT", &path, None, 200).await?;
    ensure!(again["reactions"] == reacted["reactions"], "{again}");
    let mut firsts = Vec::new();
    for socket in [&mut alices, &mut bobs] {
        let one = updated(socket).await?;
        ensure!(
            one["change"] == "reaction" && one["prev_event_seq"] == chain,
            "{one}"
        );
        firsts.push(one);
    }
    alices
        .send(json!({"type": "react", "room_id": room, "seq": seq, "emoji": "👍", "ref": "r"}))
        .await?;
    // The answer and the announcement of alice's reaction, in either order.
    let (reacted_answer, second) = answer_and_update(&mut alices, "reacted").await?;
    ensure!(reacted_answer["ref"] == "r", "{reacted_answer}");
    let mut alices_second = Some(second);
    for (i, one) in firsts.iter().enumerate() {
        let two = match (i, alices_second.take()) {
            (0, Some(frame)) => frame,
            _ => updated(&mut bobs).await?,
        };
        ensure!(
            two["message"]["reactions"][0]["count"] == 2
                && two["prev_event_seq"] == one["event_seq"],
            "{two}"
        );
    }
    ensure!(
        bobs.recv_within(Duration::from_millis(300))
            .await?
            .is_none_or(|f| f["type"] != "message_updated"),
        "a repeated reaction sent nothing"
    );
    expect(&s.apis[1], &bob, "DELETE", &path, None, 200).await?;
    let after = updated(&mut alices).await?;
    ensure!(
        after["message"]["reactions"]
            == json!([{"emoji": "👍", "count": 1, "user_ids": [alice.user_id]}]),
        "{after}"
    );

    // Who may: bob cannot edit or delete alice's message.
    let message_path = format!("/api/v1/rooms/{room}/messages/{seq}");
    expect(
        s.api(),
        &bob,
        "PATCH",
        &message_path,
        Some(json!({"body": "mine"})),
        403,
    )
    .await?;
    expect(s.api(), &bob, "DELETE", &message_path, None, 403).await?;
    expect(
        s.api(),
        &alice,
        "PATCH",
        &message_path,
        Some(json!({"body": "  "})),
        400,
    )
    .await?;
    let unknown = format!("/api/v1/rooms/{room}/messages/999999");
    expect(
        s.api(),
        &alice,
        "PATCH",
        &unknown,
        Some(json!({"body": "x"})),
        404,
    )
    .await?;
    let bad_emoji = format!("/api/v1/rooms/{room}/messages/{seq}/reactions/a%20b");
    expect(s.api(), &bob, "PUT", &bad_emoji, None, 400).await?;

    // A reply, then the parent's deletion by its sender.
    let reply = post(
        &s.apis[1],
        &bob,
        &room,
        json!({"body": "a reply", "reply_to": seq}),
    )
    .await?;
    ensure!(reply["reply_to"] == seq, "{reply}");
    let deleted = expect(s.api(), &alice, "DELETE", &message_path, None, 200).await?;
    ensure!(
        deleted == json!({"room_id": room, "seq": seq, "deleted": true}),
        "{deleted}"
    );
    let gone = bobs.recv_type("message_updated").await;
    let mut gone = gone?;
    while gone["change"] != "deleted" {
        gone = updated(&mut bobs).await?;
    }
    ensure!(
        gone["message"]["deleted"] == true
            && gone["message"]["body"] == ""
            && gone["message"]["reactions"] == json!([])
            && gone["message"]["attachments"] == json!([]),
        "{gone}"
    );
    // A deleted message takes no more changes, and cannot be replied to.
    expect(
        s.api(),
        &alice,
        "PATCH",
        &message_path,
        Some(json!({"body": "x"})),
        409,
    )
    .await?;
    expect(&s.apis[1], &bob, "PUT", &path, None, 409).await?;
    let path_post = format!("/api/v1/rooms/{room}/messages");
    expect(
        s.api(),
        &bob,
        "POST",
        &path_post,
        Some(json!({"body": "x", "reply_to": seq})),
        400,
    )
    .await?;
    expect(
        s.api(),
        &bob,
        "POST",
        &path_post,
        Some(json!({"body": "x", "reply_to": 999999})),
        400,
    )
    .await?;

    // History holds the tombstone in place, and no page shows the old text.
    let history = s.api().all_messages(&bob.token, &room).await?;
    let tombstone = history
        .iter()
        .find(|m| m["seq"] == seq)
        .context("the tombstone in history")?;
    ensure!(
        tombstone["deleted"] == true && tombstone["body"] == "",
        "{tombstone}"
    );
    let text = serde_json::to_string(&history)?;
    ensure!(!text.contains("hello") && !text.contains("helo"), "{text}");

    // A socket joining from before the message replays it as the tombstone, then the changes,
    // each in its current state, and knows the room's newest position of either kind.
    let mut late = s.ws(1, &alice).await?;
    let joined = late.join(&room, Some(seq - 1)).await?;
    let last_event_seq = joined["last_event_seq"]
        .as_u64()
        .context("last_event_seq")?;
    ensure!(
        joined["last_seq"] == seq_of(&reply)? && last_event_seq > seq_of(&reply)?,
        "{joined}"
    );
    // A read marker may stand on a change (up to last_event_seq), not beyond.
    let read = format!("/api/v1/rooms/{room}/read");
    let marked = expect(
        s.api(),
        &bob,
        "POST",
        &read,
        Some(json!({"seq": last_event_seq})),
        200,
    )
    .await?;
    ensure!(marked["last_read_seq"] == last_event_seq, "{marked}");
    expect(
        s.api(),
        &bob,
        "POST",
        &read,
        Some(json!({"seq": last_event_seq + 1})),
        400,
    )
    .await?;
    let mut replayed = Vec::new();
    let mut position = seq - 1;
    while position < last_event_seq {
        let frame = late.recv().await?;
        position = match frame["type"].as_str() {
            Some("message") => frame["seq"].as_u64().context("seq")?,
            Some("message_updated") => frame["event_seq"].as_u64().context("event_seq")?,
            _ => continue,
        };
        replayed.push(frame);
    }
    ensure!(
        replayed[0]["type"] == "message" && replayed[0]["deleted"] == true,
        "the deleted message first, as its tombstone: {replayed:?}"
    );
    let text = serde_json::to_string(&replayed)?;
    ensure!(!text.contains("hello") && !text.contains("helo"), "{text}");
    let changes: Vec<&Value> = replayed
        .iter()
        .filter(|f| f["type"] == "message_updated")
        .collect();
    ensure!(!changes.is_empty(), "{replayed:?}");
    for pair in changes.windows(2) {
        ensure!(
            pair[1]["prev_event_seq"] == pair[0]["event_seq"],
            "{pair:?}"
        );
    }
    s.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn moderators_delete_lower_roles_messages_and_outsiders_see_nothing() -> anyhow::Result<()> {
    let s = Setup::start(1).await?;
    let owner = s.user("d_owner").await?;
    let moderator = s.user("d_mod").await?;
    let member = s.user("d_member").await?;
    let outsider = s.user("d_out").await?;
    let room = create(s.api(), &owner, "moderated", "private").await?;
    for user in [&moderator, &member] {
        let invite = format!("/api/v1/rooms/{room}/invites");
        expect(
            s.api(),
            &owner,
            "POST",
            &invite,
            Some(json!({"user_id": user.user_id})),
            200,
        )
        .await?;
        s.api().join_room(&user.token, &room).await?;
    }
    let role = format!("/api/v1/rooms/{room}/members/{}/role", moderator.user_id);
    expect(
        s.api(),
        &owner,
        "PUT",
        &role,
        Some(json!({"role": "moderator"})),
        200,
    )
    .await?;

    let by_member = seq_of(&post(s.api(), &member, &room, json!({"body": "m"})).await?)?;
    let by_owner = seq_of(&post(s.api(), &owner, &room, json!({"body": "o"})).await?)?;
    let path = |seq: u64| format!("/api/v1/rooms/{room}/messages/{seq}");
    // The outsider of a private room: 404 on every change route.
    expect(s.api(), &outsider, "DELETE", &path(by_member), None, 404).await?;
    expect(
        s.api(),
        &outsider,
        "PATCH",
        &path(by_member),
        Some(json!({"body": "x"})),
        404,
    )
    .await?;
    let react = format!("{}/reactions/x", path(by_member));
    expect(s.api(), &outsider, "PUT", &react, None, 404).await?;
    // A member cannot delete the owner's; a moderator can delete a member's, not the owner's.
    expect(s.api(), &member, "DELETE", &path(by_owner), None, 403).await?;
    expect(s.api(), &moderator, "DELETE", &path(by_owner), None, 403).await?;
    expect(s.api(), &moderator, "DELETE", &path(by_member), None, 200).await?;
    expect(s.api(), &member, "DELETE", &path(by_member), None, 409).await?;
    // The owner deletes over WebSocket.
    let mut socket = s.ws(0, &owner).await?;
    socket
        .send(json!({"type": "delete", "room_id": room, "seq": by_owner, "ref": "d"}))
        .await?;
    let answer = socket.recv_type("deleted").await?;
    ensure!(
        answer == json!({"type": "deleted", "room_id": room, "seq": by_owner, "ref": "d"}),
        "{answer}"
    );
    s.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_send_names_its_mentions_and_the_feed_tells_them() -> anyhow::Result<()> {
    let s = Setup::start(2).await?;
    let alice = s.user("m_alice").await?;
    let bob = s.user("m_bob").await?;
    let bobby = s.user("m_bobby").await?;
    let outsider = s.user("m_out").await?;
    let room = create(s.api(), &alice, "mentions", "public").await?;
    for user in [&bob, &bobby] {
        s.api().join_room(&user.token, &room).await?;
    }
    let mut bobs = s.ws(1, &bob).await?;
    // The contract's rule: case ignored, trailing `.` dropped, `@m_bobby` is not `@m_bob`,
    // an address is no mention, the sender and non-members never, each user once.
    let body = "hi @M_BOB. and @m_bobby, mail x@m_bob, @m_out @m_alice @m_bob";
    let sent = post(&s.apis[0], &alice, &room, json!({"body": body})).await?;
    ensure!(
        sent["mentions"] == json!([bob.user_id, bobby.user_id]),
        "{sent}"
    );
    let _ = outsider;
    // The mention counts in me/rooms follow, exact whether the writer has stored the message
    // (counted in Redis) or not yet (read from the stream).
    let counted_at = [(&bob, 1), (&bobby, 1), (&alice, 0), (&bob, 1), (&bobby, 1)];
    for (i, (user, expected)) in counted_at.into_iter().enumerate() {
        if i == 3 {
            tokio::time::sleep(Duration::from_millis(1500)).await;
        }
        let rooms = expect(s.api(), user, "GET", "/api/v1/me/rooms", None, 200).await?;
        let mine = rooms["rooms"]
            .as_array()
            .and_then(|r| r.iter().find(|r| r["room_id"] == room.as_str()))
            .context("the room")?;
        ensure!(mine["mentions"] == expected, "{}: {mine}", user.username);
    }
    let n = bobs.recv_type("notification").await?;
    ensure!(
        n["notification"]["kind"] == "mention" && n["notification"]["seq"] == sent["seq"],
        "{n}"
    );
    // A reply to bob's message tells bob (a reply, no mention); an edit names mentions again
    // and tells nobody.
    let bobs_message = post(&s.apis[1], &bob, &room, json!({"body": "question"})).await?;
    let reply = post(
        &s.apis[0],
        &alice,
        &room,
        json!({"body": "answer", "reply_to": bobs_message["seq"]}),
    )
    .await?;
    let n = bobs.recv_type("notification").await?;
    ensure!(
        n["notification"]["kind"] == "reply" && n["notification"]["seq"] == reply["seq"],
        "{n}"
    );
    let path = format!("/api/v1/rooms/{room}/messages/{}", reply["seq"]);
    let edited = expect(
        s.api(),
        &alice,
        "PATCH",
        &path,
        Some(json!({"body": "answer @m_bobby"})),
        200,
    )
    .await?;
    ensure!(edited["mentions"] == json!([bobby.user_id]), "{edited}");
    ensure!(
        bobs.recv_within(Duration::from_millis(500))
            .await?
            .is_none_or(|f| f["type"] != "notification"),
        "an edit notifies nobody"
    );
    s.stop().await
}
