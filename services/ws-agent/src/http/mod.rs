//! The HTTP edge: routes of the contract, thin handlers over [`AgentState`].

mod assets;
mod error;
mod extract;
mod handlers;
pub mod origin;
pub mod trace;
mod ws;

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::Router;

pub use error::{HttpError, HttpResult};

use crate::state::AgentState;

/// The largest HTTP body accepted.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// The agent's router; tests drive it with `oneshot` or serve it on port 0.
pub fn app(state: Arc<AgentState>) -> Router {
    let cors = origin::cors(&state.config);
    let router = Router::new()
        .route("/", get(assets::index))
        .route("/assets/{*path}", get(assets::asset))
        .route("/docs", get(assets::docs))
        .route("/healthz", get(handlers::healthz))
        .route("/readyz", get(handlers::readyz))
        .route("/metrics", get(handlers::metrics))
        .route("/ws", get(ws::upgrade))
        .route("/api/v1/auth/register", post(handlers::register))
        .route("/api/v1/auth/login", post(handlers::login))
        .route("/api/v1/me", get(handlers::me))
        .route(
            "/api/v1/rooms",
            post(handlers::create_room).get(handlers::list_rooms),
        )
        .route("/api/v1/rooms/{room_id}", get(handlers::get_room))
        .route("/api/v1/rooms/{room_id}/join", post(handlers::join_room))
        .route("/api/v1/rooms/{room_id}/leave", post(handlers::leave_room))
        .route("/api/v1/rooms/{room_id}/members", get(handlers::members))
        .route(
            "/api/v1/rooms/{room_id}/messages",
            get(handlers::messages).post(handlers::post_message),
        )
        // Route layer: runs after routing, so the span and labels see the route template.
        .route_layer(axum::middleware::from_fn(trace::traced))
        .fallback(handlers::not_found)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES));
    let router = match cors {
        Some(cors) => router.layer(cors),
        None => router,
    };
    router.with_state(state)
}
