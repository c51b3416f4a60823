//! The two operations of the service, free of transport: they take a decoded body and return a
//! typed result, and [`crate::service`] wires them to NATS.

use dyschat_protocol::wire::{Credentials, LoginReply, UserView};
use dyschat_protocol::{ids, time};
use dyschat_runtime::token;

use crate::error::AuthError;
use crate::password::{self, Hasher};
use crate::store::{UserRecord, UserStore};

/// How tokens are signed and for how long they last (from the configuration).
#[derive(Clone)]
pub struct TokenSettings {
    pub secret: String,
    pub ttl_secs: u64,
}

impl std::fmt::Debug for TokenSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSettings")
            .field("ttl_secs", &self.ttl_secs)
            .finish_non_exhaustive()
    }
}

/// Creates a user. The name is unique ignoring case; the case given here is kept for display.
pub async fn register(
    users: &UserStore,
    hasher: &Hasher,
    creds: Credentials,
) -> Result<UserView, AuthError> {
    ids::validate_username(&creds.username)?;
    ids::validate_password(&creds.password)?;
    let password_hash = hasher.hash(creds.password).await?;
    let record = UserRecord {
        user_id: ids::new_id(),
        username: creds.username,
        password_hash,
        created_at: time::now(),
    };
    users.create(&record).await.map_err(|e| match e {
        crate::store::StoreError::Taken => AuthError::UsernameTaken,
        other => AuthError::Store(other),
    })?;
    tracing::info!(user_id = %record.user_id, username = %record.username, "user registered");
    Ok(UserView {
        user_id: record.user_id,
        username: record.username,
    })
}

/// Checks a password and issues a token valid from `now_unix`.
///
/// An unknown user and a wrong password give the same error, and both cost one argon2 verify,
/// so neither the answer nor its timing tells whether a username exists.
pub async fn login(
    users: &UserStore,
    tokens: &TokenSettings,
    hasher: &Hasher,
    creds: Credentials,
    now_unix: i64,
) -> Result<LoginReply, AuthError> {
    ids::validate_username(&creds.username)?;
    ids::validate_password(&creds.password)?;
    let record = users.find(&creds.username).await?;
    let phc = record
        .as_ref()
        .map_or(password::DUMMY_HASH, |r| r.password_hash.as_str())
        .to_string();
    let matches = hasher.verify(creds.password, phc).await?;
    let record = match record {
        Some(record) if matches => record,
        _ => return Err(AuthError::InvalidCredentials),
    };
    let (token, claims) = token::issue(
        &tokens.secret,
        &record.user_id,
        &record.username,
        now_unix,
        tokens.ttl_secs,
    )?;
    Ok(LoginReply {
        token,
        token_type: "Bearer".into(),
        expires_at: time::from_unix_secs(claims.exp),
        user_id: record.user_id,
        username: record.username,
    })
}
