//! Room history, sending and read markers over HTTP. A post takes the same path as a WebSocket
//! `send` ([`crate::core::Core::send`]) and answers the whole Message; a read the same path as a
//! WebSocket `read` ([`crate::core::Core::read`]).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use dyschat_protocol::{
    wire::{ErrorBody, Message, MessagePage, PostMessageBody, ReadBody, ReadReply},
    ApiError,
};
use dyschat_runtime::history::PageQuery;
use serde::Deserialize;
use tracing::Instrument;
use utoipa::IntoParams;

use super::{room_path, AppState};
use crate::core::{page_limit, send_span, Outgoing, Reply};
use crate::http::error::HttpResult;
use crate::http::extract::{AuthUser, JsonBody, Query};

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct PageParams {
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
        (status = 403, body = ErrorBody, description = "forbidden: not a member, or banned (a private room: not_found)"), (status = 404, body = ErrorBody, description = "not_found: no such room, or a private room to an outsider")))]
pub(crate) async fn messages(
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
    let room_id = room_path(room_id)?;
    Ok(Json(
        state.core.history(&user, &room_id, query, limit).await?,
    ))
}

#[utoipa::path(post, path = "/api/v1/rooms/{room_id}/messages", tag = "messages", summary = "Send a message", security(("bearer" = [])),
    params(("room_id" = String, Path, description = "The room id")), request_body = PostMessageBody,
    responses((status = 201, body = Message, description = "Stored, and delivered live like a WebSocket send"),
        (status = 400, body = ErrorBody, description = "bad_request"), (status = 401, body = ErrorBody, description = "unauthorized"),
        (status = 403, body = ErrorBody, description = "forbidden: not a member, or banned (a private room: not_found)"), (status = 404, body = ErrorBody, description = "not_found: no such room, or a private room to an outsider"),
        (status = 429, body = ErrorBody, description = "rate_limited, with retry_after_ms and Retry-After")))]
pub(crate) async fn post_message(
    State(state): AppState,
    AuthUser(user): AuthUser,
    Path(room_id): Path<String>,
    JsonBody(body): JsonBody<PostMessageBody>,
) -> HttpResult<(StatusCode, Json<Message>)> {
    let room_id = room_path(room_id)?;
    let span = send_span(&room_id);
    let out = Outgoing {
        room_id,
        body: body.body,
        client_msg_id: body.client_msg_id,
        reply_to: body.reply_to,
        attachments: body.attachments.unwrap_or_default(),
    };
    let message = async {
        let pending = state.core.send(&user, out, Reply::Message).await?;
        state.core.confirm(pending).await?.into_message()
    }
    .instrument(span)
    .await?;
    Ok((StatusCode::CREATED, Json(message)))
}

#[utoipa::path(post, path = "/api/v1/rooms/{room_id}/read", tag = "messages", summary = "Move the read marker forward", security(("bearer" = [])),
    params(("room_id" = String, Path, description = "The room id")), request_body = ReadBody,
    responses((status = 200, body = ReadReply, description = "The marker; a lower seq changes nothing and answers the current one. Every socket of the user gets read_marker when it moves"),
        (status = 400, body = ErrorBody, description = "bad_request: seq above the room's last_event_seq (its newest message or change)"), (status = 401, body = ErrorBody, description = "unauthorized"),
        (status = 403, body = ErrorBody, description = "forbidden: not a member, or banned (a private room: not_found)"), (status = 404, body = ErrorBody, description = "not_found: no such room, or a private room to an outsider")))]
pub(crate) async fn read(
    State(state): AppState,
    AuthUser(user): AuthUser,
    Path(room_id): Path<String>,
    JsonBody(body): JsonBody<ReadBody>,
) -> HttpResult<Json<ReadReply>> {
    let room_id = room_path(room_id)?;
    let last_read_seq = state.core.read(&user, &room_id, body.seq, None).await?;
    Ok(Json(ReadReply {
        room_id,
        last_read_seq,
    }))
}
