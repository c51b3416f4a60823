//! Running a room and one's own list of rooms (contract sections 5 and 6): the HTTP bodies and
//! answers, and the rooms service requests they become (ws-agent adds who is asking).
//!
//! Naming: in a request about another user, `actor_id` is who asks and `user_id` the user acted
//! on, so a reply's `user_id` is the request's; in a request about oneself, `user_id` is who asks.

use serde::{Deserialize, Serialize};

use crate::policy::Visibility;
use crate::wire::{Message, Role, Room, UserView};

// ---- HTTP bodies ----

/// `PATCH /api/v1/rooms/{room_id}`: only the fields given change.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UpdateRoomBody {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub topic: Option<String>,
    #[serde(default)]
    pub visibility: Option<Visibility>,
}

/// `{user_id}`: the body of `POST .../invites`, `POST .../owner` and `POST /api/v1/dms`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UserIdBody {
    pub user_id: String,
}

/// `{role}` of `PUT .../members/{user_id}/role`: `moderator` or `member` (`owner` is 400).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RoleBody {
    pub role: Role,
}

/// `{reason?}` of a kick or a ban.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReasonBody {
    #[serde(default)]
    pub reason: Option<String>,
}

// ---- answers ----

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RoomDeleted {
    pub room_id: String,
    pub deleted: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct InviteState {
    pub room_id: String,
    pub user_id: String,
    pub invited: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RoleState {
    pub room_id: String,
    pub user_id: String,
    pub role: Role,
}

/// The answer to a kick: `{room_id, user_id, joined: false}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MemberState {
    pub room_id: String,
    pub user_id: String,
    pub joined: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BanState {
    pub room_id: String,
    pub user_id: String,
    pub banned: bool,
}

/// One ban: who, by whom (a user id), why (`""` when no reason was given), when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Ban {
    pub user_id: String,
    pub username: String,
    pub by: String,
    #[serde(default)]
    pub reason: String,
    pub at: String,
}

/// `{bans}` (the contract), plus `next_cursor` (`null` on the last page) for rooms with more
/// bans than one page.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BanList {
    pub bans: Vec<Ban>,
    #[serde(default)]
    pub next_cursor: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BlockState {
    pub user_id: String,
    pub blocked: bool,
}

/// `{users}` of `GET /api/v1/me/blocks` (and of `GET /api/v1/users`), plus `next_cursor` where
/// a listing has more than one page (`null` on the last).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UserList {
    pub users: Vec<UserView>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// One room of the user's, as the rooms service knows it: the Room, the user's role and when
/// they joined, and for a direct room the other member. ws-agent makes the contract's
/// RoomSummary of it (adding `last_seq`, `unread`, `last_message`, the peer's `online`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MyRoom {
    pub room: Room,
    pub role: Role,
    pub joined_at: String,
    #[serde(default)]
    pub peer: Option<UserView>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MyRoomList {
    pub rooms: Vec<MyRoom>,
    /// The `cursor` of the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

/// The other member of a direct room, and whether they are online.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Peer {
    pub user_id: String,
    pub username: String,
    pub online: bool,
}

/// One room of `GET /api/v1/me/rooms`: the Room, the user's role and read state, the room's
/// newest message, and for a direct room the other member. The Room is given both ways a client
/// may read "the Room, plus ...": its fields at the top level, and whole as `room`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RoomSummary {
    #[serde(flatten)]
    pub fields: Room,
    pub room: Room,
    pub role: Role,
    /// The room's newest `seq` (0 for an empty room).
    pub last_seq: u64,
    /// The user's read marker: the `seq` they read up to (0 when they never read the room).
    pub last_read_seq: u64,
    /// Messages of others with `seq > last_read_seq`.
    pub unread: u64,
    /// Of those, the ones mentioning the user (0 until mentions exist).
    pub mentions: u64,
    pub last_message: Option<Message>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer: Option<Peer>,
}

/// `{rooms}` of `GET /api/v1/me/rooms`, most recent activity first.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RoomSummaryList {
    pub rooms: Vec<RoomSummary>,
}

// ---- requests to the rooms service ----

/// PATCH: `user_id` asks (owner or moderator).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UpdateRoomRequest {
    pub room_id: String,
    pub user_id: String,
    #[serde(flatten)]
    pub changes: UpdateRoomBody,
}

/// `actor_id` acts on `user_id`: invite, uninvite, unban, pass ownership.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TargetRequest {
    pub room_id: String,
    pub actor_id: String,
    pub user_id: String,
}

/// `actor_id` kicks or bans `user_id`, with a reason (`""`: none; at most 500 characters).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ModerateRequest {
    pub room_id: String,
    pub actor_id: String,
    pub user_id: String,
    #[serde(default)]
    pub reason: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SetRoleRequest {
    pub room_id: String,
    pub actor_id: String,
    pub user_id: String,
    pub role: Role,
}

/// A page of a listing about one user or one room: `limit` 0 is the default page.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PageRequest {
    /// The room listed (bans); empty for a listing of the user's own (rooms, blocks).
    #[serde(default)]
    pub room_id: String,
    /// Who asks.
    pub user_id: String,
    #[serde(default)]
    pub limit: usize,
    #[serde(default)]
    pub cursor: Option<String>,
}

impl PageRequest {
    /// The page size when none is asked for, and the largest one.
    pub const DEFAULT_LIMIT: usize = 500;
    pub const MAX_LIMIT: usize = 1000;
}

/// `user_id` (named `username`) opens the direct room with `peer_id`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OpenDmRequest {
    pub user_id: String,
    pub username: String,
    pub peer_id: String,
}

/// `actor_id` blocks or unblocks `user_id`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BlockRequest {
    pub actor_id: String,
    pub user_id: String,
}

// ---- requests to the auth service ----

/// `GET /api/v1/users?q=&limit=`: `q` 1 to 32 characters, `limit` 1..=50 (0: 20).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UserSearchRequest {
    pub q: String,
    #[serde(default)]
    pub limit: usize,
}

impl UserSearchRequest {
    pub const DEFAULT_LIMIT: usize = 20;
    pub const MAX_LIMIT: usize = 50;
    pub const MAX_QUERY_CHARS: usize = 32;
}

/// One user by id.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UserRequest {
    pub user_id: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_patch_request_is_the_body_plus_who_asks() {
        let req = UpdateRoomRequest {
            room_id: "r".into(),
            user_id: "u".into(),
            changes: UpdateRoomBody {
                topic: Some("t".into()),
                ..Default::default()
            },
        };
        let json = serde_json::to_value(&req).unwrap();
        assert_eq!(json["topic"], "t");
        assert!(json["name"].is_null());
        let back: UpdateRoomRequest =
            serde_json::from_str(r#"{"room_id":"r","user_id":"u","visibility":"private"}"#)
                .unwrap();
        assert_eq!(back.changes.visibility, Some(Visibility::Private));
        assert!(back.changes.name.is_none());
    }

    #[test]
    fn roles_outside_the_contract_do_not_decode() {
        assert!(serde_json::from_str::<RoleBody>(r#"{"role":"admin"}"#).is_err());
        let owner: RoleBody = serde_json::from_str(r#"{"role":"owner"}"#).unwrap();
        assert_eq!(owner.role, Role::Owner, "decodes; the service answers 400");
    }
}
