//! Read receipts (contract section 8) against the whole mesh, two agents: in a small room the
//! other subscribed members get `receipt` and the reader none (and one `read_marker`, its
//! answer); a room of 101 members (joined through the rooms service) sends none and lists none;
//! members only may list them (an outsider of a private room 404, a non-member 403).

use std::time::Duration;

use dyschat_protocol::subjects;
use dyschat_protocol::wire::MembershipRequest;

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn receipts_in_small_rooms_only_and_for_members_only() -> anyhow::Result<()> {
    let s = Setup::start(2).await?;
    let nats = s.mesh.client().await?;
    let alice = s.user("rc_alice").await?;
    let bob = s.user("rc_bob").await?;
    let carol = s.user("rc_carol").await?;
    let outsider = s.user("rc_out").await?;
    let room = create(s.api(), &alice, "small", "public").await?;
    let secret = create(s.api(), &alice, "hidden", "private").await?;
    for user in [&bob, &carol] {
        s.api().join_room(&user.token, &room).await?;
    }
    let path = format!("/api/v1/rooms/{room}/messages");
    let seq = expect(
        s.api(),
        &bob,
        "POST",
        &path,
        Some(json!({"body": "one"})),
        201,
    )
    .await?["seq"]
        .as_u64()
        .context("seq")?;

    let mut alice0 = s.ws(0, &alice).await?;
    let mut bob1 = s.ws(1, &bob).await?;
    let mut carol0 = s.ws(0, &carol).await?;
    for socket in [&mut alice0, &mut bob1, &mut carol0] {
        socket.join(&room, None).await?;
    }

    // Alice reads (a frame on agent 0): bob (agent 1) and carol (agent 0) get her receipt.
    alice0
        .send(json!({"type": "read", "room_id": room, "seq": seq, "ref": "r"}))
        .await?;
    let answer = alice0.recv_type("read_marker").await?;
    ensure!(answer["ref"] == "r" && answer["seq"] == seq, "{answer}");
    for socket in [&mut bob1, &mut carol0] {
        let receipt = socket.recv_type("receipt").await?;
        ensure!(
            receipt
                == json!({"type": "receipt", "room_id": room, "user_id": alice.user_id, "seq": seq}),
            "{receipt}"
        );
    }
    // Alice's socket got its answer once, and no receipt of her own.
    while let Some(frame) = alice0.recv_within(Duration::from_millis(500)).await? {
        ensure!(
            frame["type"] != "read_marker" && frame["type"] != "receipt",
            "alice got {frame}"
        );
    }

    let receipts = expect(
        s.api(),
        &carol,
        "GET",
        &format!("/api/v1/rooms/{room}/receipts"),
        None,
        200,
    )
    .await?;
    let mut listed: Vec<(String, u64)> = receipts["receipts"]
        .as_array()
        .context("receipts")?
        .iter()
        .map(|r| {
            (
                r["username"].as_str().unwrap_or_default().to_string(),
                r["last_read_seq"].as_u64().unwrap_or(u64::MAX),
            )
        })
        .collect();
    listed.sort();
    ensure!(
        listed
            == [
                (alice.username.clone(), seq),
                (bob.username.clone(), 0),
                (carol.username.clone(), 0)
            ],
        "{receipts}"
    );
    // Members only: an outsider of a private room 404, a non-member of a public one 403.
    for (room_id, status) in [(&secret, 404), (&room, 403)] {
        let path = format!("/api/v1/rooms/{room_id}/receipts");
        expect(s.api(), &outsider, "GET", &path, None, status).await?;
    }
    expect(
        s.api(),
        &outsider,
        "GET",
        "/api/v1/rooms/no-such/receipts",
        None,
        404,
    )
    .await?;

    // A room of 101 members (98 more joined through the rooms service): none sent, none listed.
    let big = create(s.api(), &alice, "big", "public").await?;
    s.api().join_room(&bob.token, &big).await?;
    s.api().join_room(&carol.token, &big).await?;
    let joins = (0..98).map(|i| {
        let nats = nats.clone();
        let big = big.clone();
        async move {
            let request = MembershipRequest {
                room_id: big,
                user_id: format!("rc-extra-{i}"),
                username: format!("rc_extra_{i}"),
            };
            let reply: Result<dyschat_protocol::wire::MembershipReply, _> =
                dyschat_runtime::rpc::request(
                    &nats,
                    subjects::rooms::subject(subjects::rooms::JOIN),
                    &request,
                    Duration::from_secs(10),
                )
                .await;
            reply.map_err(|e| anyhow::anyhow!("{e:?}"))
        }
    });
    futures::future::try_join_all(joins).await?;
    let info = expect(
        s.api(),
        &alice,
        "GET",
        &format!("/api/v1/rooms/{big}"),
        None,
        200,
    )
    .await?;
    ensure!(info["member_count"] == 101, "{info}");
    bob1.join(&big, None).await?;
    let path = format!("/api/v1/rooms/{big}/messages");
    let seq = expect(
        s.api(),
        &carol,
        "POST",
        &path,
        Some(json!({"body": "many"})),
        201,
    )
    .await?["seq"]
        .as_u64()
        .context("seq")?;
    expect(
        s.api(),
        &alice,
        "POST",
        &format!("/api/v1/rooms/{big}/read"),
        Some(json!({"seq": seq})),
        200,
    )
    .await?;
    while let Some(frame) = bob1.recv_within(Duration::from_millis(700)).await? {
        ensure!(
            frame["type"] != "receipt",
            "a receipt in a room of 101: {frame}"
        );
    }
    let none = expect(
        s.api(),
        &bob,
        "GET",
        &format!("/api/v1/rooms/{big}/receipts"),
        None,
        200,
    )
    .await?;
    ensure!(none == json!({"receipts": []}), "{none}");

    for socket in [alice0, bob1, carol0] {
        socket.close().await;
    }
    s.stop().await
}
