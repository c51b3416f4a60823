//! The operations of the service, free of transport: they take a decoded body and return a
//! typed result, and [`crate::service`] wires them to NATS.

use dyschat_protocol::wire::{
    Credentials, LoginReply, UserList, UserRequest, UserSearchRequest, UserView, UsersByNameRequest,
};
use dyschat_protocol::{ids, mentions, time, ApiError};
use dyschat_runtime::token;

use crate::directory::Directory;
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
/// Then lists them in the public directory: the account exists once its record is stored, so a
/// directory that could not be written is logged (the backfill at the next start lists them)
/// rather than failing a registration that cannot be retried.
pub async fn register(
    users: &UserStore,
    directory: &Directory,
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
    let user = UserView {
        user_id: record.user_id,
        username: record.username,
    };
    if let Err(e) = directory.record(&user).await {
        tracing::warn!(error = %e, user_id = %user.user_id, "user not listed in the directory yet");
    }
    Ok(user)
}

/// Users whose username starts with `q` ignoring case (`q` 1 to 32 characters, `limit` 1..=50,
/// default 20).
pub async fn search(directory: &Directory, req: UserSearchRequest) -> Result<UserList, AuthError> {
    type R = UserSearchRequest;
    let chars = req.q.chars().count();
    if !(1..=R::MAX_QUERY_CHARS).contains(&chars) {
        return Err(ApiError::bad_request("q must be 1 to 32 characters").into());
    }
    let limit = match req.limit {
        0 => R::DEFAULT_LIMIT,
        n if n <= R::MAX_LIMIT => n,
        _ => return Err(ApiError::bad_request("limit must be 1 to 50").into()),
    };
    let users = directory.search(&req.q, limit).await?;
    Ok(UserList {
        users,
        next_cursor: None,
    })
}

/// The users with exactly these usernames ignoring case, in the order asked, at most
/// [`mentions::MAX_CANDIDATES`] names (more is 400).
pub async fn users_by_name(
    directory: &Directory,
    req: UsersByNameRequest,
) -> Result<UserList, AuthError> {
    if req.names.len() > mentions::MAX_CANDIDATES {
        return Err(ApiError::bad_request("at most 100 names").into());
    }
    let users = directory.by_names(&req.names).await?;
    Ok(UserList {
        users,
        next_cursor: None,
    })
}

/// One user by id, `not_found` for an unknown one.
pub async fn user(directory: &Directory, req: UserRequest) -> Result<UserView, AuthError> {
    ids::validate_id("user_id", &req.user_id)?;
    directory
        .lookup(&req.user_id)
        .await?
        .ok_or(AuthError::UnknownUser)
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
