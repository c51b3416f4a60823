//! HTTP bodies of the contract, which are also the request and reply payloads of the auth and
//! rooms services over NATS.

use serde::{Deserialize, Serialize};

use crate::error::ApiError;
use crate::policy::{RoomKind, Standing, Visibility};
use crate::wire::Message;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UserView {
    pub user_id: String,
    pub username: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LoginReply {
    pub token: String,
    pub token_type: String,
    pub expires_at: String,
    pub user_id: String,
    pub username: String,
}

/// The request of auth's `logout` endpoint (NATS only; the HTTP route takes the Bearer token):
/// the token to revoke. Auth verifies it itself, so only a valid token can be revoked, and only
/// by someone who holds it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LogoutRequest {
    pub token: String,
}

/// auth's answer to a `logout`: the token's id and expiry, as stored in the revoked bucket, so
/// the agent that asked refuses the token at once, before its watch of the bucket says so.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revoked {
    pub token_id: String,
    /// Unix seconds.
    pub expires: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CreateRoomBody {
    pub name: String,
    #[serde(default)]
    pub topic: Option<String>,
    /// `public` when not given.
    #[serde(default)]
    pub visibility: Option<Visibility>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Room {
    pub room_id: String,
    pub name: String,
    pub topic: String,
    pub owner_id: String,
    pub created_at: String,
    pub member_count: u64,
    #[serde(default)]
    pub visibility: Visibility,
    #[serde(default)]
    pub kind: RoomKind,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RoomList {
    pub rooms: Vec<Room>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct JoinState {
    pub room_id: String,
    pub joined: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Member {
    pub user_id: String,
    pub username: String,
    pub online: bool,
    pub role: Role,
}

/// A member's role in a room: the creator is the one `owner`; owner > moderator > member.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default,
)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Role {
    #[default]
    Member,
    Moderator,
    Owner,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Member => "member",
            Role::Moderator => "moderator",
            Role::Owner => "owner",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MemberList {
    pub members: Vec<Member>,
    /// The `cursor` of the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MessagePage {
    pub messages: Vec<Message>,
    pub has_more: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PostMessageBody {
    pub body: String,
    #[serde(default)]
    pub client_msg_id: Option<String>,
    /// The `seq` of the message this one answers.
    #[serde(default)]
    pub reply_to: Option<u64>,
    /// Distinct ids of files uploaded to the room that no other message holds, at most 10
    /// (contract section 9); an empty list means none.
    #[serde(default)]
    pub attachments: Option<Vec<String>>,
}

/// `PATCH /api/v1/rooms/{room_id}/messages/{seq}`: the new body.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EditBody {
    pub body: String,
}

/// The answer to `DELETE /api/v1/rooms/{room_id}/messages/{seq}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DeletedReply {
    pub room_id: String,
    pub seq: u64,
    pub deleted: bool,
}

/// `POST /api/v1/rooms/{room_id}/read`: move the read marker forward to `seq`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReadBody {
    pub seq: u64,
}

/// The user's read marker in a room after a `read` (the current one when `seq` was lower).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReadReply {
    pub room_id: String,
    pub last_read_seq: u64,
}

/// `{"error": {...}}`: every HTTP error body.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorBody {
    pub error: ApiError,
}

// ---- requests to the rooms service (ws-agent adds who is asking) ----

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CreateRoomRequest {
    pub owner_id: String,
    pub owner_name: String,
    pub name: String,
    pub topic: String,
    #[serde(default)]
    pub visibility: Visibility,
}

/// A request about one room by one user (get, delete): `user_id` is who asks, and what the
/// room is to them decides the answer (a private room is `not_found` to an outsider). A missing
/// `user_id` is refused (400), never taken for a trusted caller.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RoomRequest {
    pub room_id: String,
    #[serde(default)]
    pub user_id: String,
}

/// One page of the rooms `user_id` may see (public ones, and private ones they are a member of
/// or invited to; never direct or deleted ones), with `q` (case-insensitive substring of the
/// name) when given. One request scans a bounded stretch of the room index: a page may be
/// shorter than `limit` while `next_cursor` is not null; only a null cursor is the end.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ListRoomsRequest {
    pub limit: usize,
    pub cursor: Option<String>,
    #[serde(default)]
    pub q: Option<String>,
    #[serde(default)]
    pub user_id: String,
}

/// One page of a room's members (`limit` 1..=1000, `cursor` from the previous page).
///
/// `limit` 0 or missing means the default page of [`MembersRequest::DEFAULT_LIMIT`], so a caller
/// that sends only `{room_id}` (what a [`RoomRequest`] encodes to) gets the first page.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MembersRequest {
    pub room_id: String,
    #[serde(default)]
    pub limit: usize,
    #[serde(default)]
    pub cursor: Option<String>,
    /// Who asks: members only (policy `Read`).
    #[serde(default)]
    pub user_id: String,
}

impl MembersRequest {
    /// The page size when none is asked for, and the largest one.
    pub const DEFAULT_LIMIT: usize = 1000;
    pub const MAX_LIMIT: usize = 1000;
}

/// Whether a user is a member of a room, and as what. `revision` orders what is known about the
/// pair: an agent keeps the answer until an event with a newer revision changes it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccessRequest {
    pub room_id: String,
    pub user_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Access {
    pub room_id: String,
    pub user_id: String,
    /// The member's role, `None` for a non-member (the same as `standing.role`, kept for the
    /// agents that read only this).
    pub role: Option<Role>,
    /// The revision of the (room, user) key: every change to the user's standing in the room
    /// (join, leave, kick, ban, unban, invitation, role, a block in a direct room) moves it, and
    /// every event about the pair carries the revision it produced.
    pub revision: u64,
    /// Everything [`crate::policy::decide`] needs about the user in the room, read at
    /// `revision` or later: decide every frame and route with it.
    #[serde(default)]
    pub standing: Standing,
    /// The revision of the room record the standing's `visibility` was read from; a
    /// `room_updated` event with a newer one replaces it.
    #[serde(default)]
    pub room_revision: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MembershipRequest {
    pub room_id: String,
    pub user_id: String,
    pub username: String,
}

/// Reply to join and leave: the contract's `{room_id, joined}` plus whether anything changed,
/// which decides whether an event is published.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MembershipReply {
    pub room_id: String,
    pub joined: bool,
    pub changed: bool,
    /// The revision of the member record after the request (see [`Access::revision`]).
    #[serde(default)]
    pub revision: u64,
}

/// Reply of a service request: `{"ok": T}` or `{"error": ApiError}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Reply<T> {
    Ok(T),
    Error(ApiError),
}

impl<T> From<Result<T, ApiError>> for Reply<T> {
    fn from(r: Result<T, ApiError>) -> Self {
        match r {
            Ok(v) => Reply::Ok(v),
            Err(e) => Reply::Error(e),
        }
    }
}

impl<T> From<Reply<T>> for Result<T, ApiError> {
    fn from(r: Reply<T>) -> Self {
        match r {
            Reply::Ok(v) => Ok(v),
            Reply::Error(e) => Err(e),
        }
    }
}
