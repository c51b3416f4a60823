//! Which web pages may talk to this agent: the WebSocket `Origin` check and the CORS policy.
//!
//! Browsers attach `Origin` to WebSocket upgrades but do not apply CORS to them, so without a check
//! any page a user visits could open a socket to the agent (cross-site WebSocket hijacking). The
//! rule, from `DYSCHAT_ALLOWED_ORIGINS`:
//!
//! * a list is set: the Origin must be one of its entries (any mode);
//! * no list, `dev`: any Origin (local development from any port);
//! * no list, `prod`: same origin only, i.e. the Origin's `host[:port]` equals the `Host` header.
//!
//! A request without `Origin` is not from a browser page (CLI tools, servers, tests) and passes;
//! such clients are not the target of this check and still need a token.
//!
//! CORS for the HTTP API follows the same list: exactly the listed origins (never `*`), permissive
//! in `dev` without a list, and no cross-origin access in `prod` without one.

use std::time::Duration;

use axum::http::{header, HeaderMap, HeaderValue, Method};
use dyschat_protocol::ApiError;
use dyschat_runtime::EnvMode;

use crate::config::{normalize_origin, Config};
use tower_http::cors::{AllowOrigin, CorsLayer};

/// How long a browser may cache a preflight answer.
const PREFLIGHT_MAX_AGE: Duration = Duration::from_secs(600);

/// Refuses a WebSocket upgrade from a page that is not allowed (403 `forbidden`).
pub(crate) fn check_ws_origin(config: &Config, headers: &HeaderMap) -> Result<(), ApiError> {
    let origin = match headers.get(header::ORIGIN) {
        None => return Ok(()),
        Some(value) => value.to_str().unwrap_or("\u{fffd}"),
    };
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    if origin_allowed(
        config.common.env_mode,
        &config.agent.allowed_origins(),
        origin,
        host,
    ) {
        Ok(())
    } else {
        metrics::counter!(dyschat_runtime::metric::ORIGIN_REFUSED_TOTAL).increment(1);
        Err(ApiError::forbidden(
            "this Origin may not open a WebSocket here",
        ))
    }
}

/// The rule of the module documentation, for one present `Origin` header.
pub(crate) fn origin_allowed(
    mode: EnvMode,
    allowed: &[String],
    origin: &str,
    host: Option<&str>,
) -> bool {
    let origin = normalize_origin(origin);
    if !allowed.is_empty() {
        return allowed.contains(&origin);
    }
    match mode {
        EnvMode::Dev => true,
        EnvMode::Prod => match (authority(&origin), host) {
            (Some(from), Some(host)) => {
                without_default_port(&from) == without_default_port(&host.to_ascii_lowercase())
            }
            _ => false,
        },
    }
}

/// `host[:port]` of an `http(s)://` origin; `None` for `null` and other schemes.
fn authority(origin: &str) -> Option<String> {
    let rest = origin
        .strip_prefix("https://")
        .or_else(|| origin.strip_prefix("http://"))?;
    (!rest.is_empty() && !rest.contains('/')).then(|| rest.to_string())
}

/// Browsers leave out the default port, `Host` sometimes keeps it; compare without it.
fn without_default_port(authority: &str) -> &str {
    authority
        .strip_suffix(":443")
        .or_else(|| authority.strip_suffix(":80"))
        .unwrap_or(authority)
}

/// The CORS layer for the HTTP API, or `None` for no cross-origin access at all.
pub fn cors(config: &Config) -> Option<CorsLayer> {
    let allowed: Vec<HeaderValue> = config
        .agent
        .allowed_origins()
        .iter()
        .filter_map(|o| HeaderValue::from_str(o).ok())
        .collect();
    match (allowed.is_empty(), config.common.env_mode) {
        (true, EnvMode::Dev) => Some(CorsLayer::permissive()),
        (true, EnvMode::Prod) => None,
        (false, _) => Some(
            CorsLayer::new()
                .allow_origin(AllowOrigin::list(allowed))
                .allow_methods([Method::GET, Method::POST])
                .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE])
                .expose_headers([
                    header::RETRY_AFTER,
                    header::HeaderName::from_static(super::trace::TRACE_ID_HEADER),
                ])
                .max_age(PREFLIGHT_MAX_AGE),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_list_admits_exactly_its_entries() {
        let allowed = list(&["https://chat.example.com", "http://localhost:3000"]);
        for mode in [EnvMode::Dev, EnvMode::Prod] {
            let ok = |o: &str| origin_allowed(mode, &allowed, o, Some("agent.internal"));
            assert!(ok("https://chat.example.com"));
            assert!(ok("https://CHAT.example.com/"));
            assert!(ok("http://localhost:3000"));
            assert!(!ok("https://chat.example.com.evil.com"));
            assert!(!ok("http://chat.example.com"));
            assert!(!ok("https://evil.com"));
            assert!(!ok("null"));
        }
    }

    #[test]
    fn without_a_list_dev_admits_any_and_prod_only_the_same_origin() {
        assert!(origin_allowed(EnvMode::Dev, &[], "https://evil.com", None));
        assert!(origin_allowed(EnvMode::Dev, &[], "null", None));
        let prod = |o: &str, host: Option<&str>| origin_allowed(EnvMode::Prod, &[], o, host);
        assert!(prod("https://chat.example.com", Some("chat.example.com")));
        assert!(prod(
            "https://chat.example.com",
            Some("Chat.Example.com:443")
        ));
        assert!(prod("http://127.0.0.1:8080", Some("127.0.0.1:8080")));
        assert!(!prod("http://127.0.0.1:8081", Some("127.0.0.1:8080")));
        assert!(!prod("https://evil.com", Some("chat.example.com")));
        assert!(!prod("https://chat.example.com", None));
        assert!(!prod("null", Some("chat.example.com")));
    }

    #[test]
    fn a_missing_origin_passes_and_a_refused_one_is_forbidden() {
        let prod = Config::from_env(&dyschat_runtime::Env::from_pairs([
            ("DYSCHAT_ENV_MODE".to_string(), "prod".to_string()),
            ("DYSCHAT_AUTH_SECRET".to_string(), "x".repeat(40)),
        ]))
        .unwrap();
        let mut headers = HeaderMap::new();
        assert!(check_ws_origin(&prod, &headers).is_ok());
        headers.insert(header::ORIGIN, HeaderValue::from_static("https://evil.com"));
        headers.insert(header::HOST, HeaderValue::from_static("chat.example.com"));
        let e = check_ws_origin(&prod, &headers).unwrap_err();
        assert_eq!(e.code, dyschat_protocol::ErrorCode::Forbidden);
    }

    #[test]
    fn cors_is_never_a_wildcard_in_prod() {
        let prod = |origins: &str| {
            Config::from_env(&dyschat_runtime::Env::from_pairs([
                ("DYSCHAT_ENV_MODE".to_string(), "prod".to_string()),
                ("DYSCHAT_AUTH_SECRET".to_string(), "x".repeat(40)),
                ("DYSCHAT_ALLOWED_ORIGINS".to_string(), origins.to_string()),
            ]))
            .unwrap()
        };
        assert!(cors(&prod("")).is_none());
        let layer = cors(&prod("https://chat.example.com")).expect("a list gives a layer");
        assert!(!format!("{layer:?}").contains('*'), "{layer:?}");
        assert!(
            cors(&Config::from_env(&dyschat_runtime::Env::default()).unwrap()).is_some(),
            "dev stays permissive"
        );
    }
}
