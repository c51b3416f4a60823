//! "From the moment a kick, ban or deletion is answered, the user's sockets receive no further
//! frame of that room except `kicked` / `room_deleted`", with the user's sockets on two agents
//! at once: each agent answers the eviction only after detaching them, so by the answer each
//! socket has its last frame of the room queued, and what the room does next reaches neither.

use std::time::Duration;

use super::*;

/// Reads `socket` until its `kind` frame for `room`, then for a while after: nothing more of
/// `room` may come.
async fn last_of_room(socket: &mut WsClient, room: &str, kind: &str) -> anyhow::Result<Value> {
    let last = loop {
        let frame = socket.recv().await?;
        if frame["type"] == kind && frame["room_id"] == room {
            break frame;
        }
    };
    while let Some(frame) = socket.recv_within(Duration::from_millis(300)).await? {
        ensure!(
            frame["room_id"] != room && frame["message"]["room_id"] != room,
            "after {kind}: {frame}"
        );
    }
    Ok(last)
}

/// The room goes on: a message, a typing, a member joining.
async fn room_goes_on(
    s: &Setup,
    owner: &mut WsClient,
    room: &str,
    other: &LoggedIn,
) -> anyhow::Result<()> {
    owner
        .send(json!({"type": "send", "room_id": room, "body": "after"}))
        .await?;
    owner.recv_type("ack").await?;
    owner
        .send(json!({"type": "typing", "room_id": room}))
        .await?;
    s.api().join_room(&other.token, room).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kick_ban_and_delete_stop_every_frame_on_both_agents() -> anyhow::Result<()> {
    let s = Setup::start(2).await?;
    let owner = s.user("e_owner").await?;
    let victim = s.user("e_victim").await?;
    let other = s.user("e_other").await?;
    let room = create(s.api(), &owner, "eviction", "public").await?;
    let mut owner_ws = s.ws(0, &owner).await?;
    owner_ws.join(&room, None).await?;
    let mut sockets = vec![s.ws(0, &victim).await?, s.ws(1, &victim).await?];
    for socket in &mut sockets {
        socket.join(&room, None).await?;
    }
    // Kick: both sockets get `kicked` with who and why, then nothing of the room.
    let kick = format!("/api/v1/rooms/{room}/members/{}/kick", victim.user_id);
    let answer = expect(
        s.api(),
        &owner,
        "POST",
        &kick,
        Some(json!({"reason": "calm down"})),
        200,
    )
    .await?;
    ensure!(
        answer == json!({"room_id": room, "user_id": victim.user_id, "joined": false}),
        "{answer}"
    );
    room_goes_on(&s, &mut owner_ws, &room, &other).await?;
    for socket in &mut sockets {
        let kicked = last_of_room(socket, &room, "kicked").await?;
        ensure!(
            kicked["by"] == owner.user_id && kicked["reason"] == "calm down",
            "{kicked}"
        );
    }
    // A kicked user sends nothing into the room, on either agent, and may join again.
    for socket in &mut sockets {
        let answer = frame_answer(
            socket,
            json!({"type": "send", "room_id": room, "body": "x"}),
        )
        .await?;
        ensure!(answer["code"] == "forbidden", "{answer}");
    }
    for socket in &mut sockets {
        socket.join(&room, None).await?;
    }
    // Ban: the same, and then join and send are 403 everywhere.
    let ban = format!("/api/v1/rooms/{room}/bans/{}", victim.user_id);
    expect(
        s.apis.last().context("agent")?,
        &owner,
        "PUT",
        &ban,
        None,
        200,
    )
    .await?;
    room_goes_on(&s, &mut owner_ws, &room, &other).await?;
    for socket in &mut sockets {
        let kicked = last_of_room(socket, &room, "kicked").await?;
        ensure!(kicked["reason"] == "", "{kicked}");
        let answer = frame_answer(socket, json!({"type": "join", "room_id": room})).await?;
        ensure!(answer["code"] == "forbidden", "{answer}");
        let answer = frame_answer(socket, json!({"type": "history", "room_id": room})).await?;
        ensure!(answer["code"] == "forbidden", "{answer}");
    }
    // Delete: every socket of the room, on both agents, gets `room_deleted` last; the room is
    // 404 from the answer on.
    let mut members = vec![s.ws(0, &other).await?, s.ws(1, &other).await?];
    for socket in &mut members {
        socket.join(&room, None).await?;
    }
    expect(
        s.api(),
        &owner,
        "DELETE",
        &format!("/api/v1/rooms/{room}"),
        None,
        200,
    )
    .await?;
    for api in &s.apis {
        expect(
            api,
            &other,
            "GET",
            &format!("/api/v1/rooms/{room}"),
            None,
            404,
        )
        .await?;
        let post = Some(json!({"body": "late"}));
        expect(
            api,
            &other,
            "POST",
            &format!("/api/v1/rooms/{room}/messages"),
            post,
            404,
        )
        .await?;
    }
    for socket in members.iter_mut().chain(std::iter::once(&mut owner_ws)) {
        last_of_room(socket, &room, "room_deleted").await?;
        let answer = frame_answer(socket, json!({"type": "join", "room_id": room})).await?;
        ensure!(answer["code"] == "not_found", "{answer}");
    }
    s.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn role_and_room_changes_reach_subscribed_sockets() -> anyhow::Result<()> {
    let s = Setup::start(2).await?;
    let owner = s.user("r_owner").await?;
    let member = s.user("r_member").await?;
    let room = create(s.api(), &owner, "changes", "public").await?;
    s.api().join_room(&member.token, &room).await?;
    let mut watcher = s.ws(1, &member).await?;
    watcher.join(&room, None).await?;
    let role = format!("/api/v1/rooms/{room}/members/{}/role", member.user_id);
    expect(
        s.api(),
        &owner,
        "PUT",
        &role,
        Some(json!({"role": "moderator"})),
        200,
    )
    .await?;
    let frame = watcher.recv_type("member_role").await?;
    ensure!(
        frame
            == json!({"type": "member_role", "room_id": room, "user_id": member.user_id, "role": "moderator"}),
        "{frame}"
    );
    // An outsider's standing is cached on both agents while the room is public.
    let outsider = s.user("r_outsider").await?;
    let path = format!("/api/v1/rooms/{room}");
    for api in &s.apis {
        expect(api, &outsider, "GET", &format!("{path}/members"), None, 403).await?;
    }
    let patch = Some(json!({"name": "renamed", "visibility": "private"}));
    expect(s.api(), &owner, "PATCH", &path, patch, 200).await?;
    let frame = watcher.recv_type("room_updated").await?;
    ensure!(
        frame["room"]["name"] == "renamed" && frame["room"]["visibility"] == "private",
        "{frame}"
    );
    // Made private: the outsider gets 404 from both agents (the event replaced the cached
    // visibility).
    for api in &s.apis {
        let mut status = 0;
        for _ in 0..20 {
            let (got, _) = api
                .call(
                    "GET",
                    &format!("{path}/members"),
                    Some(&outsider.token),
                    None,
                )
                .await?;
            status = got;
            if got == 404 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        ensure!(status == 404, "members of the room made private: {status}");
    }
    s.stop().await
}
