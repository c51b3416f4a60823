//! Errors of the rooms service: [`Error`] stops the process, [`RoomsError`] fails one request.
//!
//! Handlers return typed [`RoomsError`]s, turned into the contract's [`ApiError`] only here.

use dyschat_protocol::ApiError;

use crate::store::StoreError;

/// Why [`crate::run`] gave up: the one start-up error of every request-reply service.
pub use dyschat_runtime::service::ServiceError as Error;

/// Why one rooms request failed.
#[derive(Debug, thiserror::Error)]
pub enum RoomsError {
    /// The request breaks a rule of the contract (id, name, topic, limit).
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
            RoomsError::Store(StoreError::Unavailable(detail)) => {
                tracing::warn!(%detail, "room store unavailable");
                ApiError::unavailable("room store unavailable, try again")
            }
            RoomsError::Store(StoreError::Contended { room_id, attempts }) => {
                tracing::warn!(%room_id, attempts, "member set update kept conflicting");
                ApiError::unavailable("room is busy, try again")
            }
            RoomsError::Store(e @ (StoreError::Corrupt { .. } | StoreError::Exists(_))) => {
                ApiError::internal(e.to_string())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dyschat_protocol::ErrorCode;

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
            room_id: "r".into(),
            attempts: 3,
        };
        assert_eq!(code(busy.into()), ErrorCode::Unavailable);
        let corrupt = StoreError::Corrupt {
            key: "r".into(),
            detail: "x".into(),
        };
        assert_eq!(code(corrupt.into()), ErrorCode::Internal);
    }
}
