//! Parsing of batched direct get replies, from messages shaped like nats-server 2.15's.

use super::*;

use async_nats::StatusCode;

fn reply(
    headers: &[(&str, &str)],
    status: Option<u16>,
    payload: &'static [u8],
) -> async_nats::Message {
    let mut map = HeaderMap::new();
    for (k, v) in headers {
        map.insert(*k, *v);
    }
    async_nats::Message {
        subject: "_INBOX.x".into(),
        reply: None,
        payload: Bytes::from_static(payload),
        headers: (!headers.is_empty()).then_some(map),
        status: status.map(|s| StatusCode::from_u16(s).unwrap()),
        description: status.map(|_| "EOB".to_string()),
        length: 0,
    }
}

fn stored(subject: &str, seq: &str, extra: &[(&str, &str)]) -> async_nats::Message {
    let mut headers = vec![
        ("Nats-Stream", "KV_b"),
        ("Nats-Subject", subject),
        ("Nats-Sequence", seq),
        ("Nats-Num-Pending", "3"),
    ];
    headers.extend_from_slice(extra);
    reply(&headers, None, b"{\"v\":1}")
}

#[test]
fn a_stored_message_carries_subject_sequence_and_payload() {
    let Reply::Message(m) = classify("KV_b", stored("$KV.b.r.u", "42", &[])).unwrap() else {
        panic!("not a message")
    };
    assert_eq!((m.subject.as_str(), m.sequence), ("$KV.b.r.u", 42));
    assert_eq!(m.operation, Operation::Put);
    assert_eq!(&m.payload[..], b"{\"v\":1}");
    assert_eq!(
        m.headers.get("Nats-Stream").map(|v| v.as_str()),
        Some("KV_b")
    );
}

#[test]
fn markers_are_told_from_values() {
    let op = |extra: &[(&str, &str)]| match classify("KV_b", stored("s", "1", extra)).unwrap() {
        Reply::Message(m) => m.operation,
        other => panic!("{other:?}"),
    };
    assert_eq!(op(&[("KV-Operation", "DEL")]), Operation::Delete);
    assert_eq!(op(&[("KV-Operation", "PURGE")]), Operation::Purge);
    assert_eq!(op(&[("KV-Operation", "PUT")]), Operation::Put);
    assert_eq!(op(&[("Nats-Marker-Reason", "MaxAge")]), Operation::Purge);
    assert_eq!(op(&[("Nats-Marker-Reason", "Remove")]), Operation::Delete);
    // A counter increment keeps its own header and is a value.
    assert_eq!(op(&[("Nats-Incr", "+1")]), Operation::Put);
}

#[test]
fn the_end_of_a_batch_says_what_is_left() {
    let end = reply(
        &[("Nats-Num-Pending", "7"), ("Nats-Last-Sequence", "9")],
        Some(204),
        b"",
    );
    assert_eq!(classify("S", end).unwrap(), Reply::End { num_pending: 7 });
    let bare = reply(&[], Some(204), b"");
    assert_eq!(classify("S", bare).unwrap(), Reply::End { num_pending: 0 });
}

#[test]
fn statuses_become_typed_answers() {
    assert_eq!(
        classify("S", reply(&[], Some(404), b"")).unwrap(),
        Reply::NothingFound
    );
    assert!(matches!(
        classify("S", reply(&[], Some(413), b"")),
        Err(DirectError::TooManyResults)
    ));
    assert!(matches!(
        classify("S", reply(&[], Some(503), b"")),
        Err(DirectError::NoResponders(s)) if s == "S"
    ));
    assert!(matches!(
        classify("S", reply(&[], Some(408), b"")),
        Err(DirectError::Refused { code: 408, .. })
    ));
}

#[test]
fn malformed_messages_are_errors() {
    let no_seq = reply(&[("Nats-Subject", "a")], None, b"");
    assert!(matches!(
        classify("S", no_seq),
        Err(DirectError::Malformed(_))
    ));
    let bad_seq = reply(&[("Nats-Subject", "a"), ("Nats-Sequence", "x")], None, b"");
    assert!(matches!(
        classify("S", bad_seq),
        Err(DirectError::Malformed(_))
    ));
    let no_headers = reply(&[], None, b"x");
    assert!(matches!(
        classify("S", no_headers),
        Err(DirectError::Malformed(_))
    ));
    let bad_pending = reply(&[("Nats-Num-Pending", "-")], Some(204), b"");
    assert!(matches!(
        classify("S", bad_pending),
        Err(DirectError::Malformed(_))
    ));
}

#[test]
fn requests_encode_as_the_server_expects() {
    let page = Request {
        seq: Some(5),
        next_by_subj: Some("$KV.b.r.*"),
        multi_last: None,
        up_to_seq: None,
        batch: 10,
    };
    assert_eq!(
        serde_json::to_string(&page).unwrap(),
        r#"{"seq":5,"next_by_subj":"$KV.b.r.*","batch":10}"#
    );
    let subjects = vec!["a.*".to_string(), "b".to_string()];
    let last = Request {
        seq: None,
        next_by_subj: None,
        multi_last: Some(&subjects),
        up_to_seq: Some(9),
        batch: 2,
    };
    assert_eq!(
        serde_json::to_string(&last).unwrap(),
        r#"{"multi_last":["a.*","b"],"up_to_seq":9,"batch":2}"#
    );
}

#[test]
fn the_next_page_starts_after_the_last_message() {
    let mut batch = Batch::default();
    assert_eq!(batch.next_sequence(), None);
    let Reply::Message(m) = classify("S", stored("s", "41", &[])).unwrap() else {
        panic!()
    };
    batch.messages.push(m);
    assert_eq!(batch.next_sequence(), Some(42));
}
