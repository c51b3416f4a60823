//! Edits, deletions and reactions over HTTP: the same core change as the WebSocket frames
//! ([`crate::core::Core::change`]), answered with the message's new state.

use axum::extract::{Path, State};
use axum::Json;
use dyschat_protocol::{
    wire::{DeletedReply, EditBody, ErrorBody, Message},
    ApiError,
};

use super::{room_path, AppState};
use crate::core::Edit;
use crate::http::error::HttpResult;
use crate::http::extract::{AuthUser, JsonBody};

/// A message's `seq` from the path: anything but a number names no message.
fn seq_path(seq: &str) -> Result<u64, ApiError> {
    seq.parse()
        .map_err(|_| ApiError::not_found("no such message in this room"))
}

async fn change(
    state: &crate::state::AgentState,
    user: &crate::core::User,
    room_id: String,
    seq: &str,
    edit: Edit,
) -> HttpResult<Message> {
    let room_id = room_path(room_id)?;
    let seq = seq_path(seq)?;
    let done = state.core.change(user, &room_id, seq, edit).await?;
    Ok(Message::from_stored(done.state, done.seq, done.prev_seq))
}

#[utoipa::path(patch, path = "/api/v1/rooms/{room_id}/messages/{seq}", tag = "messages", summary = "Edit your own message", security(("bearer" = [])),
    params(("room_id" = String, Path, description = "The room id"), ("seq" = u64, Path, description = "The message's seq")), request_body = EditBody,
    responses((status = 200, body = Message, description = "The message's new state; every subscribed socket gets message_updated"),
        (status = 400, body = ErrorBody, description = "bad_request: the body breaks the send rules"), (status = 401, body = ErrorBody, description = "unauthorized"),
        (status = 403, body = ErrorBody, description = "forbidden: not the sender, not a member, or banned"), (status = 404, body = ErrorBody, description = "not_found: no such room or message"),
        (status = 409, body = ErrorBody, description = "conflict: the message was deleted")))]
pub(crate) async fn edit(
    State(state): AppState,
    AuthUser(user): AuthUser,
    Path((room_id, seq)): Path<(String, String)>,
    JsonBody(body): JsonBody<EditBody>,
) -> HttpResult<Json<Message>> {
    Ok(Json(
        change(&state, &user, room_id, &seq, Edit::Body(body.body)).await?,
    ))
}

#[utoipa::path(delete, path = "/api/v1/rooms/{room_id}/messages/{seq}", tag = "messages", summary = "Delete a message (yours, or one of a lower role's as moderator or owner)", security(("bearer" = [])),
    params(("room_id" = String, Path, description = "The room id"), ("seq" = u64, Path, description = "The message's seq")),
    responses((status = 200, body = DeletedReply, description = "Deleted: its text is gone from history and the stream; it stays as a tombstone"),
        (status = 401, body = ErrorBody, description = "unauthorized"),
        (status = 403, body = ErrorBody, description = "forbidden: not the sender nor of a higher role"), (status = 404, body = ErrorBody, description = "not_found: no such room or message"),
        (status = 409, body = ErrorBody, description = "conflict: already deleted")))]
pub(crate) async fn delete(
    State(state): AppState,
    AuthUser(user): AuthUser,
    Path((room_id, seq)): Path<(String, String)>,
) -> HttpResult<Json<DeletedReply>> {
    let message = change(&state, &user, room_id, &seq, Edit::Delete).await?;
    Ok(Json(DeletedReply {
        room_id: message.room_id,
        seq: message.seq,
        deleted: true,
    }))
}

#[utoipa::path(put, path = "/api/v1/rooms/{room_id}/messages/{seq}/reactions/{emoji}", tag = "messages", summary = "React to a message", security(("bearer" = [])),
    params(("room_id" = String, Path, description = "The room id"), ("seq" = u64, Path, description = "The message's seq"), ("emoji" = String, Path, description = "1 to 32 bytes, no white space or control characters (percent-encoded)")),
    responses((status = 200, body = Message, description = "The message's state; a repeat changes nothing"),
        (status = 400, body = ErrorBody, description = "bad_request: not an emoji the rules allow"), (status = 401, body = ErrorBody, description = "unauthorized"),
        (status = 403, body = ErrorBody, description = "forbidden: not a member, or banned"), (status = 404, body = ErrorBody, description = "not_found: no such room or message"),
        (status = 409, body = ErrorBody, description = "conflict: the message was deleted, or holds 50 distinct emoji")))]
pub(crate) async fn react(
    State(state): AppState,
    AuthUser(user): AuthUser,
    Path((room_id, seq, emoji)): Path<(String, String, String)>,
) -> HttpResult<Json<Message>> {
    Ok(Json(
        change(&state, &user, room_id, &seq, Edit::React(emoji)).await?,
    ))
}

#[utoipa::path(delete, path = "/api/v1/rooms/{room_id}/messages/{seq}/reactions/{emoji}", tag = "messages", summary = "Take back a reaction", security(("bearer" = [])),
    params(("room_id" = String, Path, description = "The room id"), ("seq" = u64, Path, description = "The message's seq"), ("emoji" = String, Path, description = "The emoji (percent-encoded)")),
    responses((status = 200, body = Message, description = "The message's state; taking back a reaction that is not there changes nothing"),
        (status = 400, body = ErrorBody, description = "bad_request"), (status = 401, body = ErrorBody, description = "unauthorized"),
        (status = 403, body = ErrorBody, description = "forbidden: not a member, or banned"), (status = 404, body = ErrorBody, description = "not_found: no such room or message"),
        (status = 409, body = ErrorBody, description = "conflict: the message was deleted")))]
pub(crate) async fn unreact(
    State(state): AppState,
    AuthUser(user): AuthUser,
    Path((room_id, seq, emoji)): Path<(String, String, String)>,
) -> HttpResult<Json<Message>> {
    Ok(Json(
        change(&state, &user, room_id, &seq, Edit::Unreact(emoji)).await?,
    ))
}
