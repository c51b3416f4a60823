//! Who is told about a message, and why: the contract's rule as a pure function.
//!
//! At most one notification per (message, user), of the first kind that applies in the order
//! mention, reply, dm; never the sender. Whether a recipient is still a member and does not
//! block the sender is checked after this, against the store.

use dyschat_protocol::wire::{NotificationKind, StoredMessage};

/// Every mention, the replied-to sender and the direct room's peer, each once.
pub(crate) const MAX_RECIPIENTS: usize = dyschat_protocol::mentions::MAX_MENTIONS + 2;

/// The users `message` notifies and the kind of each, in that order. `direct_peer` is the other
/// member of a direct room (`None` in any other room).
pub(crate) fn recipients(
    message: &StoredMessage,
    direct_peer: Option<&str>,
) -> Vec<(String, NotificationKind)> {
    let sender = message.sender_id.as_str();
    let mut out: Vec<(String, NotificationKind)> = Vec::new();
    let mut add = |user: &str, kind| {
        if user != sender && !out.iter().any(|(u, _)| u == user) && out.len() < MAX_RECIPIENTS {
            out.push((user.to_string(), kind));
        }
    };
    for user in message
        .mentions
        .iter()
        .take(dyschat_protocol::mentions::MAX_MENTIONS)
    {
        add(user, NotificationKind::Mention);
    }
    if message.reply_to.is_some() {
        if let Some(parent_sender) = &message.reply_to_sender {
            add(parent_sender, NotificationKind::Reply);
        }
    }
    if let Some(peer) = direct_peer {
        add(peer, NotificationKind::Dm);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use NotificationKind::*;

    fn message(mentions: &[&str], reply_to_sender: Option<&str>) -> StoredMessage {
        let mut m = StoredMessage::sent(
            "r".into(),
            "m".into(),
            "c".into(),
            "al".into(),
            "Al".into(),
            "hi".into(),
            "2026-11-23T00:00:00.000Z".into(),
        );
        m.mentions = mentions.iter().map(|s| s.to_string()).collect();
        m.reply_to = reply_to_sender.map(|_| 1);
        m.reply_to_sender = reply_to_sender.map(str::to_string);
        m
    }

    fn of(v: Vec<(String, NotificationKind)>) -> Vec<(&'static str, NotificationKind)> {
        v.into_iter()
            .map(|(u, k)| (&*Box::leak(u.into_boxed_str()), k))
            .collect()
    }

    #[test]
    fn the_first_kind_that_applies_wins() {
        // Bob is mentioned and replied to: one mention.
        assert_eq!(
            of(recipients(&message(&["bob", "cy"], Some("bob")), None)),
            [("bob", Mention), ("cy", Mention)]
        );
        assert_eq!(
            of(recipients(&message(&[], Some("bob")), Some("bob"))),
            [("bob", Reply)]
        );
        assert_eq!(
            of(recipients(&message(&[], None), Some("bob"))),
            [("bob", Dm)]
        );
        assert_eq!(
            of(recipients(&message(&["cy"], Some("dee")), Some("bob"))),
            [("cy", Mention), ("dee", Reply), ("bob", Dm)]
        );
    }

    #[test]
    fn nobody_is_told_of_their_own_message() {
        assert!(recipients(&message(&["al"], Some("al")), None).is_empty());
        assert!(recipients(&message(&[], None), None).is_empty());
    }

    #[test]
    fn a_reply_without_a_parent_sender_tells_nobody() {
        let mut m = message(&[], None);
        m.reply_to = Some(3);
        assert!(recipients(&m, None).is_empty());
    }
}
