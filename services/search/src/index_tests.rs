use dyschat_protocol::search::{search_terms, Cursor};
use dyschat_protocol::wire::StoredMessage;

use super::*;

fn state(room: &str, body: &str, sent: &str) -> StoredMessage {
    StoredMessage::sent(
        room.into(),
        "m".into(),
        "c".into(),
        "u".into(),
        "ann".into(),
        body.into(),
        sent.into(),
    )
}

fn up(room: &str, seq: u64, version: u64, body: &str) -> Upsert {
    Upsert {
        room_id: room.into(),
        seq,
        version,
        state: state(
            room,
            body,
            &format!("2026-01-01T00:00:{:02}.000Z", seq % 60),
        ),
    }
}

fn deleted(room: &str, seq: u64, version: u64) -> Upsert {
    let mut u = up(room, seq, version, "");
    u.state = u.state.erased();
    u
}

fn find(index: &SearchIndex, q: &str, rooms: &[&str]) -> Vec<u64> {
    let rooms: Vec<String> = rooms.iter().map(|r| r.to_string()).collect();
    let (hits, _) = index.search(&search_terms(q), &rooms, None, 50).unwrap();
    hits.into_iter().map(|h| h.seq).collect()
}

#[test]
fn words_are_found_whole_without_case_or_diacritics() {
    let index = SearchIndex::in_ram().unwrap();
    let mut w = index.indexer().unwrap();
    w.apply(
        vec![
            up("r", 1, 0, "Le Café est ouvert"),
            up("r", 2, 0, "cafeteria"),
        ],
        vec![],
        2,
    )
    .unwrap();
    assert_eq!(find(&index, "cafe", &["r"]), vec![1]);
    assert_eq!(find(&index, "CAFÉ ouvert", &["r"]), vec![1]);
    assert!(find(&index, "caf", &["r"]).is_empty());
    assert!(find(&index, "cafe ferme", &["r"]).is_empty());
    assert!(find(&index, "cafe", &["other"]).is_empty());
    assert_eq!(index.applied().unwrap(), 2);
}

#[test]
fn an_edit_replaces_the_words_and_a_deletion_removes_them() {
    let index = SearchIndex::in_ram().unwrap();
    let mut w = index.indexer().unwrap();
    w.apply(vec![up("r", 1, 0, "old words")], vec![], 1)
        .unwrap();
    w.apply(vec![up("r", 1, 5, "new words")], vec![], 5)
        .unwrap();
    assert!(find(&index, "old", &["r"]).is_empty());
    assert_eq!(find(&index, "new", &["r"]), vec![1]);
    w.apply(vec![deleted("r", 1, 7)], vec![], 7).unwrap();
    assert!(find(&index, "words", &["r"]).is_empty());
}

#[test]
fn older_states_never_replace_newer_ones() {
    let index = SearchIndex::in_ram().unwrap();
    let mut w = index.indexer().unwrap();
    // Out of order within one batch, and redeliveries in later batches.
    let out = w
        .apply(
            vec![
                up("r", 1, 9, "edited"),
                up("r", 1, 0, "original"),
                up("r", 1, 4, "first edit"),
            ],
            vec![],
            9,
        )
        .unwrap();
    assert_eq!(
        out,
        Applied {
            written: 1,
            skipped: 2
        }
    );
    let out = w
        .apply(
            vec![up("r", 1, 0, "original"), up("r", 1, 9, "edited")],
            vec![],
            9,
        )
        .unwrap();
    assert_eq!(
        out,
        Applied {
            written: 0,
            skipped: 2
        }
    );
    assert_eq!(find(&index, "edited", &["r"]), vec![1]);
    assert!(find(&index, "original", &["r"]).is_empty());
    // A deletion followed by a redelivered original stays deleted.
    w.apply(
        vec![deleted("r", 1, 12), up("r", 1, 0, "original")],
        vec![],
        12,
    )
    .unwrap();
    w.apply(vec![up("r", 1, 0, "original")], vec![], 12)
        .unwrap();
    assert!(find(&index, "original edited", &["r"]).is_empty());
    assert!(find(&index, "original", &["r"]).is_empty());
}

#[test]
fn a_deleted_room_leaves_and_stays_out() {
    let index = SearchIndex::in_ram().unwrap();
    let mut w = index.indexer().unwrap();
    w.apply(
        vec![up("a", 1, 0, "hello"), up("b", 2, 0, "hello")],
        vec![],
        2,
    )
    .unwrap();
    w.apply(vec![up("a", 3, 0, "hello again")], vec!["a".into()], 3)
        .unwrap();
    assert_eq!(find(&index, "hello", &["a", "b"]), vec![2]);
    w.apply(vec![up("a", 4, 0, "hello")], vec![], 4).unwrap();
    assert_eq!(find(&index, "hello", &["a", "b"]), vec![2]);
}

#[test]
fn pages_go_newest_first_by_sent_then_seq() {
    let index = SearchIndex::in_ram().unwrap();
    let mut w = index.indexer().unwrap();
    let mut batch = Vec::new();
    for seq in 1..=7u64 {
        let mut u = up(if seq % 2 == 0 { "a" } else { "b" }, seq, 0, "same word");
        // Two pairs share a time: seq breaks the tie.
        u.state.sent_at = format!("2026-01-01T00:00:{:02}.000Z", seq / 2);
        batch.push(u);
    }
    w.apply(batch, vec![], 7).unwrap();
    let rooms = vec!["a".to_string(), "b".to_string()];
    let terms = search_terms("word");
    let mut seen = Vec::new();
    let mut before = None;
    loop {
        let (hits, more) = index.search(&terms, &rooms, before, 3).unwrap();
        seen.extend(hits.iter().map(|h| h.seq));
        if !more {
            break;
        }
        let last = hits.last().unwrap();
        before = Some(Cursor::of(&last.message.sent_at, last.seq));
    }
    assert_eq!(seen, vec![7, 6, 5, 4, 3, 2, 1]);
}

#[test]
fn the_position_survives_reopening() {
    let dir = tempfile::tempdir().unwrap();
    {
        let index = SearchIndex::open(dir.path()).unwrap();
        assert_eq!(index.applied().unwrap(), 0);
        let mut w = index.indexer().unwrap();
        w.apply(vec![up("r", 3, 0, "kept")], vec![], 3).unwrap();
    }
    let index = SearchIndex::open(dir.path()).unwrap();
    assert_eq!(index.applied().unwrap(), 3);
    assert_eq!(find(&index, "kept", &["r"]), vec![3]);
    let mut w = index.indexer().unwrap();
    w.clear().unwrap();
    assert_eq!(index.applied().unwrap(), 0);
    assert!(find(&index, "kept", &["r"]).is_empty());
}

#[test]
fn a_restarted_indexer_still_refuses_an_older_redelivery() {
    let index = SearchIndex::in_ram().unwrap();
    {
        let mut w = index.indexer().unwrap();
        w.apply(
            vec![up("r", 1, 0, "first"), up("r", 1, 5, "second")],
            vec![],
            5,
        )
        .unwrap();
    }
    // A new writer (a restart) starts from the committed position: the original and the edit
    // come again and change nothing; a later edit still replaces the text.
    let mut w = index.indexer().unwrap();
    let out = w
        .apply(
            vec![up("r", 1, 0, "first"), up("r", 1, 5, "second")],
            vec![],
            5,
        )
        .unwrap();
    assert_eq!(
        out,
        Applied {
            written: 0,
            skipped: 2
        }
    );
    assert!(find(&index, "first", &["r"]).is_empty());
    w.apply(vec![up("r", 1, 8, "third")], vec![], 8).unwrap();
    assert!(find(&index, "second", &["r"]).is_empty());
    assert_eq!(find(&index, "third", &["r"]), vec![1]);
}
