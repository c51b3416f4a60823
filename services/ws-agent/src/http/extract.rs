//! Typed extractors whose rejections speak the contract's error format.

use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, MatchedPath, Request};
use axum::http::{header, request::Parts};
use dyschat_protocol::ApiError;
use serde::de::DeserializeOwned;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use super::error::HttpError;
use crate::core::User;
use crate::limits::Class;
use crate::state::AgentState;

/// The caller, from `Authorization: Bearer <token>`; 401 otherwise.
pub(crate) struct AuthUser(pub User);

/// The caller and the token it came with (for `logout`, which revokes that token).
pub(crate) struct AuthToken {
    pub user: User,
    pub token: String,
}

impl FromRequestParts<Arc<AgentState>> for AuthUser {
    type Rejection = HttpError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AgentState>,
    ) -> Result<Self, HttpError> {
        let AuthToken { user, .. } = AuthToken::from_request_parts(parts, state).await?;
        Ok(AuthUser(user))
    }
}

impl FromRequestParts<Arc<AgentState>> for AuthToken {
    type Rejection = HttpError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AgentState>,
    ) -> Result<Self, HttpError> {
        let value = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| ApiError::unauthorized("missing Authorization: Bearer token"))?;
        let token = value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))
            .ok_or_else(|| ApiError::unauthorized("Authorization must be Bearer <token>"))?
            .trim();
        let user = state.core.authenticate(token).await?;
        // Every authenticated route takes from the user's request budget, except posting a
        // message, which takes from the send budget (in the core's send, like a `send` frame).
        let posting = parts.method == axum::http::Method::POST
            && parts
                .extensions
                .get::<MatchedPath>()
                .is_some_and(|p| p.as_str() == super::POST_MESSAGE_ROUTE);
        if !posting {
            state
                .core
                .limits
                .check(Class::Request, &user.user_id)
                .await?;
        }
        Ok(AuthToken {
            user,
            token: token.to_string(),
        })
    }
}

/// A JSON object body; any rejection (bad JSON, not an object, wrong shape, wrong content type,
/// too large) is a `bad_request` naming the problem. Read as a value first, because serde would
/// otherwise accept a struct written as an array (`["alice", "secret"]`).
pub(crate) struct JsonBody<T>(pub T);

impl<T, S> FromRequest<S> for JsonBody<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = HttpError;

    async fn from_request(req: Request, state: &S) -> Result<Self, HttpError> {
        let value = match axum::Json::<serde_json::Value>::from_request(req, state).await {
            Ok(axum::Json(value)) => value,
            Err(rejection) => return Err(ApiError::bad_request(rejection.body_text()).into()),
        };
        if !value.is_object() {
            return Err(ApiError::bad_request("the body must be a JSON object").into());
        }
        serde_json::from_value(value)
            .map(JsonBody)
            .map_err(|e| ApiError::bad_request(format!("invalid body: {e}")).into())
    }
}

/// An optional JSON object body (`{reason?}` of a kick or ban): no body at all is the default
/// value; a body is read like [`JsonBody`].
pub(crate) struct MaybeJsonBody<T>(pub T);

impl<T, S> FromRequest<S> for MaybeJsonBody<T>
where
    T: DeserializeOwned + Default,
    S: Send + Sync,
{
    type Rejection = HttpError;

    async fn from_request(req: Request, state: &S) -> Result<Self, HttpError> {
        let headers = req.headers();
        let empty = !headers.contains_key(header::TRANSFER_ENCODING)
            && headers
                .get(header::CONTENT_LENGTH)
                .is_none_or(|v| v.as_bytes() == b"0");
        if empty {
            return Ok(MaybeJsonBody(T::default()));
        }
        JsonBody::from_request(req, state)
            .await
            .map(|JsonBody(body)| MaybeJsonBody(body))
    }
}

/// Query parameters; a bad one is a `bad_request`.
pub(crate) struct Query<T>(pub T);

impl<T, S> FromRequestParts<S> for Query<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = HttpError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, HttpError> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(value)) => Ok(Query(value)),
            Err(rejection) => Err(ApiError::bad_request(rejection.body_text()).into()),
        }
    }
}

/// The client's IP address, when the server was started with connection info (`serve` does;
/// a router driven directly by a test may not, and then this is `None` rather than a failure).
///
/// It is the TCP peer: behind a reverse proxy every client shares the proxy's address, so the
/// per-address limits then apply to the proxy as a whole.
pub(crate) struct ClientIp(pub Option<IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = HttpError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, HttpError> {
        Ok(ClientIp(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|info| info.0.ip()),
        ))
    }
}
