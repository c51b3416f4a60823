//! Ids that would add tokens or wildcards to a NATS subject are refused at the edge.

use super::*;

/// Percent-encodes a path segment.
fn encode(segment: &str) -> String {
    segment
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ids_that_could_inject_subjects_never_reach_nats() -> anyhow::Result<()> {
    let mesh = Mesh::start(1).await?;
    let base = mesh.agent(0).http();
    let api = Api::new(base.clone());
    let user = api.register_and_login("alice").await?;
    let room = api.create_room(&user.token, "real").await?;
    let mut ws = WsClient::connect(&mesh.agent(0).ws(), &user.token).await?;
    ws.join(&room, None).await?;

    // Everything published from now on, subjects and payloads.
    let nc = async_nats::connect(mesh.nats.url()).await?;
    let mut all = nc.subscribe(">").await?;
    nc.flush().await?;
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let sink = seen.clone();
    let monitor = tokio::spawn(async move {
        while let Some(m) = all.next().await {
            let line = format!("{} {}", m.subject, String::from_utf8_lossy(&m.payload));
            sink.lock().unwrap_or_else(|p| p.into_inner()).push(line);
        }
    });

    let long = format!("inj3ct{}", "z".repeat(59));
    let bad = [
        "inj3ct.a", "inj3ct*", "inj3ct>", "inj3ct a", "inj3ct.>", "inj3ct\t", &long, "*", ">",
        "a.b",
    ];
    let get = reqwest::Method::GET;
    let post = reqwest::Method::POST;
    for id in bad {
        let r = encode(id);
        for (method, path, body) in [
            (get.clone(), format!("/api/v1/rooms/{r}"), None),
            (post.clone(), format!("/api/v1/rooms/{r}/join"), None),
            (post.clone(), format!("/api/v1/rooms/{r}/leave"), None),
            (get.clone(), format!("/api/v1/rooms/{r}/members"), None),
            (get.clone(), format!("/api/v1/rooms/{r}/messages"), None),
            (
                post.clone(),
                format!("/api/v1/rooms/{r}/messages"),
                Some(json!({"body": "x"})),
            ),
            (get.clone(), format!("/api/v1/rooms?cursor={r}"), None),
        ] {
            let (status, _, b) =
                call(&base, method.clone(), &path, Some(&user.token), body).await?;
            ensure!(
                status == 400 || status == 404,
                "{method} {path}: {status} {b}"
            );
            ensure!(
                b["error"]["code"] == "bad_request" || b["error"]["code"] == "not_found",
                "{path}: {b}"
            );
        }
        for frame in [
            json!({"type": "join", "room_id": id}),
            json!({"type": "leave", "room_id": id}),
            json!({"type": "send", "room_id": id, "body": "x"}),
            json!({"type": "typing", "room_id": id}),
            json!({"type": "history", "room_id": id}),
            json!({"type": "send", "room_id": room, "body": "x", "client_msg_id": id}),
        ] {
            let mut frame = frame;
            frame["ref"] = json!("inj");
            ws.send(frame.clone()).await?;
            let answer = ws.recv_type("error").await?;
            ensure!(
                answer["code"] == "bad_request" && answer["ref"] == "inj",
                "{frame}: {answer}"
            );
        }
    }
    // The socket is still usable, and the monitor does see what a valid send publishes.
    ws.send(json!({"type": "send", "room_id": room, "body": "monitorcheck"}))
        .await?;
    ws.recv_type("ack").await?;
    wait_until(
        Duration::from_secs(5),
        "the monitor to see the valid send",
        || {
            let seen = seen.clone();
            async move {
                seen.lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .iter()
                    .any(|l| l.contains("monitorcheck"))
            }
        },
    )
    .await?;
    monitor.abort();
    let seen = seen.lock().unwrap_or_else(|p| p.into_inner());
    let leaked: Vec<&String> = seen.iter().filter(|l| l.contains("inj3ct")).collect();
    ensure!(leaked.is_empty(), "reached NATS: {leaked:?}");
    Ok(())
}
