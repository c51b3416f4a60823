//! What an edit, deletion or reaction does to a message's state: pure, so every rule of the
//! contract is unit-tested without a stream. Who may do it is decided before, by the standing
//! ([`dyschat_protocol::policy`]); these are the rules about the message itself.

use dyschat_protocol::{
    ids,
    wire::{ChangeKind, Reaction, StoredMessage},
    ApiError,
};

/// The most distinct emoji on one message.
pub(crate) const MAX_EMOJI: usize = 50;
/// The longest emoji, in bytes.
pub(crate) const MAX_EMOJI_BYTES: usize = 32;

/// A change a user asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Edit {
    /// A new body for the user's own message.
    Body(String),
    Delete,
    React(String),
    Unreact(String),
}

impl Edit {
    /// Checks what the request carries (the body, the emoji) before anything is read.
    pub(crate) fn validate(&self) -> Result<(), ApiError> {
        match self {
            Edit::Body(body) => ids::validate_body(body),
            Edit::Delete => Ok(()),
            Edit::React(emoji) | Edit::Unreact(emoji) => validate_emoji(emoji),
        }
    }
}

fn validate_emoji(emoji: &str) -> Result<(), ApiError> {
    if emoji.is_empty() || emoji.len() > MAX_EMOJI_BYTES {
        return Err(ApiError::bad_request("emoji must be 1 to 32 bytes"));
    }
    if emoji.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(ApiError::bad_request(
            "emoji must not hold white space or control characters",
        ));
    }
    Ok(())
}

/// What applying an edit came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// A new state, to be stored as a change event of this kind.
    Changed(ChangeKind, Box<StoredMessage>),
    /// Nothing to store (a repeated reaction, or taking back one that is not there).
    Unchanged,
}

/// Applies `edit` by `actor` (already allowed to make it) to `state` at time `now`.
pub(crate) fn apply(
    state: &StoredMessage,
    edit: &Edit,
    actor: &str,
    now: &str,
) -> Result<Outcome, ApiError> {
    if state.deleted {
        return Err(ApiError::conflict("the message was deleted"));
    }
    let mut next = state.clone();
    let kind = match edit {
        Edit::Body(body) => {
            if state.sender_id != actor {
                return Err(ApiError::forbidden("only the sender may edit a message"));
            }
            next.body = body.clone();
            next.edited_at = Some(now.to_string());
            ChangeKind::Edited
        }
        Edit::Delete => {
            next = next.erased();
            ChangeKind::Deleted
        }
        Edit::React(emoji) => {
            let distinct = next.reactions.len();
            match next.reactions.iter_mut().find(|r| &r.emoji == emoji) {
                Some(r) if r.user_ids.iter().any(|u| u == actor) => return Ok(Outcome::Unchanged),
                Some(r) => {
                    r.user_ids.push(actor.to_string());
                    r.count = count(&r.user_ids);
                }
                None if distinct >= MAX_EMOJI => {
                    return Err(ApiError::conflict(
                        "a message holds at most 50 distinct emoji",
                    ))
                }
                None => next.reactions.push(Reaction {
                    emoji: emoji.clone(),
                    count: 1,
                    user_ids: vec![actor.to_string()],
                }),
            }
            ChangeKind::Reaction
        }
        Edit::Unreact(emoji) => {
            let Some(i) = next.reactions.iter().position(|r| &r.emoji == emoji) else {
                return Ok(Outcome::Unchanged);
            };
            let r = &mut next.reactions[i];
            let before = r.user_ids.len();
            r.user_ids.retain(|u| u != actor);
            if r.user_ids.len() == before {
                return Ok(Outcome::Unchanged);
            }
            r.count = count(&r.user_ids);
            if r.user_ids.is_empty() {
                next.reactions.remove(i);
            }
            ChangeKind::Reaction
        }
    };
    next.version = 0;
    Ok(Outcome::Changed(kind, Box::new(next)))
}

fn count(user_ids: &[String]) -> u32 {
    u32::try_from(user_ids.len()).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use dyschat_protocol::ErrorCode;

    fn message() -> StoredMessage {
        StoredMessage::sent(
            "r".into(),
            "m".into(),
            "c".into(),
            "ann".into(),
            "ann".into(),
            "hello".into(),
            "2026-01-01T00:00:00Z".into(),
        )
    }

    fn changed(outcome: Outcome) -> (ChangeKind, StoredMessage) {
        match outcome {
            Outcome::Changed(kind, state) => (kind, *state),
            Outcome::Unchanged => panic!("expected a change"),
        }
    }

    #[test]
    fn only_the_sender_edits_and_the_edit_is_dated() {
        let edit = Edit::Body("hi".into());
        let (kind, state) = changed(apply(&message(), &edit, "ann", "T1").unwrap());
        assert_eq!((kind, state.body.as_str()), (ChangeKind::Edited, "hi"));
        assert_eq!(state.edited_at.as_deref(), Some("T1"));
        let e = apply(&message(), &edit, "bob", "T1").unwrap_err();
        assert_eq!(e.code, ErrorCode::Forbidden);
    }

    #[test]
    fn reactions_count_each_user_once_and_leave_at_zero() {
        let react = Edit::React("👍".into());
        let (_, one) = changed(apply(&message(), &react, "bob", "T").unwrap());
        assert_eq!(one.reactions[0].count, 1);
        assert_eq!(apply(&one, &react, "bob", "T").unwrap(), Outcome::Unchanged);
        let (_, two) = changed(apply(&one, &react, "cat", "T").unwrap());
        assert_eq!(two.reactions[0].user_ids, ["bob", "cat"]);
        assert_eq!(two.reactions[0].count, 2);
        let unreact = Edit::Unreact("👍".into());
        let (_, back) = changed(apply(&two, &unreact, "bob", "T").unwrap());
        assert_eq!(back.reactions[0].count, 1);
        let (_, none) = changed(apply(&back, &unreact, "cat", "T").unwrap());
        assert!(none.reactions.is_empty());
        assert_eq!(
            apply(&none, &unreact, "cat", "T").unwrap(),
            Outcome::Unchanged
        );
    }

    #[test]
    fn at_most_fifty_emoji() {
        let mut state = message();
        for i in 0..MAX_EMOJI {
            let (_, next) =
                changed(apply(&state, &Edit::React(format!("e{i}")), "bob", "T").unwrap());
            state = next;
        }
        let e = apply(&state, &Edit::React("one-more".into()), "bob", "T").unwrap_err();
        assert_eq!(e.code, ErrorCode::Conflict);
        // An emoji already there still takes more users.
        assert!(apply(&state, &Edit::React("e0".into()), "cat", "T").is_ok());
    }

    #[test]
    fn a_deleted_message_takes_no_more_changes() {
        let (kind, deleted) = changed(apply(&message(), &Edit::Delete, "ann", "T").unwrap());
        assert_eq!(kind, ChangeKind::Deleted);
        assert!(deleted.deleted && deleted.body.is_empty());
        for edit in [
            Edit::Body("x".into()),
            Edit::React("👍".into()),
            Edit::Delete,
        ] {
            let e = apply(&deleted, &edit, "ann", "T").unwrap_err();
            assert_eq!(e.code, ErrorCode::Conflict);
        }
    }

    #[test]
    fn emoji_are_checked() {
        assert!(Edit::React("👍".into()).validate().is_ok());
        for bad in ["", "a b", "x\u{7}", &"x".repeat(33)] {
            let e = Edit::React(bad.to_string()).validate().unwrap_err();
            assert_eq!(e.code, ErrorCode::BadRequest, "{bad:?}");
        }
        assert!(Edit::Body("   ".into()).validate().is_err());
    }
}
