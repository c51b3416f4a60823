//! The 403/404 matrix: owner, moderator, member, invitee, outsider and banned user, in a public
//! and a private room, on every route and frame the agents decide (members, history, post;
//! `history`, `typing`, `send` frames; join), and a room that does not exist, which must be
//! indistinguishable from a private room to an outsider.

use super::*;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Who {
    Owner,
    Moderator,
    Member,
    Invitee,
    Outsider,
    Banned,
}

const EVERYONE: [Who; 6] = [
    Who::Owner,
    Who::Moderator,
    Who::Member,
    Who::Invitee,
    Who::Outsider,
    Who::Banned,
];

/// `(GET room, reading and posting)`: the status each answers, 0 meaning allowed.
fn expected(private: bool, who: Who) -> (u16, u16) {
    match (private, who) {
        (_, Who::Owner | Who::Moderator | Who::Member) => (200, 0),
        (false, _) => (200, 403),
        (true, Who::Invitee) => (200, 403),
        (true, _) => (404, 404),
    }
}

fn code(status: u16) -> &'static str {
    match status {
        403 => "forbidden",
        404 => "not_found",
        _ => "",
    }
}

/// Makes `users` (owner first) stand as `EVERYONE` says in `room`.
async fn arrange(s: &Setup, users: &[LoggedIn], room: &str, private: bool) -> anyhow::Result<()> {
    let api = s.api();
    let owner = &users[0];
    let invites = format!("/api/v1/rooms/{room}/invites");
    let invite = |user: &LoggedIn| {
        let body = Some(json!({"user_id": user.user_id}));
        let path = invites.clone();
        async move { expect(api, owner, "POST", &path, body, 200).await }
    };
    for (who, user) in EVERYONE.iter().zip(users) {
        match who {
            Who::Owner | Who::Outsider => {}
            Who::Invitee => {
                invite(user).await?;
            }
            Who::Moderator | Who::Member | Who::Banned => {
                if private {
                    invite(user).await?;
                }
                let path = format!("/api/v1/rooms/{room}/join");
                expect(api, user, "POST", &path, None, 200).await?;
            }
        }
    }
    let path = format!("/api/v1/rooms/{room}/members/{}/role", users[1].user_id);
    expect(
        api,
        owner,
        "PUT",
        &path,
        Some(json!({"role": "moderator"})),
        200,
    )
    .await?;
    let path = format!("/api/v1/rooms/{room}/bans/{}", users[5].user_id);
    expect(
        api,
        owner,
        "PUT",
        &path,
        Some(json!({"reason": "spam"})),
        200,
    )
    .await?;
    Ok(())
}

/// Every agent-decided route and frame of `room` for `user`, on agent `agent`.
async fn check(
    s: &Setup,
    agent: usize,
    user: &LoggedIn,
    room: &str,
    (get, read): (u16, u16),
) -> anyhow::Result<()> {
    let api = &s.apis[agent];
    let ok = |status: u16| if read == 0 { status } else { read };
    let base = format!("/api/v1/rooms/{room}");
    let answer = expect(api, user, "GET", &base, None, get).await?;
    if get == 404 {
        ensure!(answer["error"]["message"] == "room not found", "{answer}");
    }
    expect(api, user, "GET", &format!("{base}/members"), None, ok(200)).await?;
    expect(api, user, "GET", &format!("{base}/messages"), None, ok(200)).await?;
    let post = Some(json!({"body": format!("from {}", user.username)}));
    let answer = expect(
        api,
        user,
        "POST",
        &format!("{base}/messages"),
        post,
        ok(201),
    )
    .await?;
    if read != 0 {
        ensure!(answer["error"]["code"] == code(read), "{answer}");
    }
    let mut socket = s.ws(agent, user).await?;
    let frames = [
        (json!({"type": "history", "room_id": room}), "history"),
        (json!({"type": "typing", "room_id": room}), "pong"),
        (
            json!({"type": "send", "room_id": room, "body": "hi"}),
            "ack",
        ),
    ];
    for (frame, fine) in frames {
        let answer = frame_answer(&mut socket, frame.clone()).await?;
        if read == 0 {
            ensure!(
                answer["type"] == fine,
                "{}: {frame} -> {answer}",
                user.username
            );
        } else {
            ensure!(
                answer["type"] == "error" && answer["code"] == code(read),
                "{}: {frame} -> {answer}",
                user.username
            );
        }
    }
    socket.close().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn who_gets_403_and_who_404_on_every_route_and_frame() -> anyhow::Result<()> {
    let s = Setup::start(2).await?;
    let mut users = Vec::new();
    for name in [
        "m_owner",
        "m_mod",
        "m_member",
        "m_invitee",
        "m_outsider",
        "m_banned",
    ] {
        users.push(s.user(name).await?);
    }
    let public = create(s.api(), &users[0], "matrix public", "public").await?;
    let private = create(s.api(), &users[0], "matrix private", "private").await?;
    arrange(&s, &users, &public, false).await?;
    arrange(&s, &users, &private, true).await?;
    for (i, (who, user)) in EVERYONE.iter().zip(&users).enumerate() {
        for (room, is_private) in [(&public, false), (&private, true)] {
            check(&s, i % 2, user, room, expected(is_private, *who))
                .await
                .with_context(|| {
                    format!(
                        "{who:?} in the {} room",
                        if is_private { "private" } else { "public" }
                    )
                })?;
        }
    }
    // A room that does not exist answers exactly like the private room to an outsider.
    check(&s, 0, &users[4], "no-such-room", (404, 404)).await?;
    // Joining: the banned are refused (403 public, 404 private), the outsider is kept out of
    // the private room, and the invitee gets in (using the invitation up).
    let banned = &users[5];
    for (room, status) in [(&public, 403), (&private, 404)] {
        let path = format!("/api/v1/rooms/{room}/join");
        expect(s.api(), banned, "POST", &path, None, status).await?;
        let mut socket = s.ws(1, banned).await?;
        let answer = frame_answer(&mut socket, json!({"type": "join", "room_id": room})).await?;
        ensure!(answer["code"] == code(status), "{answer}");
        socket.close().await;
    }
    let path = format!("/api/v1/rooms/{private}/join");
    expect(s.api(), &users[4], "POST", &path, None, 404).await?;
    let mut socket = s.ws(1, &users[3]).await?;
    let answer = frame_answer(&mut socket, json!({"type": "join", "room_id": private})).await?;
    ensure!(answer["type"] == "joined", "{answer}");
    check(&s, 1, &users[3], &private, (200, 0)).await?;
    // Running the room: a member may not, an outsider of the private room does not see it.
    let path = format!("/api/v1/rooms/{private}");
    let patch = Some(json!({"topic": "new"}));
    expect(s.api(), &users[2], "PATCH", &path, patch.clone(), 403).await?;
    expect(s.api(), &users[4], "PATCH", &path, patch.clone(), 404).await?;
    expect(s.api(), &users[1], "PATCH", &path, patch, 200).await?;
    let kick = format!("/api/v1/rooms/{private}/members/{}/kick", users[1].user_id);
    expect(s.api(), &users[2], "POST", &kick, None, 403).await?;
    let leave = format!("/api/v1/rooms/{private}/leave");
    expect(s.api(), &users[0], "POST", &leave, None, 409).await?;
    // Every route that runs a room: a member is refused (403), an outsider of the private
    // room does not learn it exists (404), and neither changes anything.
    let target = &users[3].user_id;
    let routes = [
        ("PATCH", String::new(), Some(json!({"name": "x"}))),
        ("DELETE", String::new(), None),
        (
            "POST",
            "/invites".to_string(),
            Some(json!({"user_id": target})),
        ),
        ("DELETE", format!("/invites/{target}"), None),
        (
            "PUT",
            format!("/members/{}/role", users[1].user_id),
            Some(json!({"role": "member"})),
        ),
        (
            "POST",
            "/owner".to_string(),
            Some(json!({"user_id": users[1].user_id})),
        ),
        ("POST", format!("/members/{}/kick", users[1].user_id), None),
        ("PUT", format!("/bans/{target}"), None),
        ("DELETE", format!("/bans/{}", users[5].user_id), None),
        ("GET", "/bans".to_string(), None),
    ];
    for (method, tail, body) in routes {
        let path = format!("/api/v1/rooms/{private}{tail}");
        expect(s.api(), &users[2], method, &path, body.clone(), 403).await?;
        let answer = expect(&s.apis[1], &users[4], method, &path, body, 404).await?;
        ensure!(answer["error"]["message"] == "room not found", "{answer}");
    }
    let bans = expect(
        s.api(),
        &users[1],
        "GET",
        &format!("/api/v1/rooms/{private}/bans"),
        None,
        200,
    )
    .await?;
    ensure!(
        bans["bans"][0]["user_id"] == users[5].user_id && bans["bans"][0]["reason"] == "spam",
        "{bans}"
    );
    s.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_quota_answers_429_to_that_user_only() -> anyhow::Result<()> {
    let quota = vec![("DYSCHAT_MAX_ROOMS_PER_USER".to_string(), "2".to_string())];
    let mesh = Mesh::start_with(1, quota).await?;
    let api = Api::new(mesh.agent(0).http());
    let (greedy, other) = (
        api.register_and_login("q_greedy").await?,
        api.register_and_login("q_other").await?,
    );
    for n in 0..2 {
        create(&api, &greedy, &format!("mine {n}"), "public").await?;
    }
    let body = Some(json!({"name": "one too many"}));
    let answer = expect(&api, &greedy, "POST", "/api/v1/rooms", body, 429).await?;
    ensure!(
        answer["error"]["code"] == "rate_limited"
            && answer["error"]["retry_after_ms"].as_u64() > Some(0),
        "{answer}"
    );
    create(&api, &other, "theirs", "public").await?;
    let mut mesh = mesh;
    mesh.stop_all().await
}
