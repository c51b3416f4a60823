//! A retried send past the stream's own de-duplication window: answered from the writer's
//! index while it can vouch, from the stream otherwise, and never published twice.

use std::sync::atomic::Ordering;

use dyschat_protocol::{ApiError, ErrorCode};

use crate::config::AgentSettings;
use crate::core::send::Sent;
use crate::core::{Outgoing, Reply};
use crate::testing::{fixture, fixture_with, settings, user, Fixture};

const ROOM: &str = "room1";

fn member_fixture() -> Fixture {
    let f = fixture();
    f.rooms.create(ROOM, &user("alice"));
    f
}

async fn send(f: &Fixture, body: &str, client_msg_id: Option<&str>) -> Sent {
    let out = Outgoing {
        room_id: ROOM.into(),
        body: body.into(),
        client_msg_id: client_msg_id.map(String::from),
        reply_to: None,
        attachments: Vec::new(),
    };
    let pending = f.core.send(&user("alice"), out, Reply::Ack).await.unwrap();
    f.core.confirm(pending).await.unwrap()
}

/// The first send, then the stream's window passes.
async fn sent_long_ago(f: &Fixture) -> Sent {
    let first = send(f, "hello", Some("retry-me")).await;
    assert!(!first.duplicate);
    f.stream.post(ROOM, "later traffic");
    f.stream.forget_publish_ids();
    first
}

fn messages_in_room(f: &Fixture) -> usize {
    f.stream.room_messages(ROOM, u64::MAX).len()
}

#[tokio::test]
async fn a_retry_past_the_stream_window_is_answered_from_the_index() {
    let f = member_fixture();
    let first = sent_long_ago(&f).await;
    let retry = send(&f, "hello", Some("retry-me")).await;
    assert!(retry.duplicate);
    assert_eq!(retry.seq, first.seq);
    assert_eq!(retry.stored.message_id, first.stored.message_id);
    assert_eq!(messages_in_room(&f), 2, "published again");
    assert_eq!(f.stream.scans.load(Ordering::SeqCst), 0, "read the stream");
}

#[tokio::test]
async fn a_new_id_with_a_trusted_index_is_sent_without_reading_the_stream() {
    let f = member_fixture();
    sent_long_ago(&f).await;
    let other = send(&f, "hello", Some("a-new-one")).await;
    assert!(!other.duplicate);
    assert_eq!(messages_in_room(&f), 3);
    assert_eq!(f.stream.scans.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn sends_without_an_id_never_consult_the_index() {
    let f = member_fixture();
    f.history.failing.store(true, Ordering::SeqCst);
    let a = send(&f, "one", None).await;
    let b = send(&f, "one", None).await;
    assert_ne!(a.seq, b.seq);
    assert_eq!(f.stream.scans.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_retry_the_writer_has_not_indexed_is_found_in_the_stream() {
    let f = member_fixture();
    let first = sent_long_ago(&f).await;
    // The writer (and so its index) stopped before the first send, longer ago than the
    // stream's window.
    f.stream.writer_floor.store(0, Ordering::SeqCst);
    f.stream
        .writer_behind_for_ms
        .store(600_000, Ordering::SeqCst);
    f.history.stored_up_to.store(0, Ordering::SeqCst);
    let retry = send(&f, "hello", Some("retry-me")).await;
    assert!(retry.duplicate);
    assert_eq!(retry.seq, first.seq);
    assert_eq!(messages_in_room(&f), 2, "published again");
    assert_eq!(f.stream.scans.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_writer_behind_for_less_than_the_stream_window_leaves_it_to_the_stream() {
    let f = member_fixture();
    send(&f, "hello", Some("recent")).await;
    f.stream.writer_floor.store(0, Ordering::SeqCst);
    f.history.stored_up_to.store(0, Ordering::SeqCst);
    // The stream still holds the id: the retry is its duplicate, without a scan.
    let retry = send(&f, "hello", Some("recent")).await;
    assert!(retry.duplicate);
    assert_eq!(f.stream.scans.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_retry_while_redis_is_down_is_found_in_the_stream() {
    let f = member_fixture();
    let first = sent_long_ago(&f).await;
    f.history.failing.store(true, Ordering::SeqCst);
    let retry = send(&f, "hello", Some("retry-me")).await;
    assert!(retry.duplicate);
    assert_eq!(retry.seq, first.seq);
    assert_eq!(messages_in_room(&f), 2, "published again");
}

#[tokio::test]
async fn an_incomplete_index_is_not_trusted() {
    let f = member_fixture();
    let first = sent_long_ago(&f).await;
    // Redis restarted empty: nothing indexed, the marker gone.
    f.history.complete.store(false, Ordering::SeqCst);
    f.history.stored_up_to.store(0, Ordering::SeqCst);
    let retry = send(&f, "hello", Some("retry-me")).await;
    assert!(retry.duplicate);
    assert_eq!(retry.seq, first.seq);
    assert_eq!(f.stream.scans.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_duplicate_costs_no_stored_bytes() {
    let f = fixture_with(AgentSettings {
        max_bytes_per_user_per_day: 1024,
        ..settings()
    });
    f.rooms.create(ROOM, &user("alice"));
    let body = "x".repeat(600);
    let first = send(&f, &body, Some("big")).await;
    f.stream.forget_publish_ids();
    for _ in 0..3 {
        let retry = send(&f, &body, Some("big")).await;
        assert_eq!(retry.seq, first.seq);
    }
    let out = Outgoing {
        room_id: ROOM.into(),
        body: body.clone(),
        client_msg_id: Some("another".into()),
        reply_to: None,
        attachments: Vec::new(),
    };
    let refused = f.core.send(&user("alice"), out, Reply::Ack).await;
    let e = ApiError::from(refused.err().expect("a new message past the quota"));
    assert_eq!(e.code, ErrorCode::RateLimited);
}
