//! Route handlers: extract, call one operation, answer. Every error goes through [`HttpError`].

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use dyschat_shared::{
    history::PageQuery,
    ids, subjects,
    wire::{
        CreateRoomBody, CreateRoomRequest, Credentials, JoinState, ListRoomsRequest, LoginReply,
        MemberList, MessagePage, PostMessageBody, Room, RoomList, RoomRequest, UserView,
    },
    ApiError,
};
use serde::Deserialize;

use super::error::HttpResult;
use super::extract::{AuthUser, ClientIp, JsonBody, Query};
use crate::chat::page_limit;
use crate::state::AgentState;

type AppState = State<Arc<AgentState>>;

pub async fn not_found() -> super::HttpError {
    ApiError::not_found("no such route").into()
}

pub async fn healthz() -> &'static str {
    "ok"
}

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

pub async fn metrics(State(state): AppState) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
}

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

pub async fn me(AuthUser(user): AuthUser) -> Json<UserView> {
    Json(UserView {
        user_id: user.user_id,
        username: user.username,
    })
}

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

#[derive(Deserialize)]
pub struct ListParams {
    limit: Option<i64>,
    cursor: Option<String>,
}

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

pub async fn members(
    State(state): AppState,
    AuthUser(user): AuthUser,
    Path(room_id): Path<String>,
) -> HttpResult<Json<MemberList>> {
    room_path(&room_id)?;
    let members = state.members(&room_id).await?;
    if !members.iter().any(|m| m.user_id == user.user_id) {
        return Err(ApiError::forbidden("you are not a member of this room").into());
    }
    Ok(Json(MemberList { members }))
}

#[derive(Deserialize)]
pub struct PageParams {
    before: Option<u64>,
    after: Option<u64>,
    limit: Option<i64>,
}

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

pub async fn post_message(
    State(state): AppState,
    AuthUser(user): AuthUser,
    Path(room_id): Path<String>,
    JsonBody(body): JsonBody<PostMessageBody>,
) -> HttpResult<(StatusCode, Json<dyschat_shared::wire::Message>)> {
    let message = state
        .post_message(&user, &room_id, body.body, body.client_msg_id)
        .await?;
    Ok((StatusCode::CREATED, Json(message)))
}
