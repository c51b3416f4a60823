//! Errors of the rooms service: [`Error`] stops the process, [`RoomsError`] fails one request.
//!
//! Handlers return typed [`RoomsError`]s, turned into the contract's [`ApiError`] only here.

use dyschat_protocol::ApiError;
use dyschat_runtime::direct::DirectError;

use crate::store::StoreError;

/// Why [`crate::run`] gave up: the one start-up error of every request-reply service.
pub use dyschat_runtime::service::ServiceError as Error;

/// Why one rooms request failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RoomsError {
    /// The request breaks a rule of the contract (id, name, topic, limit, cursor).
    #[error("{0}")]
    Invalid(ApiError),
    #[error("room not found")]
    NotFound,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<ApiError> for RoomsError {
    fn from(e: ApiError) -> Self {
        RoomsError::Invalid(e)
    }
}

impl From<RoomsError> for ApiError {
    fn from(e: RoomsError) -> Self {
        match e {
            RoomsError::Invalid(api) => api,
            RoomsError::NotFound => ApiError::not_found("room not found"),
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
    use dyschat_protocol::ErrorCode;
    use std::time::Duration;

    #[test]
    fn codes_follow_the_contract() {
        let code = |e: RoomsError| ApiError::from(e).code;
        assert_eq!(code(RoomsError::NotFound), ErrorCode::NotFound);
        assert_eq!(
            ApiError::from(RoomsError::NotFound).message,
            "room not found"
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
