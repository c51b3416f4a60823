//! Rooms and membership. Create, get and list pass on to the rooms service (which decides them:
//! a private room is `not_found` to outsiders); join, leave and the member list go through the
//! core, which keeps the agent's standing cache in step and decides the member list with it.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use dyschat_protocol::{
    ids, subjects,
    wire::{
        CreateRoomBody, CreateRoomRequest, ErrorBody, JoinState, ListRoomsRequest, MemberList,
        Room, RoomList, RoomRequest,
    },
};
use serde::Deserialize;
use utoipa::IntoParams;

use super::{room_path, AppState};
use crate::core::page_limit;
use crate::http::error::HttpResult;
use crate::http::extract::{AuthUser, JsonBody, Query};

#[utoipa::path(post, path = "/api/v1/rooms", tag = "rooms", summary = "Create a room", security(("bearer" = [])), request_body = CreateRoomBody,
    responses((status = 201, body = Room, description = "Created; the creator is its owner"),
        (status = 400, body = ErrorBody, description = "bad_request"), (status = 401, body = ErrorBody, description = "unauthorized"),
        (status = 429, body = ErrorBody, description = "rate_limited: the user owns or joined as many rooms as allowed")))]
pub(crate) async fn create_room(
    State(state): AppState,
    AuthUser(user): AuthUser,
    JsonBody(body): JsonBody<CreateRoomBody>,
) -> HttpResult<(StatusCode, Json<Room>)> {
    ids::validate_room_name(&body.name)?;
    let topic = body.topic.unwrap_or_default();
    ids::validate_topic(&topic)?;
    let room: Room = state
        .services
        .rooms(
            subjects::rooms::CREATE,
            &CreateRoomRequest {
                owner_id: user.user_id,
                owner_name: user.username,
                name: body.name,
                topic,
                visibility: body.visibility.unwrap_or_default(),
            },
        )
        .await?;
    Ok((StatusCode::CREATED, Json(room)))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct ListParams {
    /// Page size, 1..100 (default 50).
    limit: Option<i64>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
    /// Only rooms whose name holds this, ignoring case.
    q: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/rooms", tag = "rooms", summary = "List rooms", security(("bearer" = [])), params(ListParams),
    responses((status = 200, body = RoomList, description = "Public rooms, and the private ones the user is a member of or invited to (never direct rooms), paged; a page may be short while `next_cursor` is not null"),
        (status = 400, body = ErrorBody, description = "bad_request"), (status = 401, body = ErrorBody, description = "unauthorized")))]
pub(crate) async fn list_rooms(
    State(state): AppState,
    AuthUser(user): AuthUser,
    Query(params): Query<ListParams>,
) -> HttpResult<Json<RoomList>> {
    let limit = page_limit(params.limit)?;
    let cursor = params.cursor.filter(|c| !c.is_empty());
    if let Some(cursor) = &cursor {
        ids::validate_id("cursor", cursor)?;
    }
    Ok(Json(
        state
            .services
            .rooms(
                subjects::rooms::LIST,
                &ListRoomsRequest {
                    limit,
                    cursor,
                    q: params.q,
                    user_id: user.user_id,
                },
            )
            .await?,
    ))
}

#[utoipa::path(get, path = "/api/v1/rooms/{room_id}", tag = "rooms", summary = "Get a room", security(("bearer" = [])), params(("room_id" = String, Path, description = "The room id")),
    responses((status = 200, body = Room, description = "The room"), (status = 401, body = ErrorBody, description = "unauthorized"),
        (status = 404, body = ErrorBody, description = "not_found")))]
pub(crate) async fn get_room(
    State(state): AppState,
    AuthUser(user): AuthUser,
    Path(room_id): Path<String>,
) -> HttpResult<Json<Room>> {
    let room_id = room_path(room_id)?;
    let request = RoomRequest {
        room_id,
        user_id: user.user_id,
    };
    Ok(Json(
        state.services.rooms(subjects::rooms::GET, &request).await?,
    ))
}

#[utoipa::path(post, path = "/api/v1/rooms/{room_id}/join", tag = "rooms", summary = "Join a room", security(("bearer" = [])), params(("room_id" = String, Path, description = "The room id")),
    responses((status = 200, body = JoinState, description = "A member (idempotent); joining a private room uses the invitation up"), (status = 401, body = ErrorBody, description = "unauthorized"),
        (status = 403, body = ErrorBody, description = "forbidden: banned, or a direct room"),
        (status = 404, body = ErrorBody, description = "not_found (also a private room without an invitation)"),
        (status = 429, body = ErrorBody, description = "rate_limited: as many rooms joined as allowed")))]
pub(crate) async fn join_room(
    State(state): AppState,
    AuthUser(user): AuthUser,
    Path(room_id): Path<String>,
) -> HttpResult<Json<JoinState>> {
    let room_id = room_path(room_id)?;
    let reply = state.core.set_membership(&user, &room_id, true).await?;
    Ok(Json(JoinState {
        room_id: reply.room_id,
        joined: true,
    }))
}

#[utoipa::path(post, path = "/api/v1/rooms/{room_id}/leave", tag = "rooms", summary = "Leave a room", security(("bearer" = [])), params(("room_id" = String, Path, description = "The room id")),
    responses((status = 200, body = JoinState, description = "Not a member (idempotent)"), (status = 401, body = ErrorBody, description = "unauthorized"),
        (status = 403, body = ErrorBody, description = "forbidden: a direct room"), (status = 404, body = ErrorBody, description = "not_found"),
        (status = 409, body = ErrorBody, description = "conflict: the owner cannot leave")))]
pub(crate) async fn leave_room(
    State(state): AppState,
    AuthUser(user): AuthUser,
    Path(room_id): Path<String>,
) -> HttpResult<Json<JoinState>> {
    let room_id = room_path(room_id)?;
    let reply = state.core.set_membership(&user, &room_id, false).await?;
    Ok(Json(JoinState {
        room_id: reply.room_id,
        joined: false,
    }))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct MemberParams {
    /// Page size, 1..1000 (default 1000).
    limit: Option<i64>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/rooms/{room_id}/members", tag = "rooms", summary = "Members and who is online, paged", security(("bearer" = [])),
    params(("room_id" = String, Path, description = "The room id"), MemberParams),
    responses((status = 200, body = MemberList, description = "A page of members and whether each is online; `next_cursor` is null on the last page"),
        (status = 400, body = ErrorBody, description = "bad_request: a bad limit or cursor"),
        (status = 401, body = ErrorBody, description = "unauthorized"), (status = 403, body = ErrorBody, description = "forbidden: not a member, or banned"),
        (status = 404, body = ErrorBody, description = "not_found")))]
pub(crate) async fn members(
    State(state): AppState,
    AuthUser(user): AuthUser,
    Path(room_id): Path<String>,
    Query(params): Query<MemberParams>,
) -> HttpResult<Json<MemberList>> {
    let room_id = room_path(room_id)?;
    Ok(Json(
        state
            .core
            .members(&user, &room_id, params.limit, params.cursor)
            .await?,
    ))
}
