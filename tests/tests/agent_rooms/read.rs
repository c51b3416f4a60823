//! Read markers (contract section 8, first bullet) against the whole mesh: forward only, a lower
//! `seq` answered with the current marker, above the room's newest message 400, outsiders 404
//! and non-members 403, every socket of the user on every agent told, and me/rooms following.

use std::time::Duration;

use super::*;

async fn post(api: &Api, user: &LoggedIn, room: &str, body: &str) -> anyhow::Result<u64> {
    let path = format!("/api/v1/rooms/{room}/messages");
    let message = expect(api, user, "POST", &path, Some(json!({"body": body})), 201).await?;
    message["seq"].as_u64().context("seq")
}

async fn read(
    api: &Api,
    user: &LoggedIn,
    room: &str,
    seq: u64,
    status: u16,
) -> anyhow::Result<Value> {
    let path = format!("/api/v1/rooms/{room}/read");
    expect(api, user, "POST", &path, Some(json!({"seq": seq})), status).await
}

async fn summary(api: &Api, user: &LoggedIn, room: &str) -> anyhow::Result<Value> {
    let body = expect(api, user, "GET", "/api/v1/me/rooms", None, 200).await?;
    body["rooms"]
        .as_array()
        .context("rooms")?
        .iter()
        .find(|r| r["room_id"] == room)
        .cloned()
        .context("the room in me/rooms")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn read_markers_move_forward_and_reach_every_device() -> anyhow::Result<()> {
    let s = Setup::start(2).await?;
    let alice = s.user("r_alice").await?;
    let bob = s.user("r_bob").await?;
    let carol = s.user("r_carol").await?;
    let room = create(s.api(), &alice, "reading", "public").await?;
    let secret = create(s.api(), &alice, "secret", "private").await?;
    s.api().join_room(&bob.token, &room).await?;
    let mut seqs = Vec::new();
    for n in 0..4 {
        seqs.push(post(&s.apis[1], &bob, &room, &format!("bob {n}")).await?);
    }
    post(s.api(), &alice, &room, "alice's own").await?;
    let newest = post(&s.apis[1], &bob, &room, "bob last").await?;

    // Alice's second device, on the other agent.
    let mut phone = s.ws(1, &alice).await?;
    let mut laptop = s.ws(0, &alice).await?;
    let mut bobs = s.ws(1, &bob).await?;

    let start = summary(s.api(), &alice, &room).await?;
    ensure!(
        start["last_read_seq"] == 0 && start["unread"] == 5,
        "{start}"
    );

    // HTTP on agent 0: the marker moves, the phone on agent 1 hears it.
    let answer = read(s.api(), &alice, &room, seqs[1], 200).await?;
    ensure!(
        answer == json!({"room_id": room, "last_read_seq": seqs[1]}),
        "{answer}"
    );
    let heard = phone.recv_type("read_marker").await?;
    ensure!(
        heard["room_id"] == room.as_str() && heard["seq"] == seqs[1],
        "{heard}"
    );
    let heard = laptop.recv_type("read_marker").await?;
    ensure!(heard["seq"] == seqs[1], "{heard}");
    let moved = summary(&s.apis[1], &alice, &room).await?;
    ensure!(
        moved["last_read_seq"] == seqs[1] && moved["unread"] == 3,
        "two of bob's and bob's last are unread: {moved}"
    );

    // Lower: a no-op answered with the current marker, on both edges; nobody is told.
    let answer = read(s.api(), &alice, &room, seqs[0], 200).await?;
    ensure!(answer["last_read_seq"] == seqs[1], "{answer}");
    laptop
        .send(json!({"type": "read", "room_id": room, "seq": seqs[0], "ref": "low"}))
        .await?;
    let low = laptop.recv_type("read_marker").await?;
    ensure!(low["ref"] == "low" && low["seq"] == seqs[1], "{low}");
    ensure!(
        phone
            .recv_within(Duration::from_millis(500))
            .await?
            .is_none(),
        "no announcement for a marker that did not move"
    );

    // Above the newest message: 400, on both edges.
    read(s.api(), &alice, &room, newest + 1000, 400).await?;
    laptop
        .send(json!({"type": "read", "room_id": room, "seq": newest + 1000, "ref": "high"}))
        .await?;
    let high = laptop.recv_type("error").await?;
    ensure!(
        high["code"] == "bad_request" && high["ref"] == "high",
        "{high}"
    );

    // A frame on the phone (agent 1) moves it to the newest; the laptop (agent 0) hears it.
    phone
        .send(json!({"type": "read", "room_id": room, "seq": newest, "ref": "up"}))
        .await?;
    let up = phone.recv_type("read_marker").await?;
    ensure!(up["seq"] == newest, "{up}");
    let heard = laptop.recv_type("read_marker").await?;
    ensure!(
        heard["seq"] == newest && heard.get("ref").is_none(),
        "{heard}"
    );
    let all_read = summary(s.api(), &alice, &room).await?;
    ensure!(
        all_read["last_read_seq"] == newest && all_read["unread"] == 0,
        "{all_read}"
    );

    // Bob's marker is his own: his socket heard none of alice's, and his count is untouched.
    ensure!(
        bobs.recv_within(Duration::from_millis(300))
            .await?
            .is_none_or(|f| f["type"] != "read_marker"),
        "bob heard alice's marker"
    );
    let bobs_room = summary(s.api(), &bob, &room).await?;
    ensure!(
        bobs_room["last_read_seq"] == 0 && bobs_room["unread"] == 1,
        "{bobs_room}"
    );

    // Outsiders: a private room is 404, a public one 403 to a non-member.
    read(s.api(), &carol, &secret, 0, 404).await?;
    read(s.api(), &carol, &room, 1, 403).await?;
    read(s.api(), &alice, "no-such-room", 1, 404).await?;
    bobs.send(json!({"type": "read", "room_id": secret, "seq": 0, "ref": "x"}))
        .await?;
    let refused = bobs.recv_type("error").await?;
    ensure!(refused["code"] == "not_found", "{refused}");

    phone.close().await;
    laptop.close().await;
    bobs.close().await;
    s.stop().await
}
