//! Access tokens: JWT HS256 keyed with the raw bytes of `DYSCHAT_AUTH_SECRET`.
//!
//! auth issues them and ws-agent verifies them locally, so both use this one module. Verification
//! pins the algorithm to HS256 (which refuses `alg: none` and every foreign algorithm) and checks
//! issuer, audience and expiry.

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

pub const ISSUER: &str = "dyschat-auth";
pub const AUDIENCE: &str = "dyschat";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The user id.
    pub sub: String,
    /// The username.
    pub name: String,
    pub iss: String,
    pub aud: String,
    pub iat: i64,
    pub exp: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("token expired")]
    Expired,
    #[error("invalid token: {0}")]
    Invalid(String),
}

/// Signs a token for `user_id` valid for `ttl_secs` from `now` (unix seconds).
pub fn issue(
    secret: &str,
    user_id: &str,
    username: &str,
    now: i64,
    ttl_secs: u64,
) -> Result<(String, Claims), TokenError> {
    let claims = Claims {
        sub: user_id.to_string(),
        name: username.to_string(),
        iss: ISSUER.to_string(),
        aud: AUDIENCE.to_string(),
        iat: now,
        exp: now.saturating_add(i64::try_from(ttl_secs).unwrap_or(i64::MAX)),
    };
    let token = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .map_err(|e| TokenError::Invalid(e.to_string()))?;
    Ok((token, claims))
}

/// Checks signature, algorithm, issuer, audience and expiry.
pub fn verify(secret: &str, token: &str) -> Result<Claims, TokenError> {
    let mut validation = Validation::new(Algorithm::HS256);
    validation.set_issuer(&[ISSUER]);
    validation.set_audience(&[AUDIENCE]);
    validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    validation.leeway = 0;
    jsonwebtoken::decode::<Claims>(
        token,
        &DecodingKey::from_secret(secret.as_bytes()),
        &validation,
    )
    .map(|data| data.claims)
    .map_err(|e| match e.kind() {
        jsonwebtoken::errors::ErrorKind::ExpiredSignature => TokenError::Expired,
        _ => TokenError::Invalid(e.to_string()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "test-secret";

    fn now() -> i64 {
        chrono::Utc::now().timestamp()
    }

    #[test]
    fn round_trip() {
        let (token, claims) = issue(SECRET, "u1", "alice", now(), 60).unwrap();
        assert_eq!(verify(SECRET, &token).unwrap(), claims);
    }

    #[test]
    fn refuses_forged_expired_and_unsigned() {
        let (token, _) = issue("other", "u1", "alice", now(), 60).unwrap();
        assert!(matches!(
            verify(SECRET, &token),
            Err(TokenError::Invalid(_))
        ));

        let (token, _) = issue(SECRET, "u1", "alice", now() - 120, 60).unwrap();
        assert!(matches!(verify(SECRET, &token), Err(TokenError::Expired)));

        // alg: none, with the claims of a valid token and no signature.
        let (token, _) = issue(SECRET, "u1", "alice", now(), 60).unwrap();
        let payload = token.split('.').nth(1).unwrap();
        let none = format!("eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.{payload}.");
        assert!(verify(SECRET, &none).is_err());

        // HS512 with the right key is still refused: the algorithm is pinned.
        let claims = verify(SECRET, &token).unwrap();
        let hs512 = jsonwebtoken::encode(
            &Header::new(Algorithm::HS512),
            &claims,
            &EncodingKey::from_secret(SECRET.as_bytes()),
        )
        .unwrap();
        assert!(verify(SECRET, &hs512).is_err());
    }
}
