//! The one mapping from an error to an HTTP response: `{"error": {...}}` with the status of its
//! code, and `Retry-After` when rate limited. The core's errors become the contract's
//! [`ApiError`] first ([`CoreError`]'s own mapping), so both edges say the same thing.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use dyschat_protocol::{wire::ErrorBody, ApiError};
use dyschat_runtime::metric;

use crate::core::CoreError;

/// An [`ApiError`] leaving through HTTP.
#[derive(Debug)]
pub(crate) struct HttpError(pub ApiError);

impl From<ApiError> for HttpError {
    fn from(e: ApiError) -> Self {
        HttpError(e)
    }
}

impl From<CoreError> for HttpError {
    fn from(e: CoreError) -> Self {
        HttpError(e.into())
    }
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.0.code.http_status())
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        metrics::counter!(metric::ERRORS_TOTAL, "code" => self.0.code.as_str(), "edge" => "http")
            .increment(1);
        let retry_after = self.0.retry_after_ms;
        let mut response = (status, Json(ErrorBody { error: self.0 })).into_response();
        if let Some(ms) = retry_after {
            let secs = ms.div_ceil(1000).max(1);
            if let Ok(value) = HeaderValue::from_str(&secs.to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, value);
            }
        }
        response
    }
}

pub(crate) type HttpResult<T> = Result<T, HttpError>;
