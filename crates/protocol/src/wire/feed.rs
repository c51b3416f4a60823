//! Each user's feed, read receipts and the mention lookup (contract section 8).
//!
//! A notification is stored once in the `DYSCHAT_FEED` stream as a [`StoredNotification`] on
//! the user's subject; its `notification_id` is the stream sequence it got, and `read` follows
//! from the user's feed marker, so neither is part of the stored bytes: the agents make the
//! contract's [`Notification`] of it when they list or deliver it.

use serde::{Deserialize, Serialize};

use crate::wire::UserView;

/// Why a user is told about something. At most one per message and user: the first kind that
/// applies, in the order of this enum (an invitation has no message).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum NotificationKind {
    /// The message mentions the user.
    Mention,
    /// The message answers one of the user's.
    Reply,
    /// A message from the peer of a direct room.
    Dm,
    /// The user was invited to a room (`seq` is 0).
    Invite,
}

/// The characters of a message body a notification shows at most.
pub const PREVIEW_CHARS: usize = 140;

/// A notification as the feed stream stores it (subject `dyschat.feed.<user_id>`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredNotification {
    pub kind: NotificationKind,
    pub room_id: String,
    /// The message's `seq`, 0 for an invitation.
    pub seq: u64,
    pub from: UserView,
    /// The start of the message body (at most [`PREVIEW_CHARS`]), or the room's name for an
    /// invitation.
    pub preview: String,
    pub created_at: String,
}

impl StoredNotification {
    /// The contract's notification: `notification_id` is the feed stream's sequence, `read`
    /// whether it is at or below the user's feed marker.
    pub fn view(self, notification_id: u64, marker: u64) -> Notification {
        Notification {
            notification_id: notification_id.to_string(),
            kind: self.kind,
            room_id: self.room_id,
            seq: self.seq,
            from: self.from,
            preview: self.preview,
            created_at: self.created_at,
            read: notification_id <= marker,
        }
    }
}

/// The notifications one message made (`dyschat.notified.<room_id>.<seq>` in the feed stream):
/// their `notification_id`s, which a deletion of the message (or of its room) erases.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notified {
    pub ids: Vec<u64>,
}

/// The first [`PREVIEW_CHARS`] characters of `body`.
pub fn preview(body: &str) -> String {
    body.chars().take(PREVIEW_CHARS).collect()
}

/// One entry of a user's feed (`notification` frame, `GET /api/v1/me/notifications`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Notification {
    /// Increasing with time across the user's feed (a decimal string).
    pub notification_id: String,
    pub kind: NotificationKind,
    pub room_id: String,
    pub seq: u64,
    pub from: UserView,
    pub preview: String,
    pub created_at: String,
    pub read: bool,
}

/// `GET /api/v1/me/notifications`: newest first.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NotificationList {
    pub notifications: Vec<Notification>,
    /// The `before` of the next (older) page; `null` on the last page.
    pub next_cursor: Option<String>,
}

/// `POST /api/v1/me/notifications/read`: marks `up_to` and every older notification read.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NotificationsReadBody {
    /// A `notification_id`.
    pub up_to: String,
}

/// The answer to marking notifications read: the user's marker after it (it never moves back)
/// and how many stay unread.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NotificationsRead {
    pub up_to: String,
    pub unread_notifications: u64,
}

/// `GET /api/v1/me`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MeReply {
    pub user_id: String,
    pub username: String,
    /// Notifications newer than the user's feed marker.
    pub unread_notifications: u64,
}

/// Published by an agent on `dyschat.events.receipt.<room_id>` after it moved a member's read
/// marker in a room of at most [`RECEIPT_ROOM_LIMIT`] members: every agent sends the room's
/// other subscribed members `receipt {room_id, user_id, seq}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReceiptEvent {
    pub room_id: String,
    pub user_id: String,
    pub seq: u64,
}

/// Rooms with more members than this send no receipts and list none.
pub const RECEIPT_ROOM_LIMIT: usize = 100;

/// One member's read marker (`GET /api/v1/rooms/{room_id}/receipts`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Receipt {
    pub user_id: String,
    pub username: String,
    pub last_read_seq: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReceiptList {
    pub receipts: Vec<Receipt>,
}

/// Auth's `users_by_name`: the users with exactly these usernames, ignoring case.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UsersByNameRequest {
    /// At most [`crate::mentions::MAX_CANDIDATES`].
    pub names: Vec<String>,
}

/// Rooms' `mentions`: which of `names` (lower-cased usernames, at most
/// [`crate::mentions::MAX_CANDIDATES`]) are members of the room.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MentionsRequest {
    pub room_id: String,
    pub names: Vec<String>,
}

/// The members' user ids, in the order of the request's `names`, each once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MentionsReply {
    pub user_ids: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stored_notification_becomes_the_contracts() {
        let stored = StoredNotification {
            kind: NotificationKind::Mention,
            room_id: "r".into(),
            seq: 4,
            from: UserView {
                user_id: "u".into(),
                username: "al".into(),
            },
            preview: preview(&"é".repeat(500)),
            created_at: "2026-11-23T00:00:00.000Z".into(),
        };
        assert_eq!(stored.preview.chars().count(), PREVIEW_CHARS);
        let json = serde_json::to_value(stored.clone().view(12, 12)).unwrap();
        assert_eq!(json["notification_id"], "12");
        assert_eq!(json["kind"], "mention");
        assert_eq!(json["read"], true);
        assert!(!stored.view(13, 12).read);
    }
}
