//! The core's errors, and the one mapping from them to the contract's [`ApiError`]: the HTTP edge
//! turns that into a response (`http/error.rs`), the WebSocket edge into an `error` frame.

use dyschat_protocol::ApiError;

use crate::ports::PortError;

#[derive(Debug, thiserror::Error)]
pub(crate) enum CoreError {
    /// Refused in the contract's own terms: a validation, a limit, or the answer of auth or
    /// rooms (e.g. `not_found` for an unknown room).
    #[error(transparent)]
    Api(#[from] ApiError),
    /// Refused by `policy::decide` over the user's standing in the room.
    #[error("refused: {0:?}")]
    Denied(dyschat_protocol::policy::Denied),
    /// A request the core refuses for what it asks (400).
    #[error("{0}")]
    Invalid(&'static str),
    /// A port operation failed; the client may try again.
    #[error("{op} failed")]
    Unavailable {
        op: &'static str,
        #[source]
        source: PortError,
    },
    #[error("the socket is closing")]
    Closing,
    /// A bounded resource of the agent is in use to its bound; the client may try again.
    #[error("{0}")]
    Busy(&'static str),
    /// A bug (e.g. a value of ours that does not serialize); logged where it happens.
    #[error("internal error: {0}")]
    Internal(String),
}

impl CoreError {
    /// Wraps a failure of `op`, logging what exactly failed (the client only hears that `op`
    /// did).
    pub(crate) fn unavailable(op: &'static str) -> impl FnOnce(PortError) -> CoreError {
        move |source| {
            tracing::warn!(error = %source, "{op} failed");
            CoreError::Unavailable { op, source }
        }
    }
}

impl From<CoreError> for ApiError {
    fn from(e: CoreError) -> ApiError {
        match e {
            CoreError::Api(e) => e,
            CoreError::Denied(denied) => denied.error(),
            CoreError::Invalid(why) => ApiError::bad_request(why),
            CoreError::Unavailable { op, .. } => {
                ApiError::unavailable(format!("{op} failed, try again"))
            }
            CoreError::Closing | CoreError::Busy(_) => ApiError::unavailable(e.to_string()),
            CoreError::Internal(what) => ApiError::internal(what),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dyschat_protocol::ErrorCode;

    #[test]
    fn each_error_has_its_contract_code() {
        let cases = [
            (
                CoreError::from(ApiError::not_found("x")),
                ErrorCode::NotFound,
            ),
            (
                CoreError::Denied(dyschat_protocol::policy::Denied::Forbidden),
                ErrorCode::Forbidden,
            ),
            (
                CoreError::Denied(dyschat_protocol::policy::Denied::NotFound),
                ErrorCode::NotFound,
            ),
            (CoreError::Invalid("no"), ErrorCode::BadRequest),
            (
                CoreError::unavailable("publish")(PortError::Timeout),
                ErrorCode::Unavailable,
            ),
            (CoreError::Closing, ErrorCode::Unavailable),
            (CoreError::Busy("full"), ErrorCode::Unavailable),
            (CoreError::Internal("x".into()), ErrorCode::Internal),
        ];
        for (error, code) in cases {
            assert_eq!(ApiError::from(error).code, code);
        }
        let e = ApiError::from(CoreError::unavailable("publish")(PortError::Timeout));
        assert_eq!(e.message, "publish failed, try again");
    }
}
