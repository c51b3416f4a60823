//! The web client and the API explorer, embedded in the binary so the agent serves them with no
//! files on disk and no network (no CDN): `/`, `/assets/...` and `/docs`.
//!
//! File names carry no content hash, so responses say `no-cache` with a strong `ETag`: browsers
//! revalidate and get `304 Not Modified` until a new binary ships different bytes.

use std::sync::OnceLock;

use axum::extract::Path;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use super::HttpError;
use dyschat_protocol::{wire::ErrorBody, ApiError};

/// An embedded file: its URL path under `/assets/`, content type and bytes.
struct Asset {
    path: &'static str,
    content_type: &'static str,
    bytes: &'static [u8],
}

const JS: &str = "text/javascript; charset=utf-8";

/// Every file under `/assets/`; adding a file to `assets/` means adding a line here.
const ASSETS: &[Asset] = &[
    Asset {
        path: "app.css",
        content_type: "text/css; charset=utf-8",
        bytes: include_bytes!("../../assets/app.css"),
    },
    Asset {
        path: "main.js",
        content_type: JS,
        bytes: include_bytes!("../../assets/main.js"),
    },
    Asset {
        path: "api.js",
        content_type: JS,
        bytes: include_bytes!("../../assets/api.js"),
    },
    Asset {
        path: "connection.js",
        content_type: JS,
        bytes: include_bytes!("../../assets/connection.js"),
    },
    Asset {
        path: "store.js",
        content_type: JS,
        bytes: include_bytes!("../../assets/store.js"),
    },
    Asset {
        path: "view.js",
        content_type: JS,
        bytes: include_bytes!("../../assets/view.js"),
    },
    Asset {
        path: "messages.js",
        content_type: JS,
        bytes: include_bytes!("../../assets/messages.js"),
    },
    Asset {
        path: "actions.js",
        content_type: JS,
        bytes: include_bytes!("../../assets/actions.js"),
    },
    Asset {
        path: "compose.js",
        content_type: JS,
        bytes: include_bytes!("../../assets/compose.js"),
    },
    Asset {
        path: "feed.js",
        content_type: JS,
        bytes: include_bytes!("../../assets/feed.js"),
    },
    Asset {
        path: "files.js",
        content_type: JS,
        bytes: include_bytes!("../../assets/files.js"),
    },
    Asset {
        path: "attachments.js",
        content_type: JS,
        bytes: include_bytes!("../../assets/attachments.js"),
    },
    Asset {
        path: "search.js",
        content_type: JS,
        bytes: include_bytes!("../../assets/search.js"),
    },
    Asset {
        path: "favicon.svg",
        content_type: "image/svg+xml",
        bytes: include_bytes!("../../assets/favicon.svg"),
    },
    Asset {
        path: "docs.js",
        content_type: JS,
        bytes: include_bytes!("../../assets/docs.js"),
    },
];

const INDEX: &[u8] = include_bytes!("../../assets/index.html");
const DOCS: &[u8] = include_bytes!("../../assets/docs.html");
const HTML: &str = "text/html; charset=utf-8";

/// Pages load only their own embedded files and talk only to this origin (HTTP and WebSocket);
/// the inline `<style>` of `/docs` is the one exception. Images may also be `blob:` URLs: the
/// client fetches attached images with its token and shows them from memory. No framing
/// (clickjacking).
const CSP: &str =
    "default-src 'self'; connect-src 'self' ws: wss:; style-src 'self' 'unsafe-inline'; \
                   img-src 'self' data: blob:; object-src 'none'; base-uri 'none'; form-action 'self'; \
                   frame-ancestors 'none'";

/// FNV-1a: a cheap, stable content fingerprint for the `ETag` (not a security boundary).
fn fingerprint(bytes: &[u8]) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        hash ^= u64::from(*b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    format!("\"{hash:016x}\"")
}

fn etag_of(index: usize) -> &'static str {
    static TAGS: OnceLock<Vec<String>> = OnceLock::new();
    let tags = TAGS.get_or_init(|| {
        ASSETS
            .iter()
            .map(|a| fingerprint(a.bytes))
            .chain([fingerprint(INDEX), fingerprint(DOCS)])
            .collect()
    });
    tags.get(index).map(String::as_str).unwrap_or("\"0\"")
}

fn respond(
    headers: &HeaderMap,
    content_type: &'static str,
    bytes: &'static [u8],
    tag: &str,
) -> Response {
    let etag = HeaderValue::from_str(tag).unwrap_or(HeaderValue::from_static("\"0\""));
    let matches = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == tag));
    let common = [
        (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        (header::ETAG, etag),
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
    ];
    if matches {
        return (StatusCode::NOT_MODIFIED, common).into_response();
    }
    let mut response = (
        common,
        [(header::CONTENT_TYPE, HeaderValue::from_static(content_type))],
        bytes,
    )
        .into_response();
    if content_type == HTML {
        response.headers_mut().insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CSP),
        );
    }
    response
}

/// The web client (`GET /`).
#[utoipa::path(get, path = "/", tag = "web client",
    responses((status = 200, description = "The web client", content_type = "text/html")))]
pub async fn index(headers: HeaderMap) -> Response {
    respond(&headers, HTML, INDEX, etag_of(ASSETS.len()))
}

/// The interactive API explorer over `/openapi.json` (`GET /docs`).
#[utoipa::path(get, path = "/docs", tag = "web client",
    responses((status = 200, description = "Interactive API explorer", content_type = "text/html")))]
pub async fn docs(headers: HeaderMap) -> Response {
    respond(&headers, HTML, DOCS, etag_of(ASSETS.len() + 1))
}

/// A file of the web client; unknown names are the usual JSON 404.
#[utoipa::path(get, path = "/assets/{file}", tag = "web client",
    params(("file" = String, Path, description = "e.g. `main.js`, `app.css`")),
    responses((status = 200, description = "The file, `Cache-Control: no-cache` with an `ETag`"),
        (status = 304, description = "Not modified (`If-None-Match`)"),
        (status = 404, body = ErrorBody, description = "not_found")))]
pub async fn asset(Path(path): Path<String>, headers: HeaderMap) -> Result<Response, HttpError> {
    let (i, asset) = ASSETS
        .iter()
        .enumerate()
        .find(|(_, a)| a.path == path)
        .ok_or_else(|| ApiError::not_found("no such asset"))?;
    Ok(respond(
        &headers,
        asset.content_type,
        asset.bytes,
        etag_of(i),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_module_the_client_imports_is_embedded() {
        let main = std::str::from_utf8(INDEX).unwrap_or_default();
        assert!(main.contains("/assets/main.js") && main.contains("/assets/app.css"));
        for asset in ASSETS.iter().filter(|a| a.path.ends_with(".js")) {
            let text = std::str::from_utf8(asset.bytes).unwrap_or_default();
            for line in text.lines().filter(|l| l.starts_with("import ")) {
                let Some(spec) = line.split('\'').nth(1) else {
                    continue;
                };
                let target = spec.trim_start_matches("./");
                assert!(
                    ASSETS.iter().any(|a| a.path == target),
                    "{} imports {spec}, which is not embedded",
                    asset.path
                );
            }
        }
    }

    #[test]
    fn etags_differ_per_content_and_are_quoted() {
        assert_ne!(fingerprint(b"a"), fingerprint(b"b"));
        assert!(fingerprint(b"a").starts_with('"'));
    }
}
