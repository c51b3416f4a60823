//! The HTTP edge: routes of the contract, thin handlers over [`AgentState`].

mod assets;
mod error;
mod extract;
mod handlers;
pub mod openapi;
pub mod origin;
pub mod trace;
mod ws;

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::Router;
use utoipa::OpenApi;
use utoipa_axum::{router::OpenApiRouter, routes};

pub use error::{HttpError, HttpResult};

use crate::state::AgentState;

/// The largest HTTP body accepted.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Every route the agent serves, each with its OpenAPI operation: the one table from which both
/// the router ([`app`]) and `/openapi.json` are built, so neither lists a route the other lacks.
/// Handlers sharing a path go in one `routes!`.
pub fn routes() -> OpenApiRouter<Arc<AgentState>> {
    OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .routes(routes!(assets::index))
        .routes(routes!(assets::asset))
        .routes(routes!(assets::docs))
        .routes(routes!(openapi::openapi_json))
        .routes(routes!(handlers::healthz))
        .routes(routes!(handlers::readyz))
        .routes(routes!(handlers::metrics))
        .routes(routes!(ws::upgrade))
        .routes(routes!(handlers::register))
        .routes(routes!(handlers::login))
        .routes(routes!(handlers::me))
        .routes(routes!(handlers::create_room, handlers::list_rooms))
        .routes(routes!(handlers::get_room))
        .routes(routes!(handlers::join_room))
        .routes(routes!(handlers::leave_room))
        .routes(routes!(handlers::members))
        .routes(routes!(handlers::messages, handlers::post_message))
}

/// The agent's router; tests drive it with `oneshot` or serve it on port 0.
pub fn app(state: Arc<AgentState>) -> Router {
    let cors = origin::cors(&state.config);
    let (router, _) = routes().split_for_parts();
    let router = router
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
