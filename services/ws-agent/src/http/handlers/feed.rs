//! Each user's feed and a room's read receipts (contract section 8): thin handlers over the
//! core ([`crate::core::feed`], `core/receipts.rs`).

use axum::extract::{Path, State};
use axum::Json;
use dyschat_protocol::wire::{
    ErrorBody, NotificationList, NotificationsRead, NotificationsReadBody, ReceiptList,
};
use serde::Deserialize;
use utoipa::IntoParams;

use super::{room_path, AppState};
use crate::http::error::HttpResult;
use crate::http::extract::{AuthUser, JsonBody, Query};

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct FeedParams {
    /// A `notification_id` (e.g. the previous page's `next_cursor`): only older ones.
    before: Option<String>,
    /// Page size, 1..100 (default 50).
    limit: Option<i64>,
}

#[utoipa::path(get, path = "/api/v1/me/notifications", tag = "me", summary = "My notifications, newest first", security(("bearer" = [])),
    params(FeedParams),
    responses((status = 200, body = NotificationList, description = "Mentions, replies, direct messages and invitations; `next_cursor` is null on the last page"),
        (status = 400, body = ErrorBody, description = "bad_request: limit or before"), (status = 401, body = ErrorBody, description = "unauthorized"),
        (status = 503, body = ErrorBody, description = "unavailable: try again")))]
pub(crate) async fn notifications(
    State(state): AppState,
    AuthUser(user): AuthUser,
    Query(params): Query<FeedParams>,
) -> HttpResult<Json<NotificationList>> {
    Ok(Json(
        state
            .core
            .notifications(&user, params.before, params.limit)
            .await?,
    ))
}

#[utoipa::path(post, path = "/api/v1/me/notifications/read", tag = "me", summary = "Mark notifications read", security(("bearer" = [])),
    request_body = NotificationsReadBody,
    responses((status = 200, body = NotificationsRead, description = "`up_to` and every older notification are read; the marker never moves back"),
        (status = 400, body = ErrorBody, description = "bad_request: not a notification_id, or above the newest"), (status = 401, body = ErrorBody, description = "unauthorized"),
        (status = 503, body = ErrorBody, description = "unavailable: try again")))]
pub(crate) async fn read_notifications(
    State(state): AppState,
    AuthUser(user): AuthUser,
    JsonBody(body): JsonBody<NotificationsReadBody>,
) -> HttpResult<Json<NotificationsRead>> {
    Ok(Json(
        state.core.read_notifications(&user, &body.up_to).await?,
    ))
}

#[utoipa::path(get, path = "/api/v1/rooms/{room_id}/receipts", tag = "rooms", summary = "How far each member read (rooms of at most 100 members)", security(("bearer" = [])),
    params(("room_id" = String, Path, description = "The room id")),
    responses((status = 200, body = ReceiptList, description = "Every member's read marker; empty in a room of more than 100 members"),
        (status = 401, body = ErrorBody, description = "unauthorized"),
        (status = 403, body = ErrorBody, description = "forbidden: not a member, or banned (a private room: not_found)"), (status = 404, body = ErrorBody, description = "not_found: no such room, or a private room to an outsider")))]
pub(crate) async fn receipts(
    State(state): AppState,
    AuthUser(user): AuthUser,
    Path(room_id): Path<String>,
) -> HttpResult<Json<ReceiptList>> {
    let room_id = room_path(room_id)?;
    Ok(Json(state.core.receipts(&user, &room_id).await?))
}
