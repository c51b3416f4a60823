//! Running a room (contract section 5): settings, deletion, invitations, roles, ownership, kicks
//! and bans. Each handler only passes the request on to the rooms service, which decides it with
//! the caller's standing (`policy::decide`) and answers in the contract's terms (404 hides a
//! private room, 403, 409, 429); the agents' caches follow from its events and evictions.

use axum::extract::{Path, State};
use axum::Json;
use dyschat_protocol::{
    ids, subjects,
    wire::{
        BanList, BanState, ErrorBody, InviteState, MemberState, ModerateRequest, PageRequest,
        ReasonBody, RoleBody, RoleState, Room, RoomDeleted, RoomRequest, SetRoleRequest,
        TargetRequest, UpdateRoomBody, UpdateRoomRequest, UserIdBody,
    },
    ApiError,
};

use super::{room_path, AppState};
use crate::http::error::HttpResult;
use crate::http::extract::{AuthUser, JsonBody, MaybeJsonBody};

/// The most pages of bans one answer reads (the contract's answer has no cursor; past this,
/// `next_cursor` says where to go on).
const MAX_BAN_PAGES: usize = 10;

/// A user id from the path or a body: one that cannot be an id names nobody (400).
fn user_id(field: &str, user_id: String) -> Result<String, ApiError> {
    ids::validate_id(field, &user_id)?;
    Ok(user_id)
}

#[utoipa::path(patch, path = "/api/v1/rooms/{room_id}", tag = "rooms", summary = "Change a room's name, topic or visibility (owner, moderator)", security(("bearer" = [])),
    params(("room_id" = String, Path, description = "The room id")), request_body = UpdateRoomBody,
    responses((status = 200, body = Room, description = "The room after the change; subscribed sockets get `room_updated`"),
        (status = 400, body = ErrorBody, description = "bad_request"), (status = 401, body = ErrorBody, description = "unauthorized"),
        (status = 403, body = ErrorBody, description = "forbidden"), (status = 404, body = ErrorBody, description = "not_found")))]
pub(crate) async fn update_room(
    State(state): AppState,
    AuthUser(user): AuthUser,
    Path(room_id): Path<String>,
    JsonBody(changes): JsonBody<UpdateRoomBody>,
) -> HttpResult<Json<Room>> {
    let request = UpdateRoomRequest {
        room_id: room_path(room_id)?,
        user_id: user.user_id,
        changes,
    };
    Ok(Json(
        state
            .services
            .rooms(subjects::rooms::UPDATE, &request)
            .await?,
    ))
}

#[utoipa::path(delete, path = "/api/v1/rooms/{room_id}", tag = "rooms", summary = "Delete a room (owner)", security(("bearer" = [])),
    params(("room_id" = String, Path, description = "The room id")),
    responses((status = 200, body = RoomDeleted, description = "Deleted: its sockets got `room_deleted`, its messages are gone"),
        (status = 401, body = ErrorBody, description = "unauthorized"), (status = 403, body = ErrorBody, description = "forbidden"),
        (status = 404, body = ErrorBody, description = "not_found")))]
pub(crate) async fn delete_room(
    State(state): AppState,
    AuthUser(user): AuthUser,
    Path(room_id): Path<String>,
) -> HttpResult<Json<RoomDeleted>> {
    let request = RoomRequest {
        room_id: room_path(room_id)?,
        user_id: user.user_id,
    };
    Ok(Json(
        state
            .services
            .rooms(subjects::rooms::DELETE, &request)
            .await?,
    ))
}

#[utoipa::path(post, path = "/api/v1/rooms/{room_id}/invites", tag = "rooms", summary = "Invite a user (owner, moderator)", security(("bearer" = [])),
    params(("room_id" = String, Path, description = "The room id")), request_body = UserIdBody,
    responses((status = 200, body = InviteState, description = "Invited"),
        (status = 400, body = ErrorBody, description = "bad_request"), (status = 401, body = ErrorBody, description = "unauthorized"),
        (status = 403, body = ErrorBody, description = "forbidden"), (status = 404, body = ErrorBody, description = "not_found: the room or the user")))]
pub(crate) async fn invite(
    State(state): AppState,
    AuthUser(user): AuthUser,
    Path(room_id): Path<String>,
    JsonBody(body): JsonBody<UserIdBody>,
) -> HttpResult<Json<InviteState>> {
    let request = about_member(room_id, user.user_id, body.user_id)?;
    Ok(Json(
        state
            .services
            .rooms(subjects::rooms::INVITE, &request)
            .await?,
    ))
}

#[utoipa::path(delete, path = "/api/v1/rooms/{room_id}/invites/{user_id}", tag = "rooms", summary = "Take an invitation back (owner, moderator)", security(("bearer" = [])),
    params(("room_id" = String, Path, description = "The room id"), ("user_id" = String, Path, description = "The invited user")),
    responses((status = 200, body = InviteState, description = "Not invited (idempotent)"),
        (status = 400, body = ErrorBody, description = "bad_request"), (status = 401, body = ErrorBody, description = "unauthorized"),
        (status = 403, body = ErrorBody, description = "forbidden"), (status = 404, body = ErrorBody, description = "not_found")))]
pub(crate) async fn uninvite(
    State(state): AppState,
    AuthUser(user): AuthUser,
    Path((room_id, target)): Path<(String, String)>,
) -> HttpResult<Json<InviteState>> {
    let request = about_member(room_id, user.user_id, target)?;
    Ok(Json(
        state
            .services
            .rooms(subjects::rooms::UNINVITE, &request)
            .await?,
    ))
}

#[utoipa::path(put, path = "/api/v1/rooms/{room_id}/members/{user_id}/role", tag = "rooms", summary = "Set a member's role (owner)", security(("bearer" = [])),
    params(("room_id" = String, Path, description = "The room id"), ("user_id" = String, Path, description = "The member")), request_body = RoleBody,
    responses((status = 200, body = RoleState, description = "The role; subscribed sockets get `member_role`"),
        (status = 400, body = ErrorBody, description = "bad_request: not `moderator` or `member`, or not a member"), (status = 401, body = ErrorBody, description = "unauthorized"),
        (status = 403, body = ErrorBody, description = "forbidden"), (status = 404, body = ErrorBody, description = "not_found")))]
pub(crate) async fn set_role(
    State(state): AppState,
    AuthUser(user): AuthUser,
    Path((room_id, target)): Path<(String, String)>,
    JsonBody(body): JsonBody<RoleBody>,
) -> HttpResult<Json<RoleState>> {
    let request = SetRoleRequest {
        room_id: room_path(room_id)?,
        actor_id: user.user_id,
        user_id: user_id("user_id", target)?,
        role: body.role,
    };
    Ok(Json(
        state
            .services
            .rooms(subjects::rooms::SET_ROLE, &request)
            .await?,
    ))
}

#[utoipa::path(post, path = "/api/v1/rooms/{room_id}/owner", tag = "rooms", summary = "Pass ownership to a member (owner)", security(("bearer" = [])),
    params(("room_id" = String, Path, description = "The room id")), request_body = UserIdBody,
    responses((status = 200, body = Room, description = "The room; the old owner is a moderator"),
        (status = 400, body = ErrorBody, description = "bad_request: not a member"), (status = 401, body = ErrorBody, description = "unauthorized"),
        (status = 403, body = ErrorBody, description = "forbidden"), (status = 404, body = ErrorBody, description = "not_found"),
        (status = 429, body = ErrorBody, description = "rate_limited: the new owner owns too many rooms")))]
pub(crate) async fn transfer_owner(
    State(state): AppState,
    AuthUser(user): AuthUser,
    Path(room_id): Path<String>,
    JsonBody(body): JsonBody<UserIdBody>,
) -> HttpResult<Json<Room>> {
    let request = about_member(room_id, user.user_id, body.user_id)?;
    Ok(Json(
        state
            .services
            .rooms(subjects::rooms::TRANSFER_OWNER, &request)
            .await?,
    ))
}

/// A request of `actor_id` about the member `user_id` of a room, both ids checked.
fn about_member(
    room_id: String,
    actor_id: String,
    target: String,
) -> Result<TargetRequest, ApiError> {
    Ok(TargetRequest {
        room_id: room_path(room_id)?,
        actor_id,
        user_id: user_id("user_id", target)?,
    })
}

fn moderate(
    room_id: String,
    actor_id: String,
    target: String,
    body: ReasonBody,
) -> Result<ModerateRequest, ApiError> {
    Ok(ModerateRequest {
        room_id: room_path(room_id)?,
        actor_id,
        user_id: user_id("user_id", target)?,
        reason: body.reason.unwrap_or_default(),
    })
}

#[utoipa::path(post, path = "/api/v1/rooms/{room_id}/members/{user_id}/kick", tag = "rooms", summary = "Kick a member (a higher role)", security(("bearer" = [])),
    params(("room_id" = String, Path, description = "The room id"), ("user_id" = String, Path, description = "The member")), request_body = ReasonBody,
    responses((status = 200, body = MemberState, description = "Not a member; the user's sockets got `kicked` and nothing more of the room"),
        (status = 400, body = ErrorBody, description = "bad_request"), (status = 401, body = ErrorBody, description = "unauthorized"),
        (status = 403, body = ErrorBody, description = "forbidden"), (status = 404, body = ErrorBody, description = "not_found")))]
pub(crate) async fn kick(
    State(state): AppState,
    AuthUser(user): AuthUser,
    Path((room_id, target)): Path<(String, String)>,
    MaybeJsonBody(body): MaybeJsonBody<ReasonBody>,
) -> HttpResult<Json<MemberState>> {
    let request = moderate(room_id, user.user_id, target, body)?;
    Ok(Json(
        state
            .services
            .rooms(subjects::rooms::KICK, &request)
            .await?,
    ))
}

#[utoipa::path(put, path = "/api/v1/rooms/{room_id}/bans/{user_id}", tag = "rooms", summary = "Ban a user (a higher role)", security(("bearer" = [])),
    params(("room_id" = String, Path, description = "The room id"), ("user_id" = String, Path, description = "The user")), request_body = ReasonBody,
    responses((status = 200, body = BanState, description = "Banned; a member's sockets got `kicked` and nothing more of the room"),
        (status = 400, body = ErrorBody, description = "bad_request"), (status = 401, body = ErrorBody, description = "unauthorized"),
        (status = 403, body = ErrorBody, description = "forbidden"), (status = 404, body = ErrorBody, description = "not_found")))]
pub(crate) async fn ban(
    State(state): AppState,
    AuthUser(user): AuthUser,
    Path((room_id, target)): Path<(String, String)>,
    MaybeJsonBody(body): MaybeJsonBody<ReasonBody>,
) -> HttpResult<Json<BanState>> {
    let request = moderate(room_id, user.user_id, target, body)?;
    Ok(Json(
        state.services.rooms(subjects::rooms::BAN, &request).await?,
    ))
}

#[utoipa::path(delete, path = "/api/v1/rooms/{room_id}/bans/{user_id}", tag = "rooms", summary = "Lift a ban (owner, moderator)", security(("bearer" = [])),
    params(("room_id" = String, Path, description = "The room id"), ("user_id" = String, Path, description = "The user")),
    responses((status = 200, body = BanState, description = "Not banned (idempotent)"),
        (status = 400, body = ErrorBody, description = "bad_request"), (status = 401, body = ErrorBody, description = "unauthorized"),
        (status = 403, body = ErrorBody, description = "forbidden"), (status = 404, body = ErrorBody, description = "not_found")))]
pub(crate) async fn unban(
    State(state): AppState,
    AuthUser(user): AuthUser,
    Path((room_id, target)): Path<(String, String)>,
) -> HttpResult<Json<BanState>> {
    let request = about_member(room_id, user.user_id, target)?;
    Ok(Json(
        state
            .services
            .rooms(subjects::rooms::UNBAN, &request)
            .await?,
    ))
}

#[utoipa::path(get, path = "/api/v1/rooms/{room_id}/bans", tag = "rooms", summary = "The room's bans (owner, moderator)", security(("bearer" = [])),
    params(("room_id" = String, Path, description = "The room id")),
    responses((status = 200, body = BanList, description = "Every ban (`next_cursor` is null unless there are more than 10,000)"),
        (status = 401, body = ErrorBody, description = "unauthorized"), (status = 403, body = ErrorBody, description = "forbidden"),
        (status = 404, body = ErrorBody, description = "not_found")))]
pub(crate) async fn bans(
    State(state): AppState,
    AuthUser(user): AuthUser,
    Path(room_id): Path<String>,
) -> HttpResult<Json<BanList>> {
    let room_id = room_path(room_id)?;
    let mut all = BanList {
        bans: Vec::new(),
        next_cursor: None,
    };
    for _ in 0..MAX_BAN_PAGES {
        let request = PageRequest {
            room_id: room_id.clone(),
            user_id: user.user_id.clone(),
            limit: PageRequest::MAX_LIMIT,
            cursor: all.next_cursor.take(),
        };
        let page: BanList = state
            .services
            .rooms(subjects::rooms::BANS, &request)
            .await?;
        all.bans.extend(page.bans);
        all.next_cursor = page.next_cursor;
        if all.next_cursor.is_none() {
            break;
        }
    }
    Ok(Json(all))
}
