//! Message search over HTTP: a thin edge over [`crate::core::Core::search_messages`].

use axum::Json;
use dyschat_protocol::wire::{ErrorBody, SearchResults};
use serde::Deserialize;
use utoipa::IntoParams;

use super::AppState;
use crate::core::SearchQuery;
use crate::http::error::HttpResult;
use crate::http::extract::{AuthUser, Query};
use axum::extract::State;

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct SearchParams {
    /// The words to find, all of them, as whole words (ignoring case and diacritics); at most
    /// 256 characters and 16 words.
    q: Option<String>,
    /// Only this room (which the user must be able to read).
    room_id: Option<String>,
    /// Page size, 1..50 (default 20).
    limit: Option<i64>,
    /// A previous page's `next_cursor`.
    before: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/search/messages", tag = "messages", summary = "Search messages", security(("bearer" = [])),
    params(SearchParams),
    responses((status = 200, body = SearchResults, description = "Messages holding every word of q, in the rooms the user is a member of now, newest first by sent_at; edited ones by their current text, never a deleted one"),
        (status = 400, body = ErrorBody, description = "bad_request: a blank or too long q, a bad limit or cursor"), (status = 401, body = ErrorBody, description = "unauthorized"),
        (status = 403, body = ErrorBody, description = "forbidden: room_id names a public room the user is not a member of"), (status = 404, body = ErrorBody, description = "not_found: room_id names no room, or a private room to an outsider"),
        (status = 429, body = ErrorBody, description = "rate_limited"), (status = 503, body = ErrorBody, description = "unavailable: search is not answering, try again")))]
pub(crate) async fn search_messages(
    State(state): AppState,
    AuthUser(user): AuthUser,
    Query(params): Query<SearchParams>,
) -> HttpResult<Json<SearchResults>> {
    let query = SearchQuery {
        q: params.q,
        room_id: params.room_id,
        limit: params.limit,
        before: params.before,
    };
    Ok(Json(state.core.search_messages(&user, query).await?))
}
