//! Errors of the auth service: [`Error`] stops the process, [`AuthError`] fails one request.
//!
//! Handlers return typed [`AuthError`]s; they are turned into the contract's [`ApiError`] in one
//! place ([`From<AuthError> for ApiError`]) so every code and message is decided here.

use dyschat_protocol::{ApiError, ErrorCode};
use dyschat_runtime::token::TokenError;

use crate::password::PasswordError;
use crate::store::StoreError;

/// Why [`crate::run`] gave up: the one start-up error of every request-reply service.
pub use dyschat_runtime::service::ServiceError as Error;

/// Why one register or login request failed.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// The request does not have the contract's shape (username or password rules).
    #[error("{0}")]
    Invalid(ApiError),
    #[error("username is taken")]
    UsernameTaken,
    /// Unknown user or wrong password: deliberately one variant, so callers cannot tell which.
    #[error("invalid username or password")]
    InvalidCredentials,
    /// A lookup by id found nobody.
    #[error("user not found")]
    UnknownUser,
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Password(#[from] PasswordError),
    #[error("could not issue a token: {0}")]
    Token(#[from] TokenError),
    /// Too many failed logins for this username lately ([`crate::throttle`]).
    #[error("too many failed logins for this username, retry in {retry_after_ms} ms")]
    Throttled { retry_after_ms: u64 },
}

impl From<ApiError> for AuthError {
    fn from(e: ApiError) -> Self {
        AuthError::Invalid(e)
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::Invalid(api) => api,
            AuthError::UsernameTaken => {
                ApiError::new(ErrorCode::UsernameTaken, "username is taken")
            }
            AuthError::InvalidCredentials => ApiError::unauthorized("invalid username or password"),
            AuthError::UnknownUser => ApiError::not_found("user not found"),
            AuthError::Store(StoreError::Taken) => {
                ApiError::new(ErrorCode::UsernameTaken, "username is taken")
            }
            AuthError::Store(StoreError::Unavailable(detail)) => {
                tracing::warn!(%detail, "user store unavailable");
                ApiError::unavailable("user store unavailable, try again")
            }
            AuthError::Store(e @ StoreError::Corrupt { .. }) => ApiError::internal(e.to_string()),
            AuthError::Password(PasswordError::Busy) => {
                ApiError::unavailable("too many logins and registrations at once, try again")
            }
            AuthError::Password(e) => ApiError::internal(e.to_string()),
            AuthError::Token(e) => ApiError::internal(e.to_string()),
            AuthError::Throttled { retry_after_ms } => ApiError::rate_limited(retry_after_ms),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_follow_the_contract() {
        let code = |e: AuthError| ApiError::from(e).code;
        assert_eq!(code(AuthError::UsernameTaken), ErrorCode::UsernameTaken);
        assert_eq!(code(StoreError::Taken.into()), ErrorCode::UsernameTaken);
        assert_eq!(code(AuthError::InvalidCredentials), ErrorCode::Unauthorized);
        assert_eq!(code(AuthError::UnknownUser), ErrorCode::NotFound);
        assert_eq!(
            code(ApiError::bad_request("x").into()),
            ErrorCode::BadRequest
        );
        assert_eq!(
            code(StoreError::Unavailable("down".into()).into()),
            ErrorCode::Unavailable
        );
        let msg = ApiError::from(AuthError::InvalidCredentials).message;
        assert_eq!(msg, "invalid username or password");
    }
}
