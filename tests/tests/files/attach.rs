//! Attachments: a send (WebSocket and HTTP) naming uploaded files carries them as Files in the
//! live frames of every agent and in history; lists that name anything else are refused.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sends_carry_their_files_everywhere_and_refuse_bad_lists() -> anyhow::Result<()> {
    let s = Setup::start(2).await?;
    let alice = s.user("h_alice").await?;
    let bob = s.user("h_bob").await?;
    let room = create(s.api(), &alice, "attached", "public").await?;
    let other = create(s.api(), &alice, "elsewhere", "public").await?;
    s.api().join_room(&bob.token, &room).await?;
    let mut alices = s.ws(0, &alice).await?;
    let mut bobs = s.ws(1, &bob).await?;
    alices.join(&room, None).await?;
    bobs.join(&room, None).await?;

    let png = s
        .uploaded(&alice, &room, "pic.png", "image/png", noise(5000, 1))
        .await?;
    let pdf = s
        .uploaded(&alice, &room, "doc.pdf", "application/pdf", noise(300, 2))
        .await?;
    // Over WebSocket: the ack, and both agents' sockets get the message with the Files.
    alices
        .send(
            json!({"type": "send", "room_id": room, "body": "look", "client_msg_id": "w1",
            "attachments": [id_of(&png)?, id_of(&pdf)?], "ref": "s"}),
        )
        .await?;
    let ack = alices.recv_type("ack").await?;
    ensure!(ack["ref"] == "s" && ack["duplicate"] == false, "{ack}");
    for socket in [&mut alices, &mut bobs] {
        let live = socket.recv_type("message").await?;
        ensure!(
            live["attachments"] == json!([png, pdf]),
            "live attachments: {live}"
        );
    }
    // A retry of the same send is a duplicate, not a refusal (the files are its own).
    alices
        .send(
            json!({"type": "send", "room_id": room, "body": "look", "client_msg_id": "w1",
            "attachments": [id_of(&png)?, id_of(&pdf)?], "ref": "s2"}),
        )
        .await?;
    let again = alices.recv_type("ack").await?;
    ensure!(
        again["duplicate"] == true && again["seq"] == ack["seq"],
        "{again}"
    );

    // Over HTTP: the answered Message carries the File.
    let txt = s
        .uploaded(&bob, &room, "notes.txt", "text/plain", b"notes".to_vec())
        .await?;
    let posted = expect(
        &s.apis[1],
        &bob,
        "POST",
        &format!("/api/v1/rooms/{room}/messages"),
        Some(json!({"body": "mine", "attachments": [id_of(&txt)?]})),
        201,
    )
    .await?;
    ensure!(posted["attachments"] == json!([txt]), "{posted}");
    let live = alices.recv_type("message").await?;
    ensure!(live["attachments"] == json!([txt]), "{live}");

    // History shows both, unchanged (as stored by msg-writer or read from the stream).
    let mut found = false;
    for _ in 0..50 {
        let page = expect(
            s.api(),
            &alice,
            "GET",
            &format!("/api/v1/rooms/{room}/messages"),
            None,
            200,
        )
        .await?;
        let messages = page["messages"].as_array().context("messages")?;
        found = messages.len() == 2
            && messages[0]["attachments"] == json!([png, pdf])
            && messages[1]["attachments"] == json!([txt]);
        if found {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    ensure!(found, "history lacks the attachments");
    // A `since` replay carries them too.
    let mut late = s.ws(1, &bob).await?;
    late.send(json!({"type": "join", "room_id": room, "since": 0}))
        .await?;
    late.recv_type("joined").await?;
    let first = late.recv_type("message").await?;
    let second = late.recv_type("message").await?;
    ensure!(
        first["attachments"] == json!([png, pdf]) && second["attachments"] == json!([txt]),
        "replayed: {first} {second}"
    );
    // The attached files are still served.
    let got = s.download(1, &bob, &id_of(&png)?, &[]).await?;
    ensure!(got.status == 200 && got.header("content-type") == "image/png");

    // Refused lists: 11 ids, an unknown id, a file of another room, a file another message
    // holds, a repeated id. Nothing is sent.
    let mut eleven = Vec::new();
    for i in 0..11 {
        let f = s
            .uploaded(&alice, &room, &format!("f{i}"), "text/plain", vec![b'a'; 3])
            .await?;
        eleven.push(id_of(&f)?);
    }
    let elsewhere = s
        .uploaded(&alice, &other, "x.txt", "text/plain", b"x".to_vec())
        .await?;
    let bad_lists = [
        json!(eleven),
        json!([format!("{room}-01J00000000000000000000000")]),
        json!(["not-a-file"]),
        json!([id_of(&elsewhere)?]),
        json!([id_of(&txt)?]),
        json!([eleven[0], eleven[0]]),
    ];
    for list in &bad_lists {
        let (status, answer) = s
            .api()
            .call(
                "POST",
                &format!("/api/v1/rooms/{room}/messages"),
                Some(&alice.token),
                Some(json!({"body": "bad", "attachments": list})),
            )
            .await?;
        ensure!(
            status == 400 && answer["error"]["code"] == "bad_request",
            "{list}: {status} {answer}"
        );
        alices
            .send(json!({"type": "send", "room_id": room, "body": "bad", "attachments": list, "ref": "b"}))
            .await?;
        let error = alices.recv_type("error").await?;
        ensure!(
            error["code"] == "bad_request" && error["ref"] == "b",
            "{list}: {error}"
        );
    }
    // Ten is fine, and an empty list means none.
    let ten = expect(
        s.api(),
        &alice,
        "POST",
        &format!("/api/v1/rooms/{room}/messages"),
        Some(json!({"body": "ten", "attachments": eleven[..10]})),
        201,
    )
    .await?;
    ensure!(
        ten["attachments"].as_array().map(Vec::len) == Some(10),
        "{ten}"
    );
    let none = expect(
        s.api(),
        &alice,
        "POST",
        &format!("/api/v1/rooms/{room}/messages"),
        Some(json!({"body": "none", "attachments": []})),
        201,
    )
    .await?;
    ensure!(none["attachments"] == json!([]), "{none}");
    s.stop().await
}
