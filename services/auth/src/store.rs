//! The users bucket: one [`UserRecord`] per user, keyed by [`user_key`] of the username.
//!
//! Uniqueness ignoring case rests on the key alone: `create` on a KV bucket is an atomic
//! "write if absent" (an expected-last-revision of 0), so of any number of concurrent
//! registrations of one name exactly one succeeds, with no lock and no read-then-write race.

use async_nats::jetstream::kv;
use bytes::Bytes;
use dyschat_protocol::ids;
use serde::{Deserialize, Serialize};

/// What the bucket holds for a user.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRecord {
    pub user_id: String,
    /// As the user typed it at registration (case preserved).
    pub username: String,
    /// argon2id PHC string.
    pub password_hash: String,
    pub created_at: String,
}

// Hand-written so that a record in a log line never carries the password hash.
impl std::fmt::Debug for UserRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserRecord")
            .field("user_id", &self.user_id)
            .field("username", &self.username)
            .field("created_at", &self.created_at)
            .finish_non_exhaustive()
    }
}

impl UserRecord {
    pub fn encode(&self) -> Result<Bytes, StoreError> {
        serde_json::to_vec(self)
            .map(Bytes::from)
            .map_err(|e| StoreError::Corrupt {
                key: user_key(&self.username),
                detail: e.to_string(),
            })
    }

    pub fn decode(key: &str, bytes: &[u8]) -> Result<Self, StoreError> {
        serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt {
            key: key.to_string(),
            detail: e.to_string(),
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("username is taken")]
    Taken,
    #[error("user store unavailable: {0}")]
    Unavailable(String),
    #[error("user record {key} is corrupt: {detail}")]
    Corrupt { key: String, detail: String },
}

/// The bucket key of a (validated) username.
///
/// [`ids::username_key`] lower-cases, which makes the key unique ignoring case. A username may
/// also contain `.`, which a KV key must not start or end with and which would otherwise split
/// the key into subject tokens (`a..b` is not even a valid subject), so `.` becomes `=`. No
/// username contains `=`, so the mapping stays one-to-one.
pub fn user_key(username: &str) -> String {
    ids::username_key(username).replace('.', "=")
}

/// The users bucket.
#[derive(Clone)]
pub struct UserStore {
    kv: kv::Store,
}

impl UserStore {
    pub fn new(kv: kv::Store) -> Self {
        UserStore { kv }
    }

    /// Stores `record` if no user with that name (ignoring case) exists yet.
    pub async fn create(&self, record: &UserRecord) -> Result<(), StoreError> {
        let key = user_key(&record.username);
        match self.kv.create(&key, record.encode()?).await {
            Ok(_) => Ok(()),
            Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => Err(StoreError::Taken),
            Err(e) => Err(StoreError::Unavailable(e.to_string())),
        }
    }

    /// The user called `username` (ignoring case), if any.
    pub async fn find(&self, username: &str) -> Result<Option<UserRecord>, StoreError> {
        let key = user_key(username);
        match self.kv.get(&key).await {
            Ok(Some(bytes)) => UserRecord::decode(&key, &bytes).map(Some),
            Ok(None) => Ok(None),
            Err(e) => Err(StoreError::Unavailable(e.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> UserRecord {
        UserRecord {
            user_id: "01HZX".into(),
            username: "Alice".into(),
            password_hash: "$argon2id$secret".into(),
            created_at: "2026-01-01T00:00:00.000Z".into(),
        }
    }

    #[test]
    fn record_round_trips() {
        let r = record();
        let bytes = r.encode().unwrap();
        assert_eq!(UserRecord::decode("alice", &bytes).unwrap(), r);
        assert!(matches!(
            UserRecord::decode("alice", b"{not json"),
            Err(StoreError::Corrupt { .. })
        ));
    }

    #[test]
    fn debug_hides_the_hash() {
        assert!(!format!("{:?}", record()).contains("argon2"));
    }

    #[test]
    fn keys_ignore_case_and_are_valid_kv_keys() {
        assert_eq!(user_key("AlIcE"), user_key("alice"));
        assert_ne!(user_key("a.b"), user_key("a_b"));
        assert_ne!(user_key("a.b"), user_key("a-b"));
        for name in [".alice", "alice.", "a..b", "x-y_z.9"] {
            let key = user_key(name);
            assert!(
                !key.starts_with('.') && !key.ends_with('.') && !key.contains('.'),
                "{key}"
            );
        }
    }
}
