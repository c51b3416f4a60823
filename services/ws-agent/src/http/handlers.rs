//! Route handlers: extract, call one operation, answer. Every error goes through [`HttpError`].

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use dyschat_protocol::{
    ids, subjects,
    wire::{
        CreateRoomBody, CreateRoomRequest, Credentials, ErrorBody, JoinState, ListRoomsRequest,
        LoginReply, MemberList, Message, MessagePage, PostMessageBody, Room, RoomList, RoomRequest,
        UserView,
    },
    ApiError,
};
use dyschat_runtime::history::PageQuery;
use serde::Deserialize;
use utoipa::IntoParams;

use super::error::HttpResult;
use super::extract::{AuthUser, ClientIp, JsonBody, Query};
use crate::chat::page_limit;
use crate::state::AgentState;

type AppState = State<Arc<AgentState>>;

pub async fn not_found() -> super::HttpError {
    ApiError::not_found("no such route").into()
}

#[utoipa::path(get, path = "/healthz", tag = "operations", summary = "Liveness",
    responses((status = 200, description = "The process runs", body = String, content_type = "text/plain")))]
pub async fn healthz() -> &'static str {
    "ok"
}

#[utoipa::path(get, path = "/readyz", tag = "operations", summary = "Readiness: NATS and Redis answer",
    responses((status = 200, description = "NATS and Redis answer: `{nats: true, redis: true}`"),
        (status = 503, description = "NATS or Redis does not answer; the body says which")))]
pub async fn readyz(State(state): AppState) -> impl IntoResponse {
    let nats_ok = state.nats.connection_state() == async_nats::connection::State::Connected;
    let mut redis = state.chat.redis();
    let redis_ok = tokio::time::timeout(
        std::time::Duration::from_secs(2),
        redis::cmd("PING").query_async::<String>(&mut redis),
    )
    .await
    .is_ok_and(|r| r.is_ok());
    let status = if nats_ok && redis_ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(serde_json::json!({ "nats": nats_ok, "redis": redis_ok })),
    )
}

#[utoipa::path(get, path = "/metrics", tag = "operations", summary = "Prometheus metrics",
    responses((status = 200, description = "Prometheus text exposition", body = String, content_type = "text/plain")))]
pub async fn metrics(State(state): AppState) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
}

#[utoipa::path(post, path = "/api/v1/auth/register", tag = "auth", summary = "Register a user", request_body = Credentials,
    responses((status = 201, body = UserView, description = "Registered"), (status = 400, body = ErrorBody, description = "bad_request"),
        (status = 409, body = ErrorBody, description = "username_taken"), (status = 429, body = ErrorBody, description = "rate_limited")))]
pub async fn register(
    State(state): AppState,
    ClientIp(peer): ClientIp,
    JsonBody(body): JsonBody<Credentials>,
) -> HttpResult<(StatusCode, Json<UserView>)> {
    state.limits.check_login(peer, Instant::now())?;
    let user: UserView = state.auth(subjects::auth::REGISTER_SUBJECT, &body).await?;
    Ok((StatusCode::CREATED, Json(user)))
}

/// Attempts are limited per client address here and failed ones per username in auth, so
/// neither many names from one address nor one name from many addresses can be guessed quickly.
#[utoipa::path(post, path = "/api/v1/auth/login", tag = "auth", summary = "Log in for a Bearer token", request_body = Credentials,
    responses((status = 200, body = LoginReply, description = "A Bearer token"), (status = 400, body = ErrorBody, description = "bad_request"),
        (status = 401, body = ErrorBody, description = "unauthorized"), (status = 429, body = ErrorBody, description = "rate_limited")))]
pub async fn login(
    State(state): AppState,
    ClientIp(peer): ClientIp,
    JsonBody(body): JsonBody<Credentials>,
) -> HttpResult<Json<LoginReply>> {
    state.limits.check_login(peer, Instant::now())?;
    Ok(Json(
        state.auth(subjects::auth::LOGIN_SUBJECT, &body).await?,
    ))
}

#[utoipa::path(get, path = "/api/v1/me", tag = "auth", summary = "The caller", security(("bearer" = [])),
    responses((status = 200, body = UserView, description = "The caller"), (status = 401, body = ErrorBody, description = "unauthorized")))]
pub async fn me(AuthUser(user): AuthUser) -> Json<UserView> {
    Json(UserView {
        user_id: user.user_id,
        username: user.username,
    })
}

#[utoipa::path(post, path = "/api/v1/rooms", tag = "rooms", summary = "Create a room", security(("bearer" = [])), request_body = CreateRoomBody,
    responses((status = 201, body = Room, description = "Created; the creator is a member"),
        (status = 400, body = ErrorBody, description = "bad_request"), (status = 401, body = ErrorBody, description = "unauthorized")))]
pub async fn create_room(
    State(state): AppState,
    AuthUser(user): AuthUser,
    JsonBody(body): JsonBody<CreateRoomBody>,
) -> HttpResult<(StatusCode, Json<Room>)> {
    ids::validate_room_name(&body.name)?;
    let topic = body.topic.unwrap_or_default();
    ids::validate_topic(&topic)?;
    let room: Room = state
        .rooms(
            subjects::rooms::CREATE,
            &CreateRoomRequest {
                owner_id: user.user_id,
                owner_name: user.username,
                name: body.name,
                topic,
            },
        )
        .await?;
    Ok((StatusCode::CREATED, Json(room)))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Page size, 1..100 (default 50).
    limit: Option<i64>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/rooms", tag = "rooms", summary = "List rooms", security(("bearer" = [])), params(ListParams),
    responses((status = 200, body = RoomList, description = "Every room (rooms are public), paged"),
        (status = 400, body = ErrorBody, description = "bad_request"), (status = 401, body = ErrorBody, description = "unauthorized")))]
pub async fn list_rooms(
    State(state): AppState,
    AuthUser(_): AuthUser,
    Query(params): Query<ListParams>,
) -> HttpResult<Json<RoomList>> {
    let limit = page_limit(params.limit)?;
    let cursor = params.cursor.filter(|c| !c.is_empty());
    if let Some(cursor) = &cursor {
        ids::validate_id("cursor", cursor)?;
    }
    Ok(Json(
        state
            .rooms(subjects::rooms::LIST, &ListRoomsRequest { limit, cursor })
            .await?,
    ))
}

fn room_path(room_id: &str) -> Result<RoomRequest, ApiError> {
    if ids::is_valid_id(room_id) {
        Ok(RoomRequest {
            room_id: room_id.to_string(),
        })
    } else {
        Err(ApiError::not_found("room not found"))
    }
}

#[utoipa::path(get, path = "/api/v1/rooms/{room_id}", tag = "rooms", summary = "Get a room", security(("bearer" = [])), params(("room_id" = String, Path, description = "The room id")),
    responses((status = 200, body = Room, description = "The room"), (status = 401, body = ErrorBody, description = "unauthorized"),
        (status = 404, body = ErrorBody, description = "not_found")))]
pub async fn get_room(
    State(state): AppState,
    AuthUser(_): AuthUser,
    Path(room_id): Path<String>,
) -> HttpResult<Json<Room>> {
    Ok(Json(
        state
            .rooms(subjects::rooms::GET, &room_path(&room_id)?)
            .await?,
    ))
}

#[utoipa::path(post, path = "/api/v1/rooms/{room_id}/join", tag = "rooms", summary = "Join a room", security(("bearer" = [])), params(("room_id" = String, Path, description = "The room id")),
    responses((status = 200, body = JoinState, description = "A member (idempotent)"), (status = 401, body = ErrorBody, description = "unauthorized"),
        (status = 404, body = ErrorBody, description = "not_found")))]
pub async fn join_room(
    State(state): AppState,
    AuthUser(user): AuthUser,
    Path(room_id): Path<String>,
) -> HttpResult<Json<JoinState>> {
    let reply = state.set_membership(&room_id, &user, true).await?;
    Ok(Json(JoinState {
        room_id: reply.room_id,
        joined: true,
    }))
}

#[utoipa::path(post, path = "/api/v1/rooms/{room_id}/leave", tag = "rooms", summary = "Leave a room", security(("bearer" = [])), params(("room_id" = String, Path, description = "The room id")),
    responses((status = 200, body = JoinState, description = "Not a member (idempotent)"), (status = 401, body = ErrorBody, description = "unauthorized"),
        (status = 404, body = ErrorBody, description = "not_found")))]
pub async fn leave_room(
    State(state): AppState,
    AuthUser(user): AuthUser,
    Path(room_id): Path<String>,
) -> HttpResult<Json<JoinState>> {
    let reply = state.set_membership(&room_id, &user, false).await?;
    Ok(Json(JoinState {
        room_id: reply.room_id,
        joined: false,
    }))
}

#[utoipa::path(get, path = "/api/v1/rooms/{room_id}/members", tag = "rooms", summary = "Members and who is online", security(("bearer" = [])), params(("room_id" = String, Path, description = "The room id")),
    responses((status = 200, body = MemberList, description = "Members and whether each is online"),
        (status = 401, body = ErrorBody, description = "unauthorized"), (status = 403, body = ErrorBody, description = "forbidden: not a member"),
        (status = 404, body = ErrorBody, description = "not_found")))]
pub async fn members(
    State(state): AppState,
    AuthUser(user): AuthUser,
    Path(room_id): Path<String>,
) -> HttpResult<Json<MemberList>> {
    room_path(&room_id)?;
    let members = state.members(&room_id).await?;
    if !members.iter().any(|m| m.user_id == user.user_id) {
        state.require_member(&room_id, &user.user_id).await?;
    }
    Ok(Json(MemberList {
        members,
        next_cursor: None,
    }))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageParams {
    /// The newest `limit` messages with `seq` below this.
    before: Option<u64>,
    /// The oldest `limit` messages with `seq` above this (not with `before`).
    after: Option<u64>,
    /// Page size, 1..100 (default 50).
    limit: Option<i64>,
}

#[utoipa::path(get, path = "/api/v1/rooms/{room_id}/messages", tag = "messages", summary = "A page of history", security(("bearer" = [])),
    params(("room_id" = String, Path, description = "The room id"), PageParams),
    responses((status = 200, body = MessagePage, description = "Oldest first; by default the newest 50"),
        (status = 400, body = ErrorBody, description = "bad_request"), (status = 401, body = ErrorBody, description = "unauthorized"),
        (status = 403, body = ErrorBody, description = "forbidden: not a member"), (status = 404, body = ErrorBody, description = "not_found")))]
pub async fn messages(
    State(state): AppState,
    AuthUser(user): AuthUser,
    Path(room_id): Path<String>,
    Query(params): Query<PageParams>,
) -> HttpResult<Json<MessagePage>> {
    let limit = page_limit(params.limit)?;
    let query = match (params.before, params.after) {
        (Some(_), Some(_)) => {
            return Err(ApiError::bad_request("give before or after, not both").into())
        }
        (before, None) => PageQuery::Before(before),
        (None, Some(after)) => PageQuery::After(after),
    };
    state.require_member(&room_id, &user.user_id).await?;
    Ok(Json(state.chat.history(&room_id, query, limit).await?))
}

#[utoipa::path(post, path = "/api/v1/rooms/{room_id}/messages", tag = "messages", summary = "Send a message", security(("bearer" = [])),
    params(("room_id" = String, Path, description = "The room id")), request_body = PostMessageBody,
    responses((status = 201, body = Message, description = "Stored, and delivered live like a WebSocket send"),
        (status = 400, body = ErrorBody, description = "bad_request"), (status = 401, body = ErrorBody, description = "unauthorized"),
        (status = 403, body = ErrorBody, description = "forbidden: not a member"), (status = 404, body = ErrorBody, description = "not_found"),
        (status = 429, body = ErrorBody, description = "rate_limited, with retry_after_ms and Retry-After")))]
pub async fn post_message(
    State(state): AppState,
    AuthUser(user): AuthUser,
    Path(room_id): Path<String>,
    JsonBody(body): JsonBody<PostMessageBody>,
) -> HttpResult<(StatusCode, Json<Message>)> {
    let message = state
        .post_message(&user, &room_id, body.body, body.client_msg_id)
        .await?;
    Ok((StatusCode::CREATED, Json(message)))
}
