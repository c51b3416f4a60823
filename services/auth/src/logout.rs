//! `logout`: revokes one token for the whole mesh.
//!
//! Auth is the only writer of the revoked bucket ([`layout::REVOKED_BUCKET`]); every ws-agent
//! watches it and refuses a revoked token on every route and socket. The token to revoke comes in
//! the request and is verified here, with the signing secret, so only a valid token can be
//! revoked and only by whoever holds it (an agent cannot revoke tokens by guessing ids).
//!
//! Each entry lives until a little after the token expires (a per-message TTL), so the bucket
//! only ever holds revocations that still matter. Revoking a token twice is not an error: the
//! second `create` finds the entry and the answer is the same.
//!
//! Kept apart from the register and login handlers (its own error type too): it needs only the
//! secret and the bucket, not the user store.

use std::time::Duration;

use async_nats::jetstream::kv::{self, CreateErrorKind};
use dyschat_protocol::wire::{LogoutRequest, Revoked};
use dyschat_protocol::{layout, ApiError};
use dyschat_runtime::token::{self, TokenError};

/// Why a logout failed.
#[derive(Debug, thiserror::Error)]
pub enum LogoutError {
    /// Not a token of ours, or one that expired (which needs no revoking, but the caller should
    /// hear that it is not valid, as on every other route).
    #[error("invalid token")]
    Invalid,
    #[error("token expired")]
    Expired,
    /// The bucket did not take the revocation: the token is still valid, the caller may retry.
    #[error("could not store the revocation: {0}")]
    Store(String),
}

impl From<LogoutError> for ApiError {
    fn from(e: LogoutError) -> Self {
        match e {
            LogoutError::Invalid => ApiError::unauthorized("invalid token"),
            LogoutError::Expired => ApiError::unauthorized("token expired"),
            LogoutError::Store(detail) => {
                tracing::warn!(%detail, "revoked bucket unavailable");
                ApiError::unavailable("could not log out, try again")
            }
        }
    }
}

/// Where revocations are written: the revoked bucket and the secret tokens are checked with.
#[derive(Clone)]
pub struct Revoker {
    bucket: kv::Store,
    secret: String,
}

impl std::fmt::Debug for Revoker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Revoker").finish_non_exhaustive()
    }
}

impl Revoker {
    pub fn new(bucket: kv::Store, secret: String) -> Self {
        Revoker { bucket, secret }
    }

    /// Revokes `request.token` from `now_unix` on, until it expires.
    pub async fn logout(
        &self,
        request: LogoutRequest,
        now_unix: i64,
    ) -> Result<Revoked, LogoutError> {
        let claims = token::verify(&self.secret, &request.token).map_err(|e| match e {
            TokenError::Expired => LogoutError::Expired,
            TokenError::Invalid(_) => LogoutError::Invalid,
        })?;
        let token_id = token::id_of(&claims, &request.token).map_err(|_| LogoutError::Invalid)?;
        let ttl = entry_ttl(claims.exp, now_unix);
        let value = claims.exp.to_string();
        match self
            .bucket
            .create_with_ttl(layout::revoked_key(&token_id), value.into(), ttl)
            .await
        {
            Ok(_) => {}
            Err(e) if e.kind() == CreateErrorKind::AlreadyExists => {}
            Err(e) => return Err(LogoutError::Store(e.to_string())),
        }
        tracing::info!(user_id = %claims.sub, token_id = %token_id, "token revoked");
        Ok(Revoked {
            token_id,
            expires: claims.exp,
        })
    }
}

/// How long the entry of a token expiring at `exp` is kept: until then plus
/// [`layout::REVOKED_GRACE`] (clocks disagree), at least a second (the TTL's unit).
fn entry_ttl(exp: i64, now: i64) -> Duration {
    let left = u64::try_from(exp.saturating_sub(now)).unwrap_or(0);
    Duration::from_secs(left.saturating_add(layout::REVOKED_GRACE.as_secs()).max(1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use dyschat_protocol::ErrorCode;

    #[test]
    fn an_entry_outlives_its_token_by_the_grace() {
        let grace = layout::REVOKED_GRACE.as_secs();
        assert_eq!(entry_ttl(1_000, 400).as_secs(), 600 + grace);
        assert_eq!(entry_ttl(400, 1_000).as_secs(), grace.max(1));
    }

    #[test]
    fn errors_follow_the_contract() {
        let code = |e: LogoutError| ApiError::from(e).code;
        assert_eq!(code(LogoutError::Invalid), ErrorCode::Unauthorized);
        assert_eq!(code(LogoutError::Expired), ErrorCode::Unauthorized);
        assert_eq!(code(LogoutError::Store("x".into())), ErrorCode::Unavailable);
    }
}
