//! `prepare` tells messages from change events and refuses what can never be stored;
//! `group_by_room` folds one chunk's writes per room and `seq` by the history rule.

use super::*;
use dyschat_protocol::wire::Reaction;

fn message(room: &str) -> StoredMessage {
    StoredMessage::sent(
        room.into(),
        "m".into(),
        "c".into(),
        "u".into(),
        "alice".into(),
        "hi".into(),
        "2026-11-23T00:00:00.000Z".into(),
    )
}

fn payload(room: &str) -> Vec<u8> {
    serde_json::to_vec(&message(room)).unwrap()
}

fn change(room: &str, seq: u64, kind: ChangeKind, body: &str) -> StoredChange {
    let mut state = message(room);
    state.body = body.into();
    state.edited_at = Some("2026-11-23T00:01:00.000Z".into());
    StoredChange {
        room_id: room.into(),
        seq,
        prev_seq: 0,
        change: kind,
        prev_event_seq: 0,
        by: "u".into(),
        at: "2026-11-23T00:01:00.000Z".into(),
        message: state,
    }
}

fn change_payload(c: &StoredChange) -> Vec<u8> {
    serde_json::to_vec(c).unwrap()
}

fn state_of(prepared: &Prepared) -> StoredMessage {
    match prepared {
        Prepared::Change { change, .. } => serde_json::from_slice(&change.state).unwrap(),
        other => panic!("not a change: {other:?}"),
    }
}

#[test]
fn valid_messages_are_stored_by_seq() {
    assert_eq!(
        prepare("dyschat.msg.room.r1", 7, &payload("r1")),
        Prepared::Store {
            room_id: "r1".into(),
            seq: 7,
            sent_as: "u:c".into(),
        }
    );
}

#[test]
fn poison_is_recognised() {
    for (subject, body) in [
        ("dyschat.msg.room.r1", b"not json".to_vec()),
        ("dyschat.msg.room.r1", payload("r2")),
        ("dyschat.other.r1", payload("r1")),
        // A message on a change subject, and a change on a message subject.
        ("dyschat.msg.room.r1.chg.3", payload("r1")),
        (
            "dyschat.msg.room.r1",
            change_payload(&change("r1", 3, ChangeKind::Edited, "x")),
        ),
    ] {
        assert!(
            matches!(prepare(subject, 7, &body), Prepared::Poison(_)),
            "{subject}"
        );
    }
}

#[test]
fn a_change_is_its_state_versioned_by_the_event() {
    let c = change("r1", 3, ChangeKind::Edited, "edited");
    let prepared = prepare("dyschat.msg.room.r1.chg.3", 9, &change_payload(&c));
    let Prepared::Change {
        room_id,
        event_seq,
        change,
    } = &prepared
    else {
        panic!("{prepared:?}");
    };
    assert_eq!((room_id.as_str(), *event_seq), ("r1", 9));
    assert_eq!((change.seq, change.sender_id.as_str()), (3, "u"));
    assert!(!change.erase);
    let mut expected = c.message.clone();
    expected.version = 9;
    assert_eq!(state_of(&prepared), expected);
    // The same event always gives the same bytes: a rebuild writes what the live path wrote.
    assert_eq!(
        prepare("dyschat.msg.room.r1.chg.3", 9, &change_payload(&c)),
        prepared
    );
}

#[test]
fn a_deletion_is_stored_erased_whatever_it_carries() {
    let mut c = change("r1", 3, ChangeKind::Deleted, "still here");
    c.message.reactions.push(Reaction {
        emoji: "x".into(),
        count: 1,
        user_ids: vec!["u2".into()],
    });
    let prepared = prepare("dyschat.msg.room.r1.chg.3", 9, &change_payload(&c));
    let Prepared::Change { change, .. } = &prepared else {
        panic!("{prepared:?}");
    };
    assert!(change.erase);
    let state = state_of(&prepared);
    assert!(state.deleted && state.body.is_empty() && state.reactions.is_empty());
    assert_eq!((state.version, state.message_id.as_str()), (9, "m"));
}

#[test]
fn a_change_must_name_its_subject_and_follow_its_message() {
    let on = |subject: &str, seq: u64, c: &StoredChange| prepare(subject, seq, &change_payload(c));
    let c = change("r1", 3, ChangeKind::Reaction, "hi");
    assert!(matches!(
        on("dyschat.msg.room.r1.chg.4", 9, &c),
        Prepared::Poison(_)
    ));
    assert!(matches!(
        on("dyschat.msg.room.r2.chg.3", 9, &c),
        Prepared::Poison(_)
    ));
    assert!(matches!(
        on("dyschat.msg.room.r1.chg.3", 3, &c),
        Prepared::Poison(_)
    ));
    let mut other_room = c.clone();
    other_room.message.room_id = "r2".into();
    assert!(matches!(
        on("dyschat.msg.room.r1.chg.3", 9, &other_room),
        Prepared::Poison(_)
    ));
    assert!(matches!(
        prepare("dyschat.msg.room.r1.chg.3", 9, b"{}"),
        Prepared::Poison(_)
    ));
}

fn item(room: &str, seq: u64, payload: &[u8]) -> Item<Vec<u8>> {
    Item {
        room_id: room.to_string(),
        seq,
        kind: Kind::Message {
            sent_as: format!("u:{seq}"),
            day: 20_000,
        },
        message: payload.to_vec(),
    }
}

fn change_item(room: &str, event_seq: u64, seq: u64, erase: bool) -> Item<Vec<u8>> {
    Item {
        room_id: room.to_string(),
        seq: event_seq,
        kind: Kind::Change(Change {
            seq,
            sender_id: "s".into(),
            erase,
            state: format!("v{event_seq}").into_bytes(),
        }),
        message: Vec::new(),
    }
}

#[test]
fn messages_are_grouped_by_room_in_order() {
    let batch = vec![item("a", 3, b"3"), item("b", 2, b"2"), item("a", 1, b"1")];
    let (rooms, indices) = group_by_room(&batch, |p: &Vec<u8>| p.as_slice());
    assert_eq!(rooms.len(), 2);
    assert_eq!(rooms[0].room_id, "a");
    // Ascending seq, whatever the order of delivery: the script reads the range at its ends.
    assert_eq!(rooms[0].messages, vec![(1, &b"1"[..]), (3, &b"3"[..])]);
    assert_eq!(rooms[0].sends, vec![(20_000, "u:3", 3), (20_000, "u:1", 1)]);
    assert_eq!(rooms[0].senders, vec![("u", 3), ("u", 1)]);
    assert_eq!((rooms[0].high, rooms[1].high), (3, 2));
    assert!(rooms[0].states.is_empty() && rooms[0].erase.is_empty());
    assert_eq!(indices, vec![vec![0, 2], vec![1]]);
}

#[test]
fn a_chunk_keeps_the_newest_write_of_each_seq() {
    let batch = vec![
        change_item("a", 12, 3, false),
        item("a", 3, b"original"),
        change_item("a", 9, 3, false),
        change_item("a", 12, 3, false),
        item("a", 5, b"five"),
        change_item("a", 14, 6, true),
        change_item("a", 15, 6, true),
    ];
    let (rooms, indices) = group_by_room(&batch, |p: &Vec<u8>| p.as_slice());
    let room = &rooms[0];
    // The original of 3 gives way to its newest change; 5 has no change; 6 changed before it
    // came (its original is not in the chunk).
    assert_eq!(room.messages, vec![(5, &b"five"[..])]);
    assert_eq!(
        room.states,
        vec![(3, 12, &b"v12"[..]), (6, 15, &b"v15"[..])]
    );
    assert_eq!(room.erase, vec![6]);
    assert_eq!(room.high, 15);
    // Only the originals go to the retried-send index; every write names its sender.
    assert_eq!(room.sends, vec![(20_000, "u:3", 3), (20_000, "u:5", 5)]);
    assert_eq!(room.senders.len(), 7);
    assert_eq!(indices, vec![(0..7).collect::<Vec<_>>()]);
}
