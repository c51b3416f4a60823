//! Search over fakes: every hit is checked against the stream (an index lagging behind an edit
//! or a deletion never shows the old text), paging stays exact when hits are dropped, and the
//! rooms searched are the user's at query time.

use dyschat_protocol::search::Cursor;
use dyschat_protocol::wire::{SearchHit, SearchResults};
use dyschat_protocol::ErrorCode;

use crate::core::{CoreError, Edit, SearchQuery};
use crate::testing::{fixture, user, Fixture};

const ROOM: &str = "room1";

fn query(q: &str, limit: Option<i64>, before: Option<String>) -> SearchQuery {
    SearchQuery {
        q: Some(q.into()),
        room_id: None,
        limit,
        before,
    }
}

/// Alice's message in `room`, stored and indexed as sent, with its own `sent_at` second.
fn post(f: &Fixture, room: &str, body: &str, second: u32) -> u64 {
    let mut m = crate::testing::stream_message(room, body);
    m.sender_id = user("alice").user_id;
    m.sent_at = format!("2026-01-01T00:00:{second:02}.000Z");
    let seq = f.stream.append(m.clone());
    f.search.index(SearchHit {
        room_id: room.into(),
        seq,
        message: m,
    });
    seq
}

fn seqs(page: &SearchResults) -> Vec<u64> {
    page.results.iter().map(|r| r.seq).collect()
}

fn code(e: CoreError) -> ErrorCode {
    dyschat_protocol::ApiError::from(e).code
}

#[tokio::test]
async fn an_edit_or_deletion_the_index_has_not_seen_is_honoured() {
    let f = fixture();
    f.rooms.create(ROOM, &user("alice"));
    let edited = post(&f, ROOM, "the old café", 1);
    let deleted = post(&f, ROOM, "old news", 2);
    let kept = post(&f, ROOM, "old but kept", 3);
    f.core
        .change(
            &user("alice"),
            ROOM,
            edited,
            Edit::Body("the new Café".into()),
        )
        .await
        .unwrap();
    f.core
        .change(&user("alice"), ROOM, deleted, Edit::Delete)
        .await
        .unwrap();
    // The index still holds the old states.
    let page = f
        .core
        .search_messages(&user("alice"), query("OLD", None, None))
        .await
        .unwrap();
    assert_eq!(seqs(&page), vec![kept]);
    assert_eq!(page.next_cursor, None);
    // Not indexed yet: the new text is not found (the index is the one that finds)...
    let page = f
        .core
        .search_messages(&user("alice"), query("cafe new", None, None))
        .await
        .unwrap();
    assert!(page.results.is_empty());
    // ... and once indexed it is, in its current state.
    f.search.index(SearchHit {
        room_id: ROOM.into(),
        seq: edited,
        message: f
            .stream
            .last_change_now(ROOM)
            .map(|c| c.message)
            .filter(|m| !m.deleted)
            .unwrap_or_else(|| {
                let mut m = crate::testing::stream_message(ROOM, "the new Café");
                m.sent_at = "2026-01-01T00:00:01.000Z".into();
                m
            }),
    });
    let page = f
        .core
        .search_messages(&user("alice"), query("cafe new", None, None))
        .await
        .unwrap();
    assert_eq!(seqs(&page), vec![edited]);
    assert_eq!(page.results[0].message.body, "the new Café");
    assert!(page.results[0].message.edited_at.is_some());
}

#[tokio::test]
async fn pages_stay_exact_when_hits_are_dropped() {
    let f = fixture();
    f.rooms.create(ROOM, &user("alice"));
    let all: Vec<u64> = (0..9).map(|i| post(&f, ROOM, "word", i)).collect();
    // Every other one deleted behind the index's back.
    for seq in all.iter().step_by(2) {
        f.core
            .change(&user("alice"), ROOM, *seq, Edit::Delete)
            .await
            .unwrap();
    }
    let mut seen = Vec::new();
    let mut before = None;
    for _ in 0..10 {
        let page = f
            .core
            .search_messages(&user("alice"), query("word", Some(2), before.clone()))
            .await
            .unwrap();
        assert!(page.results.len() <= 2);
        seen.extend(seqs(&page));
        before = page.next_cursor;
        if before.is_none() {
            break;
        }
    }
    let mut expected: Vec<u64> = all.iter().skip(1).step_by(2).copied().collect();
    expected.reverse();
    assert_eq!(seen, expected);
}

#[tokio::test]
async fn only_the_users_rooms_and_the_room_asked_for() {
    let f = fixture();
    f.rooms.create(ROOM, &user("alice"));
    f.rooms.create("room2", &user("bob"));
    let mine = post(&f, ROOM, "hello", 1);
    let theirs = post(&f, "room2", "hello", 2);
    let page = f
        .core
        .search_messages(&user("alice"), query("hello", None, None))
        .await
        .unwrap();
    assert_eq!(seqs(&page), vec![mine]);
    let page = f
        .core
        .search_messages(&user("bob"), query("hello", None, None))
        .await
        .unwrap();
    assert_eq!(seqs(&page), vec![theirs]);
    let mut one = query("hello", None, None);
    one.room_id = Some("room2".into());
    let e = f
        .core
        .search_messages(&user("alice"), one)
        .await
        .unwrap_err();
    assert_eq!(code(e), ErrorCode::Forbidden);
    let mut unknown = query("hello", None, None);
    unknown.room_id = Some("nope".into());
    let e = f
        .core
        .search_messages(&user("alice"), unknown)
        .await
        .unwrap_err();
    assert_eq!(code(e), ErrorCode::NotFound);
    let mut own = query("hello", None, None);
    own.room_id = Some(ROOM.into());
    let page = f.core.search_messages(&user("alice"), own).await.unwrap();
    assert_eq!(seqs(&page), vec![mine]);
    // Nobody's rooms: nothing, without asking the index.
    let asked = f.search.requests.lock().unwrap().len();
    let page = f
        .core
        .search_messages(&user("carol"), query("hello", None, None))
        .await
        .unwrap();
    assert!(page.results.is_empty());
    assert_eq!(f.search.requests.lock().unwrap().len(), asked);
}

#[tokio::test]
async fn bad_requests_are_refused() {
    let f = fixture();
    let alice = user("alice");
    for q in [
        query("", None, None),
        query("   ", None, None),
        query(";;", None, None),
        query("x", Some(0), None),
        query("x", Some(51), None),
        query("x", None, Some("zz".into())),
        query(&"a".repeat(257), None, None),
    ] {
        let e = f.core.search_messages(&alice, q).await.unwrap_err();
        assert_eq!(code(e), ErrorCode::BadRequest);
    }
    let missing = SearchQuery {
        q: None,
        room_id: None,
        limit: None,
        before: None,
    };
    assert_eq!(
        code(f.core.search_messages(&alice, missing).await.unwrap_err()),
        ErrorCode::BadRequest
    );
    let ok = query("x", Some(50), Some(Cursor { sent_ms: 1, seq: 2 }.encode()));
    assert!(f.core.search_messages(&alice, ok).await.is_ok());
}
