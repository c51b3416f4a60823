//! Route handlers: extract, call the core (or pass a request on to auth or rooms), answer. Every
//! error goes through [`HttpError`](super::HttpError).

use std::sync::Arc;

use axum::extract::State;
use dyschat_protocol::{ids, ApiError};

use crate::state::AgentState;

pub(super) mod auth;
pub(super) mod changes;
pub(super) mod feed;
pub(super) mod files;
pub(super) mod manage;
pub(super) mod me;
pub(super) mod messages;
pub(super) mod ops;
pub(super) mod rooms;
pub(super) mod search;

type AppState = State<Arc<AgentState>>;

pub(super) async fn not_found() -> super::HttpError {
    ApiError::not_found("no such route").into()
}

/// A room id from the path: one that cannot be an id names no room (404 on every room route).
fn room_path(room_id: String) -> Result<String, ApiError> {
    if ids::is_valid_id(&room_id) {
        Ok(room_id)
    } else {
        Err(ApiError::not_found("room not found"))
    }
}
