use dyschat_protocol::wire::{ChangeKind, ServerFrame, StoredChange, StoredMessage};

use super::*;
use crate::ports::{ChangeEntry, Entry, Sequenced};
use dyschat_protocol::wire::Message;

fn message(seq: u64, body: &str) -> Entry {
    Entry::Message(Sequenced {
        seq,
        stored: StoredMessage::sent(
            "r".into(),
            format!("m{seq}"),
            format!("c{seq}"),
            "u".into(),
            "ann".into(),
            body.into(),
            "2026-01-01T00:00:00Z".into(),
        ),
    })
}

fn change(
    event_seq: u64,
    prev_event_seq: u64,
    seq: u64,
    prev_seq: u64,
    kind: ChangeKind,
    body: &str,
) -> Entry {
    let Entry::Message(m) = message(seq, body) else {
        unreachable!()
    };
    let mut state = m.stored;
    if kind == ChangeKind::Deleted {
        state = state.erased();
    } else {
        state.edited_at = Some("2026-01-01T00:01:00Z".into());
    }
    Entry::Change(ChangeEntry {
        event_seq,
        change: StoredChange {
            room_id: "r".into(),
            seq,
            prev_seq,
            change: kind,
            prev_event_seq,
            by: "u".into(),
            at: "2026-01-01T00:01:00Z".into(),
            message: state,
        },
    })
}

/// `(position, type, body of the message, prev)` of each frame.
fn summary(frames: &[(u64, ServerFrame)]) -> Vec<(u64, &'static str, String, u64)> {
    frames
        .iter()
        .map(|(p, f)| match f {
            ServerFrame::Message(m) => (*p, "message", m.body.clone(), m.prev_seq),
            ServerFrame::MessageUpdated {
                message,
                prev_event_seq,
                ..
            } => (*p, "updated", message.body.clone(), *prev_event_seq),
            _ => unreachable!(),
        })
        .collect()
}

#[test]
fn messages_come_in_their_current_state_and_changes_with_the_newest() {
    let entries = [
        message(3, "one"),
        change(4, 0, 3, 1, ChangeKind::Edited, "one, edited"),
        message(5, "two"),
        change(6, 4, 3, 1, ChangeKind::Edited, "one, again"),
    ];
    let frames = replay_frames(
        "r",
        &entries,
        Start {
            after: 2,
            prev_seq: 1,
            prev_event_seq: 0,
        },
    );
    assert_eq!(
        summary(&frames),
        [
            (3, "message", "one, again".into(), 1),
            (4, "updated", "one, again".into(), 0),
            (5, "message", "two".into(), 3),
            (6, "updated", "one, again".into(), 4),
        ]
    );
}

#[test]
fn an_erased_message_comes_back_as_its_tombstone_in_its_place() {
    // Message 3 was deleted at 6 and its stored original erased.
    let entries = [
        message(4, "b"),
        message(5, "c"),
        change(6, 0, 3, 2, ChangeKind::Deleted, "a"),
    ];
    let frames = replay_frames(
        "r",
        &entries,
        Start {
            after: 2,
            prev_seq: 2,
            prev_event_seq: 0,
        },
    );
    assert_eq!(
        summary(&frames),
        [
            (3, "message", "".into(), 2),
            (4, "message", "b".into(), 3),
            (5, "message", "c".into(), 4),
            (6, "updated", "".into(), 0),
        ]
    );
}

#[test]
fn a_change_of_an_older_message_sends_only_the_change() {
    let entries = [change(9, 7, 2, 1, ChangeKind::Reaction, "x")];
    let frames = replay_frames(
        "r",
        &entries,
        Start {
            after: 8,
            prev_seq: 5,
            prev_event_seq: first_prev_event_seq(&entries, 8),
        },
    );
    assert_eq!(summary(&frames), [(9, "updated", "x".into(), 7)]);
}

#[test]
fn the_first_prevs_see_erased_neighbours() {
    let entries = [change(9, 8, 4, 3, ChangeKind::Deleted, "x")];
    // The stream's newest message at or before 5 is 3 (4 was erased): the tombstone is newer.
    assert_eq!(first_prev_seq(&entries, 5, 3), 4);
    assert_eq!(first_prev_seq(&[], 5, 3), 3);
    // The change before 9 (at 8) was erased inside the stretch after 6: start from 6.
    assert_eq!(first_prev_event_seq(&entries, 6), 6);
    assert_eq!(first_prev_event_seq(&entries, 8), 8);
}

#[test]
fn a_page_takes_the_newest_states_and_its_erased_tombstones() {
    let page_message = |seq: u64, prev: u64, body: &str| {
        let Entry::Message(m) = message(seq, body) else {
            unreachable!()
        };
        Message::from_stored(m.stored, seq, prev)
    };
    let mut page = vec![page_message(2, 0, "a"), page_message(5, 2, "c")];
    let changes = [
        change(6, 0, 2, 0, ChangeKind::Edited, "a, edited"),
        change(7, 6, 3, 2, ChangeKind::Deleted, "b"),
        change(8, 7, 9, 5, ChangeKind::Deleted, "outside"),
    ];
    overlay(&mut page, &changes);
    let got: Vec<(u64, u64, &str, bool)> = page
        .iter()
        .map(|m| (m.seq, m.prev_seq, m.body.as_str(), m.deleted))
        .collect();
    assert_eq!(
        got,
        [
            (2, 0, "a, edited", false),
            (3, 2, "", true),
            (5, 3, "c", false)
        ]
    );
}
