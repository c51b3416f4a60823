//! `GET /ws`: the WebSocket upgrade. Before upgrading, the `Origin` is checked (403), a token in
//! the query is verified (401) and its user's socket count on this agent is checked (429), each
//! answered with the contract's JSON error; without a token the socket must send an `auth` frame.

use std::sync::Arc;

use axum::extract::{ws::WebSocketUpgrade, State};
use axum::http::HeaderMap;
use axum::response::Response;
use dyschat_protocol::wire::ErrorBody;
use futures::StreamExt;
use serde::Deserialize;

use super::error::HttpResult;
use super::extract::Query;
use crate::state::AgentState;

/// The largest message the WebSocket layer buffers: the contract's limit, so nobody (and no
/// socket that has not even authenticated) makes the agent hold more than 64 KiB for a frame;
/// a bigger one fails in the layer with a capacity error, which the session closes with 1009.
const LAYER_MAX_MESSAGE: usize = dyschat_protocol::wire::MAX_FRAME_BYTES;

/// Bytes tungstenite reads from the socket at a time. Its default (128 KiB) is zero-filled on the
/// first read, so every idle socket held 128 KiB resident; client frames are small (a `send` of
/// a 4000-character body fits in 16 KiB) and a bigger frame grows the buffer for itself, so 4 KiB
/// keeps an idle socket well under 16 KiB without more reads for real traffic.
const READ_BUFFER: usize = 4 * 1024;

#[derive(Deserialize)]
pub(crate) struct WsParams {
    token: Option<String>,
}

#[utoipa::path(get, path = "/ws", tag = "websocket", summary = "Open a WebSocket chat session",
    description = "Upgrades to the WebSocket chat protocol (docs/asyncapi.yaml). Without `token`, \
                   send an `auth` frame within 10 seconds.",
    params(("token" = Option<String>, Query, description = "A JWT from login")),
    responses((status = 101, description = "Switching Protocols"),
        (status = 401, body = ErrorBody, description = "unauthorized: bad token"),
        (status = 403, body = ErrorBody, description = "forbidden: Origin not allowed"),
        (status = 429, body = ErrorBody, description = "rate_limited: too many sockets for this user")))]
pub(crate) async fn upgrade(
    State(state): State<Arc<AgentState>>,
    headers: HeaderMap,
    Query(params): Query<WsParams>,
    ws: WebSocketUpgrade,
) -> HttpResult<Response> {
    super::origin::check_ws_origin(&state.config, &headers)?;
    let user = match params.token.as_deref() {
        Some(token) => {
            let user = state.core.authenticate(token).await?;
            state.core.limits.sockets.has_room(&user.user_id)?;
            Some(user)
        }
        None => None,
    };
    Ok(ws
        .max_message_size(LAYER_MAX_MESSAGE)
        .max_frame_size(LAYER_MAX_MESSAGE)
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(0)
        .on_upgrade(move |socket| async move {
            let (writer, reader) = socket.split();
            crate::session::run(state.core.clone(), reader, writer, user).await;
        }))
}
