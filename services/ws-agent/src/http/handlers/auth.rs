//! Accounts and tokens: register and login pass on to the auth service (after the per-address
//! limit), `me` reads the caller's token and unread notifications, logout has auth revoke it.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use dyschat_protocol::{
    subjects,
    wire::{Credentials, ErrorBody, LoginReply, LogoutRequest, MeReply, Revoked, UserView},
};

use super::AppState;
use crate::http::error::HttpResult;
use crate::http::extract::{AuthToken, AuthUser, ClientIp, JsonBody};

#[utoipa::path(post, path = "/api/v1/auth/register", tag = "auth", summary = "Register a user", request_body = Credentials,
    responses((status = 201, body = UserView, description = "Registered"), (status = 400, body = ErrorBody, description = "bad_request"),
        (status = 409, body = ErrorBody, description = "username_taken"), (status = 429, body = ErrorBody, description = "rate_limited")))]
pub(crate) async fn register(
    State(state): AppState,
    ClientIp(peer): ClientIp,
    JsonBody(body): JsonBody<Credentials>,
) -> HttpResult<(StatusCode, Json<UserView>)> {
    state.core.limits.check_login(peer).await?;
    let user: UserView = state
        .services
        .request(subjects::auth::REGISTER_SUBJECT.to_string(), &body)
        .await?;
    Ok((StatusCode::CREATED, Json(user)))
}

/// Attempts are limited per client address here and failed ones per username in auth, so
/// neither many names from one address nor one name from many addresses can be guessed quickly.
#[utoipa::path(post, path = "/api/v1/auth/login", tag = "auth", summary = "Log in for a Bearer token", request_body = Credentials,
    responses((status = 200, body = LoginReply, description = "A Bearer token"), (status = 400, body = ErrorBody, description = "bad_request"),
        (status = 401, body = ErrorBody, description = "unauthorized"), (status = 429, body = ErrorBody, description = "rate_limited")))]
pub(crate) async fn login(
    State(state): AppState,
    ClientIp(peer): ClientIp,
    JsonBody(body): JsonBody<Credentials>,
) -> HttpResult<Json<LoginReply>> {
    state.core.limits.check_login(peer).await?;
    Ok(Json(
        state
            .services
            .request(subjects::auth::LOGIN_SUBJECT.to_string(), &body)
            .await?,
    ))
}

#[utoipa::path(get, path = "/api/v1/me", tag = "auth", summary = "The caller", security(("bearer" = [])),
    responses((status = 200, body = MeReply, description = "The caller, and how many of their notifications are unread"), (status = 401, body = ErrorBody, description = "unauthorized"),
        (status = 503, body = ErrorBody, description = "unavailable: try again")))]
pub(crate) async fn me(
    State(state): AppState,
    AuthUser(user): AuthUser,
) -> HttpResult<Json<MeReply>> {
    let unread_notifications = state.core.unread_notifications(&user).await?;
    Ok(Json(MeReply {
        user_id: user.user_id,
        username: user.username,
        unread_notifications,
    }))
}

/// Auth writes the revocation to the bucket every agent watches; this agent holds it (and
/// closes its own sockets on the token) before answering, the others as their watch delivers it,
/// within milliseconds. Other tokens of the same user are not touched.
#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "auth", summary = "Log out: revoke this token",
    description = "Revokes the Bearer token on every agent: from then on it is refused on every route (401), \
                   a WebSocket `auth` with it fails, and sockets authenticated with it are closed \
                   (an `error` frame `unauthorized`, then close code 1008). Other tokens of the same \
                   user keep working.",
    security(("bearer" = [])),
    responses((status = 204, description = "Revoked"), (status = 401, body = ErrorBody, description = "unauthorized"),
        (status = 429, body = ErrorBody, description = "rate_limited"), (status = 503, body = ErrorBody, description = "unavailable: try again")))]
pub(crate) async fn logout(
    State(state): AppState,
    AuthToken { token, .. }: AuthToken,
) -> HttpResult<StatusCode> {
    let revoked: Revoked = state
        .services
        .request(
            subjects::auth::LOGOUT_SUBJECT.to_string(),
            &LogoutRequest { token },
        )
        .await?;
    let now = chrono::Utc::now().timestamp();
    state
        .core
        .revocations
        .revoked(&revoked.token_id, revoked.expires, now);
    Ok(StatusCode::NO_CONTENT)
}
