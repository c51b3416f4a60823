//! Errors of the rooms service: [`Error`] stops the process, [`RoomsError`] fails one request.
//!
//! Handlers return typed [`RoomsError`]s, turned into the contract's [`ApiError`] only here.

use dyschat_protocol::policy::{Denied, ROOM_NOT_FOUND};
use dyschat_protocol::{ApiError, ErrorCode};
use dyschat_runtime::direct::DirectError;

use crate::store::StoreError;

/// Why [`crate::run`] gave up: the one start-up error of every request-reply service.
pub use dyschat_runtime::service::ServiceError as Error;

/// How long a client is told to wait after a quota refusal. A quota frees up only when the user
/// deletes, hands on or leaves a room, so this is a pace for retries, not a promise.
pub(crate) const QUOTA_RETRY_AFTER_MS: u64 = 60_000;

/// Which quota a request ran into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Quota {
    /// `DYSCHAT_MAX_ROOMS_PER_USER`.
    Owned,
    /// `DYSCHAT_MAX_ROOMS_JOINED`.
    Joined,
}

/// Why one rooms request failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RoomsError {
    /// The request breaks a rule of the contract (id, name, topic, limit, cursor, role).
    #[error("{0}")]
    Invalid(ApiError),
    /// No such room (or it is deleted).
    #[error("room not found")]
    NotFound,
    /// The policy refused the action (a hidden room is `NotFound` here too).
    #[error("refused: {0:?}")]
    Denied(Denied),
    /// The user acted on does not exist.
    #[error("user not found")]
    UserNotFound,
    /// The user acted on must be a member of the room, and is not.
    #[error("user is not a member of the room")]
    NotAMember,
    #[error("quota {0:?} reached")]
    Quota(Quota),
    /// The auth service could not answer a user lookup (its own error).
    #[error("user lookup failed: {0}")]
    Users(ApiError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<ApiError> for RoomsError {
    fn from(e: ApiError) -> Self {
        RoomsError::Invalid(e)
    }
}

impl From<Denied> for RoomsError {
    fn from(denied: Denied) -> Self {
        RoomsError::Denied(denied)
    }
}

impl From<RoomsError> for ApiError {
    fn from(e: RoomsError) -> Self {
        match e {
            RoomsError::Invalid(api) => api,
            RoomsError::NotFound => ApiError::not_found(ROOM_NOT_FOUND),
            RoomsError::Denied(denied) => denied.error(),
            RoomsError::UserNotFound => ApiError::not_found("user not found"),
            RoomsError::NotAMember => ApiError::bad_request("the user is not a member of the room"),
            RoomsError::Quota(quota) => ApiError {
                code: ErrorCode::RateLimited,
                message: match quota {
                    Quota::Owned => "you own as many rooms as you may",
                    Quota::Joined => "you are in as many rooms as you may",
                }
                .into(),
                retry_after_ms: Some(QUOTA_RETRY_AFTER_MS),
            },
            RoomsError::Users(e) => match e.code {
                ErrorCode::Unavailable | ErrorCode::Internal => e,
                // Anything else from auth is a bug between the services, not the caller's fault.
                _ => ApiError::internal(format!("user lookup: {}", e.message)),
            },
            RoomsError::Store(e) => store_error(e),
        }
    }
}

/// A store failure: what the caller may retry is `unavailable`, anything else `internal`.
fn store_error(e: StoreError) -> ApiError {
    match e {
        StoreError::Unavailable { what, detail } => {
            tracing::warn!(%what, %detail, "room store unavailable");
            ApiError::unavailable("room store unavailable, try again")
        }
        StoreError::Direct(
            e @ (DirectError::TimedOut(_) | DirectError::NoResponders(_) | DirectError::Nats(_)),
        ) => {
            tracing::warn!(error = %e, "room store read unavailable");
            ApiError::unavailable("room store unavailable, try again")
        }
        StoreError::Contended { key, attempts } => {
            tracing::warn!(%key, attempts, "record kept conflicting");
            ApiError::unavailable("room is busy, try again")
        }
        e @ (StoreError::Corrupt { .. } | StoreError::Exists(_) | StoreError::Direct(_)) => {
            ApiError::internal(e.to_string())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn codes_follow_the_contract() {
        let code = |e: RoomsError| ApiError::from(e).code;
        assert_eq!(code(RoomsError::NotFound), ErrorCode::NotFound);
        assert_eq!(
            ApiError::from(RoomsError::NotFound).message,
            "room not found"
        );
        // A hidden room answers exactly like a missing one.
        assert_eq!(
            ApiError::from(RoomsError::Denied(Denied::NotFound)),
            ApiError::from(RoomsError::NotFound)
        );
        assert_eq!(code(Denied::Forbidden.into()), ErrorCode::Forbidden);
        assert_eq!(code(Denied::Conflict.into()), ErrorCode::Conflict);
        assert_eq!(code(RoomsError::UserNotFound), ErrorCode::NotFound);
        assert_eq!(code(RoomsError::NotAMember), ErrorCode::BadRequest);
        let quota = ApiError::from(RoomsError::Quota(Quota::Joined));
        assert_eq!(quota.code, ErrorCode::RateLimited);
        assert_eq!(quota.retry_after_ms, Some(QUOTA_RETRY_AFTER_MS));
        assert_eq!(
            code(RoomsError::Users(ApiError::unavailable("x"))),
            ErrorCode::Unavailable
        );
        assert_eq!(
            code(RoomsError::Users(ApiError::bad_request("x"))),
            ErrorCode::Internal
        );
        assert_eq!(
            code(ApiError::bad_request("x").into()),
            ErrorCode::BadRequest
        );
        let busy = StoreError::Contended {
            key: "r.u".into(),
            attempts: 3,
        };
        assert_eq!(code(busy.into()), ErrorCode::Unavailable);
        let down = StoreError::Unavailable {
            what: "dyschat_members",
            detail: "x".into(),
        };
        assert_eq!(code(down.into()), ErrorCode::Unavailable);
        let slow = StoreError::Direct(DirectError::TimedOut(Duration::from_secs(1)));
        assert_eq!(code(slow.into()), ErrorCode::Unavailable);
        let odd = StoreError::Direct(DirectError::Malformed("x".into()));
        assert_eq!(code(odd.into()), ErrorCode::Internal);
        let corrupt = StoreError::Corrupt {
            key: "r".into(),
            detail: "x".into(),
        };
        assert_eq!(code(corrupt.into()), ErrorCode::Internal);
    }
}
