//! The one send path over fakes: checks, acks, and the HTTP post's `prev_seq` from the room task.

use std::sync::atomic::Ordering;
use std::time::Duration;

use dyschat_protocol::{ApiError, ErrorCode};

use crate::core::{CoreError, Outgoing, Reply};
use crate::socket::SocketHandle;
use crate::testing::{fixture, fixture_with, next_messages, settings, user, Fixture};

const ROOM: &str = "room1";

fn out(body: &str, client_msg_id: Option<&str>) -> Outgoing {
    Outgoing {
        room_id: ROOM.into(),
        body: body.into(),
        client_msg_id: client_msg_id.map(String::from),
        reply_to: None,
        attachments: Vec::new(),
    }
}

/// Lets the room task run until it has nothing left to do.
async fn settle() {
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
}

fn member_fixture() -> Fixture {
    let f = fixture();
    f.rooms.create(ROOM, &user("alice"));
    f
}

async fn post(
    f: &Fixture,
    body: &str,
    client_msg_id: Option<&str>,
) -> dyschat_protocol::wire::Message {
    let pending = f
        .core
        .send(&user("alice"), out(body, client_msg_id), Reply::Message)
        .await
        .unwrap();
    f.core
        .confirm(pending)
        .await
        .unwrap()
        .into_message()
        .unwrap()
}

#[tokio::test]
async fn a_post_learns_its_prev_seq_from_the_room_task() {
    let f = member_fixture();
    let before = f.stream.post(ROOM, "someone else's");
    f.stream.post("elsewhere", "another room");
    let message = post(&f, "hello", None).await;
    assert_eq!(message.prev_seq, before);
    assert_eq!(message.body, "hello");
    assert_eq!(message.sender_name, "alice");
    let next = post(&f, "again", None).await;
    assert_eq!(next.prev_seq, message.seq);
    assert_eq!(
        f.stream.newest_up_to_calls.load(Ordering::SeqCst),
        0,
        "asked the stream instead of the room task"
    );
    assert_eq!(
        f.bus.subscribes.load(Ordering::SeqCst),
        1,
        "subscribed once for both"
    );
}

#[tokio::test]
async fn a_post_into_a_joined_room_uses_the_existing_subscription() {
    let f = member_fixture();
    let (socket, mut rx) = SocketHandle::new("reader".into(), 64);
    f.core.hub.attach(ROOM, &socket).await.unwrap();
    f.core.hub.note_position(ROOM, 0);
    f.core.hub.activate(ROOM, socket.id(), 0);
    let message = post(&f, "hi", None).await;
    assert_eq!(message.prev_seq, 0);
    // Delivered live like a WebSocket send.
    let got = next_messages(&mut rx, 1).await;
    assert_eq!(got[0]["seq"].as_u64(), Some(message.seq));
    assert_eq!(f.bus.subscribes.load(Ordering::SeqCst), 1);
    assert_eq!(f.stream.newest_up_to_calls.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_post_whose_live_copy_comes_before_its_ack_finds_it_in_the_room_task() {
    let f = member_fixture();
    let before = f.stream.post(ROOM, "earlier");
    let pending = f
        .core
        .send(&user("alice"), out("fast", None), Reply::Message)
        .await
        .unwrap();
    // The room task forwards the live copy before the ack is looked at.
    settle().await;
    let message = f
        .core
        .confirm(pending)
        .await
        .unwrap()
        .into_message()
        .unwrap();
    assert_eq!(message.prev_seq, before);
    assert_eq!(f.stream.newest_up_to_calls.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_post_the_room_moves_past_asks_the_stream() {
    let f = fixture_with(crate::config::AgentSettings {
        recovery_limit: 1,
        ..settings()
    });
    f.rooms.create(ROOM, &user("alice"));
    let before = f.stream.post(ROOM, "earlier");
    f.stream.deaf.store(true, Ordering::SeqCst);
    let pending = f
        .core
        .send(&user("alice"), out("lost", None), Reply::Message)
        .await
        .unwrap();
    let core = f.core.clone();
    let waiting = tokio::spawn(async move { core.confirm(pending).await });
    settle().await;
    // More than a gap fill may read, then a live message: the room jumps past the post.
    f.stream.post(ROOM, "m1");
    let last = f.stream.post(ROOM, "m2");
    f.bus.inject(ROOM, f.stream.live_copy_of(last));
    // At once, not after the post's wait for the room task runs out.
    let answered = tokio::time::timeout(Duration::from_secs(2), waiting).await;
    let message = answered.unwrap().unwrap().unwrap().into_message().unwrap();
    assert_eq!(message.prev_seq, before);
    assert_eq!(f.stream.newest_up_to_calls.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn a_post_whose_live_copy_never_comes_is_settled_by_the_room_task() {
    let f = member_fixture();
    let before = f.stream.post(ROOM, "earlier");
    f.stream.deaf.store(true, Ordering::SeqCst);
    let message = post(&f, "unheard", None).await;
    assert_eq!(message.prev_seq, before);
    assert_eq!(f.stream.newest_up_to_calls.load(Ordering::SeqCst), 0);
    assert_eq!(
        f.stream.replays.load(Ordering::SeqCst),
        1,
        "read from the stream once"
    );
}

#[tokio::test]
async fn a_retried_post_answers_the_first_message_and_its_position() {
    let f = member_fixture();
    let before = f.stream.post(ROOM, "earlier");
    let first = post(&f, "once", Some("retry-1")).await;
    f.stream.post(ROOM, "later");
    let again = post(&f, "once", Some("retry-1")).await;
    assert_eq!(again, first);
    assert_eq!(again.prev_seq, before);
}

#[tokio::test(start_paused = true)]
async fn a_retry_long_after_still_answers_the_first_position() {
    let f = member_fixture();
    let before = f.stream.post(ROOM, "earlier");
    let first = post(&f, "once", Some("retry-2")).await;
    // Long enough for the post-only subscription to close.
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert!(f.core.hub.room_ids().is_empty(), "the idle channel lingers");
    assert_eq!(f.bus.subscribers(ROOM), 0);
    f.stream.post(ROOM, "later");
    let again = post(&f, "once", Some("retry-2")).await;
    assert_eq!(again, first);
    assert_eq!(again.prev_seq, before);
    assert_eq!(
        f.stream.newest_up_to_calls.load(Ordering::SeqCst),
        1,
        "the stream answered"
    );
}

#[tokio::test]
async fn a_websocket_send_is_acked_and_announced_to_the_room_task() {
    let f = member_fixture();
    let pending = f
        .core
        .send(&user("alice"), out("hi", Some("c1")), Reply::Ack)
        .await
        .unwrap();
    let sent = f.core.confirm(pending).await.unwrap();
    assert!(!sent.duplicate);
    assert_eq!(sent.prev_seq, None);
    assert_eq!(sent.stored.client_msg_id, "c1");
    assert!(
        f.core.hub.room_ids().is_empty(),
        "an ack needs no subscription"
    );
    let pending = f
        .core
        .send(&user("alice"), out("hi", Some("c1")), Reply::Ack)
        .await
        .unwrap();
    let again = f.core.confirm(pending).await.unwrap();
    assert!(again.duplicate);
    assert_eq!((again.seq, &again.stored), (sent.seq, &sent.stored));
}

#[tokio::test]
async fn sends_are_validated_then_limited_then_authorized() {
    let f = fixture_with(crate::config::AgentSettings {
        send_burst: 1,
        send_rate_per_sec: 0.001,
        ..settings()
    });
    f.rooms.create(ROOM, &user("alice"));
    let code = |e: CoreError| ApiError::from(e).code;
    let send = |who: &'static str, o: Outgoing| {
        let core = f.core.clone();
        async move { core.send(&user(who), o, Reply::Ack).await.map(|_| ()) }
    };
    // Invalid sends cost nothing.
    for bad in [out("", None), out("  ", None), out("x", Some("no spaces"))] {
        assert_eq!(
            code(send("alice", bad).await.unwrap_err()),
            ErrorCode::BadRequest
        );
    }
    assert_eq!(
        code(send("mallory", out("hi", None)).await.unwrap_err()),
        ErrorCode::Forbidden
    );
    send("alice", out("one", None)).await.unwrap();
    let e = ApiError::from(send("alice", out("two", None)).await.unwrap_err());
    assert_eq!(e.code, ErrorCode::RateLimited);
    assert!(e.retry_after_ms.is_some());
    let unknown = Outgoing {
        room_id: "nosuchroom".into(),
        ..out("x", None)
    };
    assert_eq!(
        code(send("bob", unknown).await.unwrap_err()),
        ErrorCode::NotFound
    );
}

#[tokio::test]
async fn a_membership_check_is_one_lookup_whatever_the_room_size() {
    let f = member_fixture();
    for n in 0..10_000 {
        f.rooms.add(ROOM, &user(&format!("u{n}")));
    }
    for _ in 0..3 {
        post(&f, "hi", None).await;
    }
    assert_eq!(
        f.rooms.access_calls.load(Ordering::SeqCst),
        1,
        "one access answer, cached"
    );
}
