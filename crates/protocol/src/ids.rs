//! Identifier and name rules of the contract.
//!
//! Ids end up inside NATS subjects and Redis keys, so nothing reaches a subject without passing
//! [`validate_id`]: it admits only `[A-Za-z0-9_-]{1,64}`, which rules out `.`, `*`, `>` and white
//! space and with them subject injection.

use crate::error::ApiError;
use crate::text;

pub const MAX_ID_LEN: usize = 64;

pub fn is_valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_ID_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Checks an id a peer sent; `what` names it in the error message.
pub fn validate_id(what: &str, id: &str) -> Result<(), ApiError> {
    if is_valid_id(id) {
        Ok(())
    } else {
        Err(ApiError::bad_request(format!(
            "{what} must match ^[A-Za-z0-9_-]{{1,64}}$"
        )))
    }
}

/// A new, time-ordered id (a ULID: 26 characters of `[0-9A-Z]`), so listing ids in order lists
/// things in creation order.
///
/// Plain ULIDs are random within one millisecond, so ids made in the same millisecond would sort
/// in random order; a process-wide monotonic generator makes every id of this process sort after
/// the previous one.
pub fn new_id() -> String {
    static GENERATOR: std::sync::Mutex<ulid::Generator> =
        std::sync::Mutex::new(ulid::Generator::new());
    let next = match GENERATOR.lock() {
        Ok(mut generator) => generator.generate().ok(),
        Err(poisoned) => poisoned.into_inner().generate().ok(),
    };
    // `generate` fails only when 2^80 ids were made in one millisecond.
    next.unwrap_or_else(ulid::Ulid::new).to_string()
}

pub fn validate_username(name: &str) -> Result<(), ApiError> {
    let ok = (3..=32).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(ApiError::bad_request(
            "username must be 3 to 32 of A-Z a-z 0-9 _ . -",
        ))
    }
}

/// The key under which a username is unique: usernames are unique ignoring case.
pub fn username_key(name: &str) -> String {
    name.to_ascii_lowercase()
}

pub fn validate_password(password: &str) -> Result<(), ApiError> {
    if (8..=128).contains(&password.chars().count()) {
        Ok(())
    } else {
        Err(ApiError::bad_request(
            "password must be 8 to 128 characters",
        ))
    }
}

/// Refuses control characters other than tab, line feed and carriage return in `what`.
fn no_controls(what: &str, text: &str) -> Result<(), ApiError> {
    match text::forbidden_control(text) {
        None => Ok(()),
        Some(c) => Err(ApiError::bad_request(format!(
            "{what} must not contain control characters (U+{:04X})",
            u32::from(c)
        ))),
    }
}

pub fn validate_room_name(name: &str) -> Result<(), ApiError> {
    let n = name.chars().count();
    if !(1..=100).contains(&n) || text::is_blank(name) {
        return Err(ApiError::bad_request(
            "name must be 1 to 100 characters, not only white space or invisible ones",
        ));
    }
    no_controls("name", name)
}

pub fn validate_topic(topic: &str) -> Result<(), ApiError> {
    if topic.chars().count() > 500 {
        return Err(ApiError::bad_request(
            "topic must be at most 500 characters",
        ));
    }
    // No topic is "", but a topic of only invisible characters looks like one and is not.
    if !topic.is_empty() && text::is_blank(topic) {
        return Err(ApiError::bad_request(
            "topic must not be only white space or invisible characters",
        ));
    }
    no_controls("topic", topic)
}

pub const MAX_BODY_CHARS: usize = 4000;

pub fn validate_body(body: &str) -> Result<(), ApiError> {
    let n = body.chars().count();
    if n == 0 || text::is_blank(body) {
        Err(ApiError::bad_request(
            "body must not be empty or only white space or invisible characters",
        ))
    } else if n > MAX_BODY_CHARS {
        Err(ApiError::bad_request(
            "body must be at most 4000 characters",
        ))
    } else {
        no_controls("body", body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_reject_subject_tokens() {
        for bad in ["", "a.b", "*", ">", "a b", "a\tb", "é", &"x".repeat(65)] {
            assert!(!is_valid_id(bad), "{bad:?} accepted");
        }
        for good in ["a", "A-b_9", &"x".repeat(64), &new_id()] {
            assert!(is_valid_id(good), "{good:?} refused");
        }
    }

    #[test]
    fn new_ids_sort_in_creation_order() {
        let ids: Vec<String> = (0..1000).map(|_| new_id()).collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn usernames_and_passwords() {
        assert!(validate_username("al").is_err());
        assert!(validate_username("alice.b-c_9").is_ok());
        assert!(validate_username("alice!").is_err());
        assert!(validate_username(&"a".repeat(33)).is_err());
        assert_eq!(username_key("AlIcE"), "alice");
        assert!(validate_password("1234567").is_err());
        assert!(validate_password("12345678").is_ok());
        assert!(validate_password(&"é".repeat(128)).is_ok());
        assert!(validate_password(&"é".repeat(129)).is_err());
    }

    #[test]
    fn bodies() {
        assert!(validate_body("").is_err());
        assert!(validate_body(" \n\t").is_err());
        assert!(validate_body("hi").is_ok());
        assert!(validate_body(&"ü".repeat(4000)).is_ok());
        assert!(validate_body(&"ü".repeat(4001)).is_err());
        assert!(validate_body("\u{200B}\u{2060}").is_err());
        assert!(validate_body("\u{3164}").is_err());
        assert!(validate_body("bell\u{7}").is_err());
        assert!(validate_body("two\nlines\tand a tab").is_ok());
        assert!(validate_room_name("\u{200B}").is_err());
        assert!(validate_room_name("a\0b").is_err());
        assert!(validate_topic("").is_ok());
        assert!(validate_topic(" \u{FEFF}").is_err());
    }
}
