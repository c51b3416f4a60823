//! Accounts and tokens: register and login pass on to the auth service (after the per-address
//! limit), `me` reads the caller's token.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use dyschat_protocol::{
    subjects,
    wire::{Credentials, ErrorBody, LoginReply, UserView},
};

use super::AppState;
use crate::http::error::HttpResult;
use crate::http::extract::{AuthUser, ClientIp, JsonBody};

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
    responses((status = 200, body = UserView, description = "The caller"), (status = 401, body = ErrorBody, description = "unauthorized")))]
pub(crate) async fn me(AuthUser(user): AuthUser) -> Json<UserView> {
    Json(UserView {
        user_id: user.user_id,
        username: user.username,
    })
}
