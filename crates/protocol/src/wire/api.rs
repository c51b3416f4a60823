//! HTTP bodies of the contract, which are also the request and reply payloads of the auth and
//! rooms services over NATS.

use serde::{Deserialize, Serialize};

use crate::error::ApiError;
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

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CreateRoomBody {
    pub name: String,
    #[serde(default)]
    pub topic: Option<String>,
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
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MemberList {
    pub members: Vec<Member>,
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
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RoomRequest {
    pub room_id: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ListRoomsRequest {
    pub limit: usize,
    pub cursor: Option<String>,
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
