//! The HTTP edge: routes of the contract, thin handlers over the domain core
//! ([`crate::core`]) and [`AgentState`].

mod assets;
mod error;
mod extract;
mod handlers;
pub(crate) mod openapi;
pub mod origin;
pub(crate) mod server;
mod trace;
mod ws;

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::Router;
use utoipa::OpenApi;
use utoipa_axum::{router::OpenApiRouter, routes};

pub(crate) use error::HttpError;

use crate::state::AgentState;

/// The largest HTTP body accepted.
pub(crate) const MAX_BODY_BYTES: usize = 64 * 1024;

/// The route of an HTTP post, which is a send (it takes from the send budget, not the request
/// budget).
pub(crate) const POST_MESSAGE_ROUTE: &str = "/api/v1/rooms/{room_id}/messages";

/// Every route the agent serves, each with its OpenAPI operation: the one table from which both
/// the router ([`app`]) and `/openapi.json` are built, so neither lists a route the other lacks.
/// Handlers sharing a path go in one `routes!`.
pub(crate) fn routes() -> OpenApiRouter<Arc<AgentState>> {
    OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .routes(routes!(assets::index))
        .routes(routes!(assets::asset))
        .routes(routes!(assets::docs))
        .routes(routes!(openapi::openapi_json))
        .routes(routes!(handlers::ops::healthz))
        .routes(routes!(handlers::ops::readyz))
        .routes(routes!(handlers::ops::metrics))
        .routes(routes!(ws::upgrade))
        .routes(routes!(handlers::auth::register))
        .routes(routes!(handlers::auth::login))
        .routes(routes!(handlers::auth::logout))
        .routes(routes!(handlers::auth::me))
        .routes(routes!(
            handlers::rooms::create_room,
            handlers::rooms::list_rooms
        ))
        .routes(routes!(
            handlers::rooms::get_room,
            handlers::manage::update_room,
            handlers::manage::delete_room
        ))
        .routes(routes!(handlers::rooms::join_room))
        .routes(routes!(handlers::rooms::leave_room))
        .routes(routes!(handlers::rooms::members))
        .routes(routes!(handlers::manage::invite))
        .routes(routes!(handlers::manage::uninvite))
        .routes(routes!(handlers::manage::set_role))
        .routes(routes!(handlers::manage::transfer_owner))
        .routes(routes!(handlers::manage::kick))
        .routes(routes!(handlers::manage::ban, handlers::manage::unban))
        .routes(routes!(handlers::manage::bans))
        .routes(routes!(handlers::me::my_rooms))
        .routes(routes!(handlers::me::open_dm))
        .routes(routes!(handlers::me::block, handlers::me::unblock))
        .routes(routes!(handlers::me::blocks))
        .routes(routes!(handlers::me::search_users))
        .routes(routes!(
            handlers::messages::messages,
            handlers::messages::post_message
        ))
        .routes(routes!(handlers::messages::read))
        .routes(routes!(handlers::changes::edit, handlers::changes::delete))
        .routes(routes!(
            handlers::changes::react,
            handlers::changes::unreact
        ))
        .routes(routes!(handlers::feed::notifications))
        .routes(routes!(handlers::feed::read_notifications))
        .routes(routes!(handlers::feed::receipts))
        .routes(routes!(handlers::files::upload))
        .routes(routes!(handlers::files::download))
        .routes(routes!(handlers::search::search_messages))
}

/// The agent's router; tests drive it with `oneshot` or serve it on port 0.
pub(crate) fn app(state: Arc<AgentState>) -> Router {
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
