//! The socket loop over in-memory channels instead of a WebSocket, and the core over fakes.

use std::fmt;

use axum::extract::ws::{Message as WsMessage, Utf8Bytes};
use dyschat_runtime::config::DEV_AUTH_SECRET;
use futures::channel::mpsc;
use futures::StreamExt;
use serde_json::{json, Value};

use super::ReadError;
use crate::core::User;
use crate::socket::{CLOSE_POLICY, CLOSE_TOO_BIG};
use crate::testing::{fixture, user, Fixture};

const ROOM: &str = "room1";

/// A read error whose kind the test chooses.
#[derive(Debug)]
struct TestError {
    too_large: bool,
}

impl fmt::Display for TestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Deliberately the words the old text match looked for: the type decides, not the text.
        f.write_str("Space limit exceeded: message too long")
    }
}

impl ReadError for TestError {
    fn is_too_large(&self) -> bool {
        self.too_large
    }
}

struct Client {
    to_server: mpsc::UnboundedSender<Result<WsMessage, TestError>>,
    from_server: mpsc::UnboundedReceiver<WsMessage>,
    task: tokio::task::JoinHandle<()>,
}

impl Client {
    fn open(f: &Fixture, user: Option<User>) -> Client {
        let (to_server, reader) = mpsc::unbounded();
        let (writer, from_server) = mpsc::unbounded();
        let task = tokio::spawn(super::run(f.core.clone(), reader, writer, user));
        Client {
            to_server,
            from_server,
            task,
        }
    }

    fn send(&self, frame: Value) {
        self.send_text(frame.to_string());
    }

    fn send_text(&self, text: String) {
        self.to_server
            .unbounded_send(Ok(WsMessage::Text(Utf8Bytes::from(text))))
            .unwrap();
    }

    async fn next(&mut self) -> WsMessage {
        tokio::time::timeout(std::time::Duration::from_secs(30), self.from_server.next())
            .await
            .expect("a frame within 30 s")
            .expect("the socket is open")
    }

    async fn recv(&mut self) -> Value {
        match self.next().await {
            WsMessage::Text(t) => serde_json::from_str(t.as_str()).unwrap(),
            other => panic!("expected a text frame, got {other:?}"),
        }
    }

    async fn recv_type(&mut self, kind: &str) -> Value {
        loop {
            let frame = self.recv().await;
            if frame["type"] == kind {
                return frame;
            }
        }
    }

    async fn recv_close(&mut self) -> u16 {
        loop {
            if let WsMessage::Close(frame) = self.next().await {
                return frame.map_or(1005, |f| f.code);
            }
        }
    }
}

#[tokio::test]
async fn a_socket_with_a_token_is_ready_answers_pings_and_survives_bad_frames() {
    let f = fixture();
    let mut c = Client::open(&f, Some(user("alice")));
    let ready = c.recv().await;
    assert_eq!(
        (ready["type"].as_str(), ready["username"].as_str()),
        (Some("ready"), Some("alice"))
    );
    c.send(json!({"type": "ping", "ref": "p1"}));
    assert_eq!(c.recv().await, json!({"type": "pong", "ref": "p1"}));
    c.send_text("{not json".into());
    assert_eq!(c.recv_type("error").await["code"], "bad_request");
    c.send(json!({"type": "send", "room_id": "a.b", "body": "x", "ref": "s"}));
    let e = c.recv_type("error").await;
    assert_eq!(
        (e["code"].as_str(), e["ref"].as_str()),
        (Some("bad_request"), Some("s"))
    );
    c.send(json!({"type": "ping"}));
    assert_eq!(c.recv().await["type"], "pong");
    assert_eq!(
        f.presence.local.lock().unwrap().len(),
        1,
        "online while open"
    );
}

#[tokio::test]
async fn a_socket_without_a_token_must_authenticate_first() {
    let f = fixture();
    let mut c = Client::open(&f, None);
    c.send(json!({"type": "join", "room_id": ROOM, "ref": "early"}));
    let e = c.recv().await;
    assert_eq!(
        (e["code"].as_str(), e["ref"].as_str()),
        (Some("unauthorized"), Some("early"))
    );
    c.send(json!({"type": "auth", "token": "not.a.token", "ref": "a"}));
    assert_eq!(c.recv().await["code"], "unauthorized");
    let now = chrono::Utc::now().timestamp();
    let (token, _) =
        dyschat_runtime::token::issue(DEV_AUTH_SECRET, "id-bob", "bob", now, 3600).unwrap();
    c.send(json!({"type": "auth", "token": token, "ref": "b"}));
    let ready = c.recv().await;
    assert_eq!(
        (ready["type"].as_str(), ready["ref"].as_str()),
        (Some("ready"), Some("b"))
    );
}

#[tokio::test]
async fn join_send_and_receive_through_the_socket_loop() {
    let f = fixture();
    f.rooms.create(ROOM, &user("alice"));
    let mut c = Client::open(&f, Some(user("alice")));
    c.recv_type("ready").await;
    c.send(json!({"type": "join", "room_id": ROOM, "ref": "j"}));
    let joined = c.recv_type("joined").await;
    assert_eq!(
        joined,
        json!({"type": "joined", "room_id": ROOM, "last_seq": 0, "last_event_seq": 0, "recovered": true, "ref": "j"})
    );
    c.send(
        json!({"type": "send", "room_id": ROOM, "body": "hi", "client_msg_id": "c1", "ref": "s1"}),
    );
    let mut ack = None;
    let mut message = None;
    while ack.is_none() || message.is_none() {
        let frame = c.recv().await;
        match frame["type"].as_str() {
            Some("ack") => ack = Some(frame),
            Some("message") => message = Some(frame),
            _ => {}
        }
    }
    let (ack, message) = (ack.unwrap(), message.unwrap());
    assert_eq!(ack["ref"], "s1");
    assert_eq!(ack["client_msg_id"], "c1");
    assert_eq!(ack["duplicate"], false);
    assert_eq!(message["seq"], ack["seq"]);
    assert_eq!(message["prev_seq"], 0);
    c.send(json!({"type": "history", "room_id": ROOM, "ref": "h"}));
    assert_eq!(c.recv_type("history").await["ref"], "h");
    c.send(json!({"type": "typing", "room_id": ROOM}));
    c.send(json!({"type": "leave", "room_id": ROOM, "ref": "l"}));
    assert_eq!(c.recv_type("left").await["ref"], "l");
    assert_eq!(f.bus.typing.lock().unwrap().len(), 1);
    assert!(f.core.hub.room_ids().is_empty());
}

#[tokio::test]
async fn a_frame_too_large_for_the_layer_closes_with_1009_by_its_error_type() {
    let f = fixture();
    let mut c = Client::open(&f, Some(user("alice")));
    c.recv_type("ready").await;
    c.to_server
        .unbounded_send(Err(TestError { too_large: true }))
        .unwrap();
    assert_eq!(c.recv_close().await, CLOSE_TOO_BIG);
    c.task.await.unwrap();
}

#[tokio::test]
async fn another_read_error_closes_without_1009_whatever_its_text() {
    let f = fixture();
    let mut c = Client::open(&f, Some(user("alice")));
    c.recv_type("ready").await;
    c.to_server
        .unbounded_send(Err(TestError { too_large: false }))
        .unwrap();
    assert_ne!(c.recv_close().await, CLOSE_TOO_BIG);
    c.task.await.unwrap();
    assert!(
        f.presence.local.lock().unwrap().is_empty(),
        "offline once closed"
    );
}

#[tokio::test]
async fn a_text_frame_over_64_kib_closes_with_1009() {
    let f = fixture();
    let mut c = Client::open(&f, Some(user("alice")));
    c.recv_type("ready").await;
    c.send_text("x".repeat(64 * 1024 + 1));
    assert_eq!(c.recv_close().await, CLOSE_TOO_BIG);
}

#[tokio::test]
async fn an_expired_token_is_told_and_closed_with_1008() {
    let f = fixture();
    let mut expired = user("alice");
    expired.expires = chrono::Utc::now().timestamp() - 1;
    let mut c = Client::open(&f, Some(expired));
    c.recv_type("ready").await;
    assert_eq!(c.recv_type("error").await["code"], "unauthorized");
    assert_eq!(c.recv_close().await, CLOSE_POLICY);
}

#[tokio::test]
async fn a_revoked_token_closes_its_socket_with_1008_and_a_fresh_token_saves_one() {
    let f = fixture();
    let now = chrono::Utc::now().timestamp();
    let issue = || {
        let (token, claims) =
            dyschat_runtime::token::issue(DEV_AUTH_SECRET, "id-alice", "alice", now, 3600).unwrap();
        (token, claims.jti.unwrap(), claims.exp)
    };
    let (first, first_id, exp) = issue();
    let (second, second_id, _) = issue();
    let mut by_url = Client::open(&f, Some(f.core.authenticate(&first).await.unwrap()));
    by_url.recv_type("ready").await;
    let mut by_frame = Client::open(&f, None);
    by_frame.send(json!({"type": "auth", "token": first, "ref": "a"}));
    by_frame.recv_type("ready").await;
    // This one moves to a fresh token: the old one's logout no longer concerns it.
    by_frame.send(json!({"type": "auth", "token": second, "ref": "b"}));
    assert_eq!(by_frame.recv_type("ready").await["ref"], "b");

    f.core.revocations.revoked(&first_id, exp, now);
    let e = by_url.recv_type("error").await;
    assert_eq!(
        (e["code"].as_str(), e["message"].as_str()),
        (Some("unauthorized"), Some("token revoked"))
    );
    assert_eq!(by_url.recv_close().await, CLOSE_POLICY);
    by_url.task.await.unwrap();
    by_frame.send(json!({"type": "ping", "ref": "p"}));
    assert_eq!(by_frame.recv().await, json!({"type": "pong", "ref": "p"}));

    // A revoked token cannot authenticate a socket again, nor re-authenticate one.
    let mut again = Client::open(&f, None);
    again.send(json!({"type": "auth", "token": first, "ref": "c"}));
    let e = again.recv().await;
    assert_eq!(
        (e["code"].as_str(), e["ref"].as_str()),
        (Some("unauthorized"), Some("c"))
    );
    by_frame.send(json!({"type": "auth", "token": first, "ref": "d"}));
    assert_eq!(
        by_frame.recv_type("error").await["message"],
        "token revoked"
    );
    f.core.revocations.revoked(&second_id, exp, now);
    assert_eq!(by_frame.recv_close().await, CLOSE_POLICY);
    by_frame.task.await.unwrap();
    assert_eq!(
        f.core.revocations.attached(),
        0,
        "closed sockets are unlisted"
    );
}

#[test]
fn axum_errors_are_too_large_only_for_tungstenite_capacity_errors() {
    use tokio_tungstenite::tungstenite::error::{CapacityError, Error};
    let too_long = axum::Error::new(Error::Capacity(CapacityError::MessageTooLong {
        size: 2,
        max_size: 1,
    }));
    assert!(too_long.is_too_large());
    assert!(!axum::Error::new(Error::ConnectionClosed).is_too_large());
    assert!(!axum::Error::new(std::io::Error::other("message too long")).is_too_large());
}
