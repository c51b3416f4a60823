//! The self-describing documents against the code: every operation of `/openapi.json` is served
//! by a running agent (the router and the document are built from one table, so nothing is
//! served undocumented), and `docs/asyncapi.yaml` names every WebSocket frame type of the wire
//! types and every NATS subject of `crates/protocol/src/subjects.rs`.

use std::collections::BTreeSet;

use anyhow::{ensure, Context};
use dyschat_protocol::{subjects, wire};
use dyschat_tests::mesh::Mesh;

const ASYNCAPI: &str = include_str!("../../docs/asyncapi.yaml");
const SUBJECTS_RS: &str = include_str!("../../crates/protocol/src/subjects.rs");

/// The `type` tags of an internally tagged enum, read from serde's own "unknown variant"
/// message, so a new frame variant shows up here without editing this test.
fn tags<T: serde::de::DeserializeOwned>() -> BTreeSet<String> {
    let err = match serde_json::from_str::<T>(r#"{"type":"__no_such_frame__"}"#) {
        Ok(_) => return BTreeSet::new(),
        Err(e) => e.to_string(),
    };
    let list = err.split("expected one of").nth(1).unwrap_or_default();
    list.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect()
}

#[test]
fn asyncapi_names_every_frame_type() {
    let client = tags::<wire::ClientFrame>();
    let server = tags::<wire::ServerFrame>();
    assert!(client.contains("join") && client.len() >= 7, "{client:?}");
    assert!(
        server.contains("member_joined") && server.len() >= 12,
        "{server:?}"
    );
    assert!(ASYNCAPI.starts_with("# ") && ASYNCAPI.contains("\nasyncapi: 3.0.0\n"));
    for tag in client.iter().chain(&server) {
        assert!(
            ASYNCAPI.contains(&format!("type: {{const: {tag}}}")),
            "docs/asyncapi.yaml has no frame with type {tag}"
        );
    }
}

/// One instance of every server frame with every optional field set, so its JSON shows all keys.
fn server_samples() -> Vec<wire::ServerFrame> {
    use wire::ServerFrame as F;
    let s = || "x".to_string();
    let r = || Some("r".to_string());
    let message = wire::Message {
        room_id: s(),
        seq: 2,
        prev_seq: 1,
        message_id: s(),
        client_msg_id: s(),
        sender_id: s(),
        sender_name: s(),
        body: s(),
        sent_at: s(),
        reply_to: Some(1),
        edited_at: Some(s()),
        deleted: false,
        reactions: vec![wire::Reaction {
            emoji: s(),
            count: 1,
            user_ids: vec![s()],
        }],
        mentions: vec![s()],
        attachments: Vec::new(),
    };
    vec![
        F::Ready {
            user_id: s(),
            username: s(),
            reference: r(),
        },
        F::Joined {
            room_id: s(),
            last_seq: 1,
            last_event_seq: 2,
            recovered: true,
            reference: r(),
        },
        F::Left {
            room_id: s(),
            reference: r(),
        },
        F::Ack {
            room_id: s(),
            client_msg_id: s(),
            seq: 1,
            message_id: s(),
            sent_at: s(),
            duplicate: false,
            trace_id: Some(s()),
            reference: r(),
        },
        F::History {
            room_id: s(),
            messages: vec![],
            has_more: false,
            reference: r(),
        },
        F::Pong { reference: r() },
        F::Message(message.clone()),
        F::Edited {
            room_id: s(),
            seq: 1,
            edited_at: s(),
            reference: r(),
        },
        F::Deleted {
            room_id: s(),
            seq: 1,
            reference: r(),
        },
        F::Reacted {
            room_id: s(),
            seq: 1,
            emoji: s(),
            reference: r(),
        },
        F::Unreacted {
            room_id: s(),
            seq: 1,
            emoji: s(),
            reference: r(),
        },
        F::MessageUpdated {
            room_id: s(),
            change: wire::ChangeKind::Edited,
            message,
            event_seq: 3,
            prev_event_seq: 0,
        },
        F::MemberJoined {
            room_id: s(),
            user_id: s(),
            username: s(),
        },
        F::MemberLeft {
            room_id: s(),
            user_id: s(),
            username: s(),
        },
        F::Presence {
            room_id: s(),
            user_id: s(),
            online: true,
        },
        F::Typing {
            room_id: s(),
            user_id: s(),
            username: s(),
        },
        F::Kicked {
            room_id: s(),
            by: s(),
            reason: s(),
        },
        F::RoomDeleted { room_id: s() },
        F::RoomUpdated {
            room: wire::Room {
                room_id: s(),
                name: s(),
                topic: s(),
                owner_id: s(),
                created_at: s(),
                member_count: 1,
                visibility: Default::default(),
                kind: Default::default(),
            },
        },
        F::MemberRole {
            room_id: s(),
            user_id: s(),
            role: wire::Role::Moderator,
        },
        F::ReadMarker {
            room_id: s(),
            seq: 1,
            reference: r(),
        },
        F::Receipt {
            room_id: s(),
            user_id: s(),
            seq: 1,
        },
        F::Notification {
            notification: wire::Notification {
                notification_id: s(),
                kind: wire::NotificationKind::Mention,
                room_id: s(),
                seq: 1,
                from: wire::UserView {
                    user_id: s(),
                    username: s(),
                },
                preview: s(),
                created_at: s(),
                read: false,
            },
        },
        F::error(dyschat_protocol::ApiError::rate_limited(5), r()),
    ]
}

#[test]
fn asyncapi_describes_every_field_of_every_server_frame() {
    let samples = server_samples();
    let mut seen = BTreeSet::new();
    for frame in &samples {
        let value = serde_json::to_value(frame).unwrap_or_default();
        let tag = value["type"].as_str().unwrap_or_default().to_string();
        let keys: Vec<&String> = value
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, _)| k)
            .filter(|k| *k != "type")
            .collect();
        // The text after each `type: {const: <tag>}` up to the next frame is that frame's
        // properties (the `message` frame's come from the Message schema it extends).
        let marker = format!("type: {{const: {tag}}}");
        let described = ASYNCAPI.split(&marker).skip(1).any(|block| {
            let block = block.split("{const:").next().unwrap_or_default();
            let block = if tag == "message" { ASYNCAPI } else { block };
            keys.iter().all(|k| block.contains(&format!("{k}:")))
        });
        assert!(
            described,
            "docs/asyncapi.yaml: frame {tag} lacks one of {keys:?}"
        );
        seen.insert(tag);
    }
    assert_eq!(
        seen,
        tags::<wire::ServerFrame>(),
        "a server frame has no sample here"
    );
}

#[test]
fn asyncapi_names_every_subject() {
    // Every subject literal of subjects.rs (outside its tests), constants and prefixes alike.
    let code = SUBJECTS_RS.split("#[cfg(test)]").next().unwrap_or_default();
    let literals: Vec<&str> = code
        .split('"')
        .skip(1)
        .step_by(2)
        .filter(|s| s.starts_with("dyschat"))
        .collect();
    assert!(literals.len() >= 15, "{literals:?}");
    for literal in literals {
        assert!(
            ASYNCAPI.contains(literal),
            "docs/asyncapi.yaml does not mention {literal}"
        );
    }
    // Every subject function, with its parameter as the document spells it.
    for (subject, param) in [
        (subjects::room_messages("X"), "{room_id}"),
        (subjects::live("X"), "{room_id}"),
        (subjects::membership("X"), "{room_id}"),
        (subjects::typing("X"), "{room_id}"),
        (subjects::presence("X"), "{user_id}"),
        (subjects::feed("X"), "{user_id}"),
        (subjects::receipt("X"), "{room_id}"),
    ] {
        let address = format!("address: {}", subject.replace(".X", &format!(".{param}")));
        assert!(ASYNCAPI.contains(&address), "no channel `{address}`");
    }
    for (subject, param) in [
        (
            subjects::user_event("X", subjects::UserEventKind::ReadMarker),
            "{user_id}",
        ),
        (
            subjects::user_event("X", subjects::UserEventKind::Notification),
            "{user_id}",
        ),
    ] {
        let address = format!("address: {}", subject.replace(".X.", &format!(".{param}.")));
        assert!(ASYNCAPI.contains(&address), "no channel `{address}`");
    }
    for endpoint in [
        subjects::rooms::CREATE,
        subjects::rooms::GET,
        subjects::rooms::LIST,
        subjects::rooms::JOIN,
        subjects::rooms::LEAVE,
        subjects::rooms::MEMBERS,
        subjects::rooms::MENTIONS,
    ] {
        let subject = subjects::rooms::subject(endpoint);
        assert!(ASYNCAPI.contains(&subject), "no {subject}");
    }
    for subject in [
        subjects::auth::REGISTER_SUBJECT,
        subjects::auth::LOGIN_SUBJECT,
        subjects::auth::LOGOUT_SUBJECT,
        subjects::auth::USERS_BY_NAME_SUBJECT,
        subjects::DEAD_LETTER,
    ] {
        assert!(
            ASYNCAPI.contains(&format!("address: {subject}")),
            "no {subject}"
        );
    }
}

/// Fills the path parameters of a documented path with harmless values.
fn concrete(path: &str) -> String {
    path.replace("{room_id}", "no_such_room")
        .replace("{file}", "app.css")
        .replace("{user_id}", "no_such_user")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_documented_operation_is_served() -> anyhow::Result<()> {
    let mesh = Mesh::start(1).await?;
    let base = mesh.agent(0).http();
    let http = reqwest::Client::new();
    let doc: serde_json::Value = http
        .get(format!("{base}/openapi.json"))
        .send()
        .await?
        .json()
        .await
        .context("/openapi.json is JSON")?;
    ensure!(doc["openapi"] == "3.1.0", "{}", doc["openapi"]);
    let paths = doc["paths"].as_object().context("paths")?;
    let mut operations = 0;
    for (path, item) in paths {
        for (method, _) in item.as_object().context("path item")? {
            let method = reqwest::Method::from_bytes(method.to_uppercase().as_bytes())?;
            let response = http
                .request(method.clone(), format!("{base}{}", concrete(path)))
                .send()
                .await?;
            let status = response.status().as_u16();
            let body = response.text().await.unwrap_or_default();
            ensure!(
                status != 405 && !body.contains("no such route"),
                "{method} {path} is documented but not served: {status} {body}"
            );
            operations += 1;
        }
    }
    ensure!(operations >= 19, "only {operations} operations documented");

    // The probe can tell a missing route: the fallback answers these.
    let response = http.get(format!("{base}/api/v1/nothing")).send().await?;
    ensure!(response.status() == 404 && response.text().await?.contains("no such route"));

    let docs = http.get(format!("{base}/docs")).send().await?;
    ensure!(docs.status() == 200);
    ensure!(docs.text().await?.contains("/assets/docs.js"));
    Ok(())
}
