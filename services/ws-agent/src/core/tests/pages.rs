//! History pages when the history store is behind, emptied, restored from an old copy or away:
//! every page equals the one a complete store would give (same messages, same `prev_seq`s,
//! same `has_more`), and the stream is read only for what the store cannot vouch for.

use std::sync::atomic::Ordering;

use dyschat_protocol::wire::MessagePage;
use dyschat_runtime::history::PageQuery;

use crate::testing::{fixture, user, Fixture};

const ROOM: &str = "room1";
const OTHER: &str = "room2";

/// A room of 30 messages interleaved with another room's (the stream's seqs are sparse).
fn filled() -> Fixture {
    let f = fixture();
    f.rooms.create(ROOM, &user("alice"));
    for n in 0..30 {
        f.stream.post(ROOM, &format!("m{n}"));
        if n % 3 == 0 {
            f.stream.post(OTHER, "elsewhere");
        }
    }
    f
}

async fn page(f: &Fixture, query: PageQuery, limit: usize) -> MessagePage {
    f.core
        .history_page(ROOM, query, limit)
        .await
        .expect("a page")
}

fn seqs(page: &MessagePage) -> Vec<(u64, u64)> {
    page.messages.iter().map(|m| (m.seq, m.prev_seq)).collect()
}

/// Every page shape we serve, against what the complete store answers.
async fn pages_match_a_complete_store(f: &Fixture) {
    let last = f.stream.last_seq_now(ROOM);
    let queries = [
        PageQuery::Before(None),
        PageQuery::Before(Some(last)),
        PageQuery::Before(Some(last / 2)),
        PageQuery::After(0),
        PageQuery::After(last / 3),
        PageQuery::After(last - 3),
    ];
    // What a store holding everything answers.
    let saved = (
        f.history.stored_up_to.load(Ordering::SeqCst),
        f.history.complete.load(Ordering::SeqCst),
        f.history.high_water.load(Ordering::SeqCst),
        f.history.failing.load(Ordering::SeqCst),
        f.stream.writer_floor.load(Ordering::SeqCst),
    );
    let mut expected = Vec::new();
    f.history.stored_up_to.store(u64::MAX, Ordering::SeqCst);
    f.history.complete.store(true, Ordering::SeqCst);
    f.history.high_water.store(u64::MAX, Ordering::SeqCst);
    f.history.failing.store(false, Ordering::SeqCst);
    f.stream.writer_floor.store(u64::MAX, Ordering::SeqCst);
    for q in queries {
        for limit in [1, 5, 50] {
            let p = page(f, q, limit).await;
            expected.push((seqs(&p), p.has_more));
        }
    }
    f.history.stored_up_to.store(saved.0, Ordering::SeqCst);
    f.history.complete.store(saved.1, Ordering::SeqCst);
    f.history.high_water.store(saved.2, Ordering::SeqCst);
    f.history.failing.store(saved.3, Ordering::SeqCst);
    f.stream.writer_floor.store(saved.4, Ordering::SeqCst);
    let mut i = 0;
    for q in queries {
        for limit in [1, 5, 50] {
            let p = page(f, q, limit).await;
            assert_eq!((seqs(&p), p.has_more), expected[i], "{q:?} limit {limit}");
            i += 1;
        }
    }
}

#[tokio::test]
async fn a_writer_behind_leaves_nothing_out() {
    let f = filled();
    // The writer stored (and acked) only the first third of the stream.
    let third = f.stream.last_seq_any() / 3;
    f.history.stored_up_to.store(third, Ordering::SeqCst);
    f.stream.writer_floor.store(third, Ordering::SeqCst);
    pages_match_a_complete_store(&f).await;
}

#[tokio::test]
async fn an_emptied_or_unreachable_store_is_read_around() {
    let f = filled();
    // Flushed: nothing stored, no marker.
    f.history.stored_up_to.store(0, Ordering::SeqCst);
    f.history.complete.store(false, Ordering::SeqCst);
    pages_match_a_complete_store(&f).await;
    // Unreachable.
    f.history.failing.store(true, Ordering::SeqCst);
    pages_match_a_complete_store(&f).await;
}

#[tokio::test]
async fn a_store_restored_from_an_old_copy_is_not_trusted() {
    let f = filled();
    // The store says "complete" but lost the last two thirds; the writer had acked everything.
    let third = f.stream.last_seq_any() / 3;
    f.history.stored_up_to.store(third, Ordering::SeqCst);
    f.history.high_water.store(third, Ordering::SeqCst);
    pages_match_a_complete_store(&f).await;
}

#[tokio::test]
async fn a_store_that_keeps_up_costs_one_position_lookup() {
    let f = filled();
    let before = f.stream.newest_up_to_calls.load(Ordering::SeqCst);
    let p = page(&f, PageQuery::Before(None), 10).await;
    assert_eq!(p.messages.len(), 10);
    assert!(p.has_more);
    assert!(f.stream.newest_up_to_calls.load(Ordering::SeqCst) - before <= 1);
    assert_eq!(f.history.pages.load(Ordering::SeqCst), 1);
}
