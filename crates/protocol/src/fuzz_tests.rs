//! Property tests of everything that parses peer input: WebSocket frames, HTTP bodies and the id
//! and name validators that keep user input out of NATS subject tokens.
//!
//! Case counts are bounded (see [`CASES`]) so the suite stays fast in CI; the properties are the
//! ones an attacker probes: no input panics, every refusal is a `bad_request`, and nothing
//! accepted as an id can add a token or a wildcard to a subject.

use proptest::prelude::*;
use serde_json::{json, Value};

use crate::error::ErrorCode;
use crate::ids;
use crate::wire::{
    decode_client_frame, ClientFrame, CreateRoomBody, Credentials, PostMessageBody, MAX_FRAME_BYTES,
};

const CASES: u32 = 2000;

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: CASES,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Any JSON value, nested a few levels, with keys drawn partly from the frames' real field names
/// so the decoder's interesting paths are reached, not only "unknown type".
fn arb_json() -> impl Strategy<Value = Value> {
    let key = prop_oneof![
        Just("type".to_string()),
        Just("ref".to_string()),
        Just("room_id".to_string()),
        Just("body".to_string()),
        Just("since".to_string()),
        Just("limit".to_string()),
        Just("token".to_string()),
        ".{0,8}",
    ];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        prop_oneof![
            Just("send"),
            Just("join"),
            Just("auth"),
            Just("ping"),
            Just("leave"),
            Just("typing"),
            Just("history"),
            Just("a.b"),
            Just("*"),
            Just(">"),
        ]
        .prop_map(Value::from),
        ".{0,40}".prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 48, 8, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((key.clone(), inner), 0..6)
                .prop_map(|pairs| Value::Object(pairs.into_iter().collect())),
        ]
    })
}

fn arb_id() -> impl Strategy<Value = String> {
    "[A-Za-z0-9_-]{1,64}"
}

fn arb_ref() -> impl Strategy<Value = Option<String>> {
    prop::option::of(".{0,40}")
}

/// A valid frame together with the JSON a client would send for it.
fn arb_frame() -> impl Strategy<Value = (ClientFrame, Value)> {
    let body = "\\PC{1,200}";
    prop_oneof![
        ".{1,300}".prop_map(|token| (
            ClientFrame::Auth {
                token: token.clone()
            },
            json!({"type": "auth", "token": token})
        )),
        (arb_id(), prop::option::of(any::<u64>())).prop_map(|(room_id, since)| (
            ClientFrame::Join {
                room_id: room_id.clone(),
                since
            },
            json!({"type": "join", "room_id": room_id, "since": since})
        )),
        arb_id().prop_map(|room_id| (
            ClientFrame::Leave {
                room_id: room_id.clone()
            },
            json!({"type": "leave", "room_id": room_id})
        )),
        (arb_id(), body, prop::option::of(arb_id())).prop_map(|(room_id, body, cmid)| (
            ClientFrame::Send {
                room_id: room_id.clone(),
                body: body.clone(),
                client_msg_id: cmid.clone(),
                reply_to: None,
                attachments: None,
            },
            json!({"type": "send", "room_id": room_id, "body": body, "client_msg_id": cmid})
        )),
        arb_id().prop_map(|room_id| (
            ClientFrame::Typing {
                room_id: room_id.clone()
            },
            json!({"type": "typing", "room_id": room_id})
        )),
        (
            arb_id(),
            prop::option::of(any::<u64>()),
            prop::option::of(any::<u32>())
        )
            .prop_map(|(room_id, before, limit)| (
                ClientFrame::History {
                    room_id: room_id.clone(),
                    before,
                    limit
                },
                json!({"type": "history", "room_id": room_id, "before": before, "limit": limit})
            )),
        Just((ClientFrame::Ping {}, json!({"type": "ping"}))),
    ]
}

/// Refusals are always `bad_request` with a message, and keep a `ref` only when one was sent.
fn check_refusal(text: &str) -> Result<(), TestCaseError> {
    if let Err(e) = decode_client_frame(text) {
        prop_assert_eq!(e.error.code, ErrorCode::BadRequest);
        prop_assert!(!e.error.message.is_empty());
        prop_assert!(e.error.retry_after_ms.is_none());
        if let Some(reference) = e.reference {
            prop_assert!(reference.len() <= 128);
            prop_assert!(text.contains("ref"));
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn arbitrary_text_never_panics_and_is_refused_as_bad_request(text in "\\PC{0,200}") {
        check_refusal(&text)?;
    }

    #[test]
    fn arbitrary_bytes_as_text_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        check_refusal(&String::from_utf8_lossy(&bytes))?;
    }

    #[test]
    fn arbitrary_json_never_panics_and_is_refused_as_bad_request(value in arb_json()) {
        let text = value.to_string();
        prop_assume!(text.len() <= MAX_FRAME_BYTES);
        check_refusal(&text)?;
    }

    #[test]
    fn valid_frames_round_trip((frame, mut value) in arb_frame(), reference in arb_ref()) {
        if let Some(r) = &reference {
            value["ref"] = Value::from(r.clone());
        }
        let inbound = decode_client_frame(&value.to_string())
            .map_err(|e| TestCaseError::fail(format!("{value} refused: {:?}", e.error)))?;
        prop_assert_eq!(inbound.frame, frame);
        prop_assert_eq!(inbound.reference, reference);
    }

    #[test]
    fn http_bodies_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..300), value in arb_json()) {
        let json = value.to_string();
        for input in [bytes.as_slice(), json.as_bytes()] {
            let _ = serde_json::from_slice::<Credentials>(input);
            let _ = serde_json::from_slice::<CreateRoomBody>(input);
            let _ = serde_json::from_slice::<PostMessageBody>(input);
        }
    }

    #[test]
    fn accepted_ids_never_carry_subject_syntax(id in "\\PC{0,70}") {
        if ids::is_valid_id(&id) {
            prop_assert!((1..=ids::MAX_ID_LEN).contains(&id.len()));
            prop_assert!(!id.contains(['.', '*', '>']));
            prop_assert!(!id.chars().any(char::is_whitespace));
            prop_assert!(ids::validate_id("id", &id).is_ok());
        } else {
            let e = ids::validate_id("id", &id).unwrap_err();
            prop_assert_eq!(e.code, ErrorCode::BadRequest);
        }
    }

    #[test]
    fn ids_of_the_allowed_alphabet_are_accepted(id in arb_id()) {
        prop_assert!(ids::is_valid_id(&id));
    }

    #[test]
    fn ids_with_a_subject_character_are_refused(
        head in "[A-Za-z0-9_-]{0,30}",
        bad in prop_oneof![Just('.'), Just('*'), Just('>'), Just(' '), Just('\t'), Just('\n'), Just('\u{0}')],
        tail in "[A-Za-z0-9_-]{0,30}",
    ) {
        let id = format!("{head}{bad}{tail}");
        prop_assert!(!ids::is_valid_id(&id), "{:?} accepted", id);
    }

    #[test]
    fn accepted_usernames_are_short_ascii_without_wildcards(name in "\\PC{0,40}") {
        if ids::validate_username(&name).is_ok() {
            prop_assert!((3..=32).contains(&name.len()));
            prop_assert!(name.is_ascii());
            prop_assert!(!name.contains(['*', '>']));
            prop_assert!(!name.chars().any(char::is_whitespace));
        }
    }
}
