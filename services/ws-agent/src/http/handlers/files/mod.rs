//! Files over HTTP: an upload streams the request body into the file store, a download streams
//! the file back (ranges, `ETag`, and the headers that keep a browser from running what it
//! serves). The rules are the core's ([`crate::core::files`]) and [`serving`]'s.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::Response;
use axum::Json;
use dyschat_protocol::{
    wire::{ErrorBody, File},
    ApiError,
};
use futures::StreamExt;
use serde::Deserialize;
use tokio::sync::Mutex;
use utoipa::IntoParams;

use super::{room_path, AppState};
use crate::core::Upload;
use crate::http::error::HttpResult;
use crate::http::extract::{AuthUser, Query};

mod serving;

use serving::Ranged;

/// A file's raw bytes (the OpenAPI schema of an upload's body and a download's answer).
#[derive(utoipa::ToSchema)]
#[schema(value_type = String, format = Binary)]
#[allow(dead_code)]
pub(crate) struct FileBytes(Vec<u8>);

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct UploadParams {
    /// The file's name: 1 to 255 characters, not blank, no control characters or path
    /// separators.
    name: Option<String>,
}

#[utoipa::path(post, path = "/api/v1/rooms/{room_id}/files", tag = "files", summary = "Upload a file", security(("bearer" = [])),
    params(("room_id" = String, Path, description = "The room id"), UploadParams),
    request_body(content = inline(FileBytes), content_type = "application/octet-stream",
        description = "The file's raw bytes, with their own Content-Type (any type; without one the file is application/octet-stream). At most DYSCHAT_MAX_FILE_BYTES (default 10 MiB)"),
    responses((status = 201, body = File, description = "Stored; attach it to a send of the same room within 24 hours or it is removed"),
        (status = 400, body = ErrorBody, description = "bad_request: no or a bad name, a bad Content-Type, a body cut short"), (status = 401, body = ErrorBody, description = "unauthorized"),
        (status = 403, body = ErrorBody, description = "forbidden: not a member, or banned (a private room: not_found)"), (status = 404, body = ErrorBody, description = "not_found: no such room, or a private room to an outsider"),
        (status = 413, body = ErrorBody, description = "too_large: over DYSCHAT_MAX_FILE_BYTES (declared or streamed)"),
        (status = 429, body = ErrorBody, description = "rate_limited: requests, or the bytes stored per user per day"),
        (status = 503, body = ErrorBody, description = "unavailable: the file store, or too many uploads at once")))]
pub(crate) async fn upload(
    State(state): AppState,
    AuthUser(user): AuthUser,
    Path(room_id): Path<String>,
    Query(params): Query<UploadParams>,
    headers: HeaderMap,
    body: Body,
) -> HttpResult<(StatusCode, Json<File>)> {
    let room_id = room_path(room_id)?;
    let name = params
        .name
        .ok_or_else(|| ApiError::bad_request("the name query parameter is required"))?;
    let declared = match headers.get(header::CONTENT_LENGTH) {
        None => None,
        Some(v) => Some(
            v.to_str()
                .ok()
                .and_then(|s| s.trim().parse::<u64>().ok())
                .ok_or_else(|| ApiError::bad_request("Content-Length is not a number"))?,
        ),
    };
    let content_type = match headers.get(header::CONTENT_TYPE) {
        None => None,
        Some(v) => Some(
            v.to_str()
                .map_err(|_| ApiError::bad_request("Content-Type must be ASCII"))?
                .to_string(),
        ),
    };
    // Shared with the core's reader, so that what a refused upload did not read can be drained
    // afterwards: a client still sending then reads its answer instead of a reset connection.
    let shared = Arc::new(Mutex::new(body.into_data_stream()));
    let reader = futures::stream::unfold(shared.clone(), |shared| async move {
        let next = shared.lock().await.next().await;
        next.map(|part| (part.map_err(std::io::Error::other), shared))
    })
    .boxed();
    let answer = state
        .core
        .upload(
            &user,
            Upload {
                room_id,
                name,
                content_type,
                declared,
                body: reader,
            },
        )
        .await;
    match answer {
        Ok(file) => Ok((StatusCode::CREATED, Json(file))),
        Err(e) => {
            let bound = state.config.agent.max_file_bytes;
            let mut rest = shared.lock().await;
            let drain = async {
                let mut drained = 0u64;
                while let Some(Ok(part)) = rest.next().await {
                    drained += part.len() as u64;
                    if drained > bound {
                        break;
                    }
                }
            };
            let _ = tokio::time::timeout(DRAIN_TIME, drain).await;
            Err(e.into())
        }
    }
}

/// How long a refused upload's unread body is drained (at most `DYSCHAT_MAX_FILE_BYTES` more).
const DRAIN_TIME: Duration = Duration::from_secs(10);

#[utoipa::path(get, path = "/api/v1/files/{file_id}", tag = "files", summary = "Download a file", security(("bearer" = [])),
    params(("file_id" = String, Path, description = "The file id"),
        ("Range" = Option<String>, Header, description = "One range: bytes=a-b, bytes=a- or bytes=-n (several ranges are answered whole)"),
        ("If-None-Match" = Option<String>, Header, description = "The ETag held: 304 when it is still the file's")),
    responses((status = 200, description = "The bytes, with ETag: \"<sha256>\", X-Content-Type-Options: nosniff and Content-Security-Policy: sandbox. Images (png, jpeg, gif, webp), audio, video, pdf and plain text keep their type, inline; anything else is application/octet-stream with Content-Disposition: attachment", body = inline(FileBytes), content_type = "application/octet-stream"),
        (status = 206, description = "The range asked for, with Content-Range", body = inline(FileBytes), content_type = "application/octet-stream"),
        (status = 304, description = "Not modified (If-None-Match)"),
        (status = 401, body = ErrorBody, description = "unauthorized"),
        (status = 404, body = ErrorBody, description = "not_found: no such file, or the caller is not a member of its room, or its message or room was deleted"),
        (status = 416, description = "The range starts past the end; Content-Range: bytes */<size>"),
        (status = 503, body = ErrorBody, description = "unavailable: the file store")))]
pub(crate) async fn download(
    State(state): AppState,
    AuthUser(user): AuthUser,
    Path(file_id): Path<String>,
    method: Method,
    headers: HeaderMap,
) -> HttpResult<Response> {
    let file = state.core.file(&user, &file_id).await?;
    let etag = format!("\"{}\"", file.sha256);
    let (content_type, inline) = serving::served_type(&file.content_type);
    let header_str = |name| {
        headers
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
    };
    let mut response = Response::builder()
        .header(header::ETAG, &etag)
        .header(header::X_CONTENT_TYPE_OPTIONS, "nosniff")
        .header(header::CONTENT_SECURITY_POLICY, "sandbox")
        .header(header::ACCEPT_RANGES, "bytes")
        .header(header::CACHE_CONTROL, "private, no-cache")
        .header(
            header::CONTENT_DISPOSITION,
            serving::disposition(&file.name, inline),
        );
    if serving::not_modified(header_str(header::IF_NONE_MATCH), &etag) {
        return finish(response.status(StatusCode::NOT_MODIFIED), Body::empty());
    }
    // A range of another version of the file is no range of this one.
    let range = match header_str(header::IF_RANGE) {
        Some(tag) if tag.trim() != etag => None,
        _ => header_str(header::RANGE),
    };
    let size = file.size;
    let (status, start, len) = match serving::parse_range(range, size) {
        Ranged::Whole => (StatusCode::OK, 0, size),
        Ranged::Part { start, end } => {
            response =
                response.header(header::CONTENT_RANGE, format!("bytes {start}-{end}/{size}"));
            (StatusCode::PARTIAL_CONTENT, start, end - start + 1)
        }
        Ranged::Unsatisfiable => {
            let response = response
                .status(StatusCode::RANGE_NOT_SATISFIABLE)
                .header(header::CONTENT_RANGE, format!("bytes */{size}"));
            return finish(response, Body::empty());
        }
    };
    let response = response
        .status(status)
        .header(header::CONTENT_TYPE, content_type)
        .header(header::CONTENT_LENGTH, len);
    if method == Method::HEAD || len == 0 {
        return finish(response, Body::empty());
    }
    let bytes = state.core.file_bytes(&file.file_id, start, len).await?;
    finish(response, Body::from_stream(bytes))
}

fn finish(builder: axum::http::response::Builder, body: Body) -> HttpResult<Response> {
    builder
        .body(body)
        .map_err(|e| ApiError::internal(format!("building the response: {e}")).into())
}
