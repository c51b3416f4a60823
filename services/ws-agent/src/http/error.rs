//! The one mapping from [`ApiError`] to an HTTP response: `{"error": {...}}` with the status of
//! its code, and `Retry-After` when rate limited.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use dyschat_protocol::{wire::ErrorBody, ApiError};

/// An [`ApiError`] leaving through HTTP.
#[derive(Debug)]
pub struct HttpError(pub ApiError);

impl From<ApiError> for HttpError {
    fn from(e: ApiError) -> Self {
        HttpError(e)
    }
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.0.code.http_status())
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        metrics::counter!(dyschat_runtime::metric::ERRORS_TOTAL, "code" => self.0.code.as_str(), "edge" => "http")
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

pub type HttpResult<T> = Result<T, HttpError>;
