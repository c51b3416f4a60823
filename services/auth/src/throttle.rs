//! Failed-login throttling per username, so one account's password cannot be guessed quickly
//! from many addresses (ws-agent limits attempts per address; this covers the other axis).
//!
//! Every admitted attempt on a username takes a token from its bucket (`DYSCHAT_LOGIN_ATTEMPTS_PER_MIN`
//! tokens, refilled at that many per minute) and a successful login gives the bucket back whole,
//! so only failures add up: after N failures in a row the name answers 429 `rate_limited` with
//! `retry_after_ms` until a token has refilled, i.e. at most N guesses a minute. The token is
//! taken *before* the password is checked, so concurrent guesses cannot slip past the bound.
//!
//! Unknown usernames are throttled exactly like existing ones, so a 429 reveals nothing about
//! which names exist. The state is in memory per auth instance: with K instances behind the queue
//! group a name gets at most K times the rate, and a restart forgets it. The price of per-name
//! throttling is that anyone can hold a name at the limit (its owner then waits too); the
//! per-address limit at the edge is what keeps that costly for an attacker.

use std::time::Instant;

use dyschat_protocol::ids;
use dyschat_protocol::wire::{Credentials, LoginReply};
use dyschat_runtime::ratelimit::{retry_after_ms, KeyedLimiter, Rate};

use crate::error::AuthError;
use crate::handlers::{self, TokenSettings};
use crate::password::Hasher;
use crate::store::UserStore;

/// Usernames whose failures one instance remembers; the least recently used go first beyond it.
pub const MAX_TRACKED_NAMES: usize = 100_000;

#[derive(Debug)]
pub struct LoginThrottle {
    attempts: KeyedLimiter<String>,
}

impl LoginThrottle {
    /// `per_min` failed attempts per username per minute.
    pub fn new(per_min: u32) -> LoginThrottle {
        LoginThrottle {
            attempts: KeyedLimiter::new(Rate::per_minute(per_min), MAX_TRACKED_NAMES),
        }
    }

    /// Takes one attempt for `username` (any case), or says how long to wait.
    pub fn admit(&self, username: &str, now: Instant) -> Result<(), AuthError> {
        self.attempts
            .try_acquire(&ids::username_key(username), now)
            .map_err(|wait| AuthError::Throttled {
                retry_after_ms: retry_after_ms(wait),
            })
    }

    /// A successful login: the name's failures are forgotten.
    pub fn succeeded(&self, username: &str) {
        self.attempts.reset(&ids::username_key(username));
    }
}

/// [`handlers::login`] behind the throttle. Malformed credentials are refused before they are
/// counted: they are not guesses, and a malformed name must not become a key.
pub async fn login(
    users: &UserStore,
    tokens: &TokenSettings,
    hasher: &Hasher,
    throttle: &LoginThrottle,
    creds: Credentials,
    now_unix: i64,
    now: Instant,
) -> Result<LoginReply, AuthError> {
    ids::validate_username(&creds.username)?;
    ids::validate_password(&creds.password)?;
    throttle.admit(&creds.username, now)?;
    let username = creds.username.clone();
    let reply = handlers::login(users, tokens, hasher, creds, now_unix).await?;
    throttle.succeeded(&username);
    Ok(reply)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use dyschat_protocol::{ApiError, ErrorCode};

    use super::*;

    #[test]
    fn failures_add_up_per_name_ignoring_case() {
        let t = LoginThrottle::new(3);
        let t0 = Instant::now();
        for name in ["alice", "ALICE", "Alice"] {
            t.admit(name, t0).unwrap();
        }
        let err = t.admit("alice", t0).unwrap_err();
        let api = ApiError::from(err);
        assert_eq!(api.code, ErrorCode::RateLimited);
        assert_eq!(api.retry_after_ms, Some(20_000));
        // Other names are unaffected; the name recovers one attempt per 20 s.
        t.admit("bob", t0).unwrap();
        assert!(t.admit("alice", t0 + Duration::from_secs(19)).is_err());
        t.admit("alice", t0 + Duration::from_secs(20)).unwrap();
    }

    #[test]
    fn a_success_forgets_the_failures() {
        let t = LoginThrottle::new(2);
        let t0 = Instant::now();
        t.admit("alice", t0).unwrap();
        t.admit("alice", t0).unwrap();
        t.succeeded("Alice");
        t.admit("alice", t0).unwrap();
        t.admit("alice", t0).unwrap();
        assert!(t.admit("alice", t0).is_err());
    }
}
