//! Access tokens: JWT HS256 keyed with the raw bytes of `DYSCHAT_AUTH_SECRET`.
//!
//! auth issues them and ws-agent verifies them locally, so both use this one module. Verification
//! pins the algorithm to HS256 (which refuses `alg: none` and every foreign algorithm) and checks
//! issuer, audience and expiry.
//!
//! Every token carries a `jti`: 128 random bits in hex, its id, by which a logout revokes it
//! ([`id_of`]). Tokens issued before `jti` existed stay valid until they expire, and their id is
//! a digest of the token itself, so they can be revoked too.

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
    /// The token's id (absent from tokens issued before logout existed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
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
        jti: Some(new_jti()),
    };
    let token = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .map_err(|e| TokenError::Invalid(e.to_string()))?;
    Ok((token, claims))
}

/// A fresh token id: 128 random bits as 32 lowercase hex digits.
fn new_jti() -> String {
    format!("{:032x}", rand::random::<u128>())
}

/// The prefix of the id of a token without `jti` (see [`id_of`]).
const LEGACY_ID_PREFIX: &str = "legacy-";

/// The id of a verified token, under which a logout revokes it: its `jti`, or for a token issued
/// before `jti` existed `legacy-` and the first 128 bits of the token's SHA-256 in hex. Always a
/// valid id of the contract (so it can be a KV key); a `jti` that is not one makes the token
/// invalid.
pub fn id_of(claims: &Claims, token: &str) -> Result<String, TokenError> {
    use sha2::Digest;
    match &claims.jti {
        Some(jti) if dyschat_protocol::ids::is_valid_id(jti) => Ok(jti.clone()),
        Some(_) => Err(TokenError::Invalid("jti is not a valid id".into())),
        None => {
            let digest = sha2::Sha256::digest(token.as_bytes());
            let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
            Ok(format!("{LEGACY_ID_PREFIX}{hex}"))
        }
    }
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
    fn every_token_has_its_own_id() {
        let (a, ca) = issue(SECRET, "u1", "alice", now(), 60).unwrap();
        let (b, cb) = issue(SECRET, "u1", "alice", now(), 60).unwrap();
        let (ida, idb) = (id_of(&ca, &a).unwrap(), id_of(&cb, &b).unwrap());
        assert_ne!(ida, idb, "two logins in one second get two ids");
        assert_eq!(ida.len(), 32);
        assert_eq!(Some(ida), ca.jti);

        // A token of before `jti` is still accepted, and its id is a stable digest of it.
        let legacy = Claims { jti: None, ..ca };
        let old = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &legacy,
            &EncodingKey::from_secret(SECRET.as_bytes()),
        )
        .unwrap();
        let verified = verify(SECRET, &old).unwrap();
        assert_eq!(verified.jti, None);
        let id = id_of(&verified, &old).unwrap();
        assert!(id.starts_with(LEGACY_ID_PREFIX) && dyschat_protocol::ids::is_valid_id(&id));
        assert_eq!(id, id_of(&verified, &old).unwrap());
        assert_ne!(id, id_of(&verified, &a).unwrap());

        // A `jti` that could not be a key is refused.
        let bad = Claims {
            jti: Some("a.b*".into()),
            ..verified
        };
        assert!(matches!(id_of(&bad, &old), Err(TokenError::Invalid(_))));
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
