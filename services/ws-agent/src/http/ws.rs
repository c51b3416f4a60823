//! `GET /ws`: the WebSocket upgrade. A token in the query is checked before upgrading (401 JSON
//! error otherwise); without one the socket must send an `auth` frame.

use std::sync::Arc;

use axum::extract::{ws::WebSocketUpgrade, State};
use axum::response::Response;
use futures::StreamExt;
use serde::Deserialize;

use super::error::HttpResult;
use super::extract::Query;
use crate::state::AgentState;

/// The largest message the WebSocket layer buffers; frames between the contract's 64 KiB and
/// this are read and refused with 1009 by the session, bigger ones fail in the layer itself.
const LAYER_MAX_MESSAGE: usize = 1024 * 1024;

#[derive(Deserialize)]
pub struct WsParams {
    token: Option<String>,
}

pub async fn upgrade(
    State(state): State<Arc<AgentState>>,
    Query(params): Query<WsParams>,
    ws: WebSocketUpgrade,
) -> HttpResult<Response> {
    let user = match params.token.as_deref() {
        Some(token) => Some(state.verify_token(token)?),
        None => None,
    };
    Ok(ws
        .max_message_size(LAYER_MAX_MESSAGE)
        .max_frame_size(LAYER_MAX_MESSAGE)
        .write_buffer_size(0)
        .on_upgrade(move |socket| async move {
            let (writer, reader) = socket.split();
            crate::session::run(state, reader, writer, user).await;
        }))
}
