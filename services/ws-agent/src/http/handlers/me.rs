//! The user's own things (contract sections 5, 6 and 9): their rooms with read state, direct
//! rooms, blocks, and the user directory. `GET /api/v1/me/rooms` goes through the core (it adds
//! positions, unread counts and the last message to what rooms knows); the others pass the
//! request on to rooms or auth, which answer in the contract's terms.

use axum::extract::{Path, State};
use axum::Json;
use dyschat_protocol::{
    ids, subjects,
    wire::{
        BlockRequest, BlockState, ErrorBody, OpenDmRequest, PageRequest, Room, RoomSummaryList,
        UserIdBody, UserList, UserSearchRequest,
    },
    ApiError,
};
use serde::Deserialize;
use utoipa::IntoParams;

use super::AppState;
use crate::http::error::HttpResult;
use crate::http::extract::{AuthUser, JsonBody, Query};

/// The most pages of blocks one answer reads.
const MAX_BLOCK_PAGES: usize = 10;

#[utoipa::path(get, path = "/api/v1/me/rooms", tag = "me", summary = "My rooms, most recent activity first", security(("bearer" = [])),
    responses((status = 200, body = RoomSummaryList, description = "Every room the user is a member of, with role, read state, unread count, last message and (direct rooms) the peer"),
        (status = 401, body = ErrorBody, description = "unauthorized"), (status = 503, body = ErrorBody, description = "unavailable: try again")))]
pub(crate) async fn my_rooms(
    State(state): AppState,
    AuthUser(user): AuthUser,
) -> HttpResult<Json<RoomSummaryList>> {
    Ok(Json(state.core.my_rooms(&user).await?))
}

#[utoipa::path(post, path = "/api/v1/dms", tag = "me", summary = "The direct room with a user, created on first use", security(("bearer" = [])),
    request_body = UserIdBody,
    responses((status = 200, body = Room, description = "The direct room of the two users (`kind: direct`)"),
        (status = 400, body = ErrorBody, description = "bad_request: oneself"), (status = 401, body = ErrorBody, description = "unauthorized"),
        (status = 403, body = ErrorBody, description = "forbidden: the user blocks you"), (status = 404, body = ErrorBody, description = "not_found: no such user"),
        (status = 429, body = ErrorBody, description = "rate_limited: too many rooms joined")))]
pub(crate) async fn open_dm(
    State(state): AppState,
    AuthUser(user): AuthUser,
    JsonBody(body): JsonBody<UserIdBody>,
) -> HttpResult<Json<Room>> {
    if !ids::is_valid_id(&body.user_id) {
        return Err(ApiError::not_found("user not found").into());
    }
    let request = OpenDmRequest {
        user_id: user.user_id,
        username: user.username,
        peer_id: body.user_id,
    };
    Ok(Json(
        state
            .services
            .rooms(subjects::rooms::OPEN_DM, &request)
            .await?,
    ))
}

fn block_request(actor_id: String, target: String) -> Result<BlockRequest, ApiError> {
    if !ids::is_valid_id(&target) {
        return Err(ApiError::not_found("user not found"));
    }
    Ok(BlockRequest {
        actor_id,
        user_id: target,
    })
}

#[utoipa::path(put, path = "/api/v1/me/blocks/{user_id}", tag = "me", summary = "Block a user", security(("bearer" = [])),
    params(("user_id" = String, Path, description = "The user to block")),
    responses((status = 200, body = BlockState, description = "Blocked (idempotent)"),
        (status = 400, body = ErrorBody, description = "bad_request: oneself"), (status = 401, body = ErrorBody, description = "unauthorized"),
        (status = 404, body = ErrorBody, description = "not_found: no such user")))]
pub(crate) async fn block(
    State(state): AppState,
    AuthUser(user): AuthUser,
    Path(target): Path<String>,
) -> HttpResult<Json<BlockState>> {
    let request = block_request(user.user_id, target)?;
    Ok(Json(
        state
            .services
            .rooms(subjects::rooms::BLOCK, &request)
            .await?,
    ))
}

#[utoipa::path(delete, path = "/api/v1/me/blocks/{user_id}", tag = "me", summary = "Unblock a user", security(("bearer" = [])),
    params(("user_id" = String, Path, description = "The user to unblock")),
    responses((status = 200, body = BlockState, description = "Not blocked (idempotent)"),
        (status = 400, body = ErrorBody, description = "bad_request"), (status = 401, body = ErrorBody, description = "unauthorized"),
        (status = 404, body = ErrorBody, description = "not_found: no such user")))]
pub(crate) async fn unblock(
    State(state): AppState,
    AuthUser(user): AuthUser,
    Path(target): Path<String>,
) -> HttpResult<Json<BlockState>> {
    let request = block_request(user.user_id, target)?;
    Ok(Json(
        state
            .services
            .rooms(subjects::rooms::UNBLOCK, &request)
            .await?,
    ))
}

#[utoipa::path(get, path = "/api/v1/me/blocks", tag = "me", summary = "The users I block", security(("bearer" = [])),
    responses((status = 200, body = UserList, description = "Every user the caller blocks"),
        (status = 401, body = ErrorBody, description = "unauthorized")))]
pub(crate) async fn blocks(
    State(state): AppState,
    AuthUser(user): AuthUser,
) -> HttpResult<Json<UserList>> {
    let mut all = UserList {
        users: Vec::new(),
        next_cursor: None,
    };
    for _ in 0..MAX_BLOCK_PAGES {
        let request = PageRequest {
            room_id: String::new(),
            user_id: user.user_id.clone(),
            limit: PageRequest::MAX_LIMIT,
            cursor: all.next_cursor.take(),
        };
        let page: UserList = state
            .services
            .rooms(subjects::rooms::BLOCKS, &request)
            .await?;
        all.users.extend(page.users);
        all.next_cursor = page.next_cursor;
        if all.next_cursor.is_none() {
            break;
        }
    }
    Ok(Json(all))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct SearchParams {
    /// The start of the username, 1 to 32 characters, ignoring case.
    q: String,
    /// At most this many users, 1..50 (default 20).
    limit: Option<i64>,
}

#[utoipa::path(get, path = "/api/v1/users", tag = "me", summary = "Find users by the start of their username", security(("bearer" = [])),
    params(SearchParams),
    responses((status = 200, body = UserList, description = "Users whose username starts with `q` (ignoring case), the exact name first"),
        (status = 400, body = ErrorBody, description = "bad_request: a bad q or limit"), (status = 401, body = ErrorBody, description = "unauthorized")))]
pub(crate) async fn search_users(
    State(state): AppState,
    AuthUser(_user): AuthUser,
    Query(params): Query<SearchParams>,
) -> HttpResult<Json<UserList>> {
    let max = UserSearchRequest::MAX_LIMIT as i64;
    let limit = match params.limit {
        None => UserSearchRequest::DEFAULT_LIMIT,
        Some(n) if (1..=max).contains(&n) => n as usize,
        Some(_) => return Err(ApiError::bad_request("limit must be 1 to 50").into()),
    };
    let request = UserSearchRequest { q: params.q, limit };
    Ok(Json(
        state
            .services
            .request(subjects::auth::SEARCH_SUBJECT.to_string(), &request)
            .await?,
    ))
}
