//! The public directory of users: what anyone may know of a user (`{user_id, username}`, never
//! a password hash), kept by auth next to the users bucket in two buckets:
//!
//! * `dyschat_usernames`, keyed by [`layout::username_index_key`] (one token per lower-cased
//!   character), so the users whose name starts with `al` are the key `a.l` and the subject
//!   filter `a.l.>`: a search is one batched direct get of that filter (plus one get of the
//!   exact key), whatever the number of users;
//! * `dyschat_user_ids`, keyed by user id: the other services' lookup of a user by id.
//!
//! Both are written after the user record at registration. Users registered before the
//! directory existed are added by [`Directory::backfill`] at start (bounded, and writing only
//! what is missing, so running it again costs reads only).

use std::time::Duration;

use async_nats::jetstream::kv::{self, Operation};
use dyschat_protocol::layout::{
    self, kv_key, kv_stream, kv_subject, USERNAMES_BUCKET, USERS_BUCKET, USER_IDS_BUCKET,
};
use dyschat_protocol::wire::UserView;
use dyschat_runtime::direct::{DirectError, DirectGet, StoredMessage};

use crate::store::{StoreError, UserRecord};

/// How long one batched read may take.
const DIRECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Users read per round of the backfill.
const BACKFILL_BATCH: usize = 256;
/// The most users one backfill goes through, and how long it may take.
pub const BACKFILL_MAX_USERS: usize = 1_000_000;
pub const BACKFILL_BOUND: Duration = Duration::from_secs(600);

#[derive(Clone)]
pub struct Directory {
    usernames: kv::Store,
    ids: kv::Store,
    direct: DirectGet,
}

fn unavailable(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

impl From<DirectError> for StoreError {
    fn from(e: DirectError) -> Self {
        unavailable(e)
    }
}

impl Directory {
    pub fn new(usernames: kv::Store, ids: kv::Store, client: async_nats::Client) -> Self {
        Directory {
            usernames,
            ids,
            direct: DirectGet::new(client, DIRECT_TIMEOUT),
        }
    }

    /// Lists `user` in both buckets.
    pub async fn record(&self, user: &UserView) -> Result<(), StoreError> {
        let Some(name_key) = layout::username_index_key(&user.username) else {
            return Err(StoreError::Corrupt {
                key: user.user_id.clone(),
                detail: format!("username {:?} has no index key", user.username),
            });
        };
        let value = encode(user)?;
        let (by_name, by_id) = tokio::join!(
            self.usernames.put(&name_key, value.clone()),
            self.ids.put(&user.user_id, value),
        );
        by_name.map_err(unavailable)?;
        by_id.map_err(unavailable)?;
        Ok(())
    }

    /// The user with id `user_id`, if any.
    pub async fn lookup(&self, user_id: &str) -> Result<Option<UserView>, StoreError> {
        match self.ids.get(user_id).await.map_err(unavailable)? {
            Some(bytes) => decode(user_id, &bytes).map(Some),
            None => Ok(None),
        }
    }

    /// The users named exactly `names` ignoring case (each at most once, in the order of
    /// `names`; names nobody has are left out): one batched read of their index keys.
    pub async fn by_names(&self, names: &[String]) -> Result<Vec<UserView>, StoreError> {
        let keys: Vec<String> = names
            .iter()
            .filter_map(|n| layout::username_index_key(n))
            .collect();
        let subjects: Vec<String> = keys
            .iter()
            .map(|k| kv_subject(USERNAMES_BUCKET, k))
            .collect();
        let batch = self
            .direct
            .multi_last(
                &kv_stream(USERNAMES_BUCKET),
                &subjects,
                subjects.len().max(1),
                None,
            )
            .await?;
        let mut found = std::collections::HashMap::with_capacity(batch.messages.len());
        for message in batch.messages {
            if message.operation != Operation::Put {
                continue;
            }
            if let Some(key) = kv_key(USERNAMES_BUCKET, &message.subject) {
                found.insert(key.to_string(), decode(key, &message.payload)?);
            }
        }
        let mut users: Vec<UserView> = Vec::with_capacity(found.len());
        for key in keys {
            if let Some(user) = found.remove(&key) {
                users.push(user);
            }
        }
        Ok(users)
    }

    /// Up to `limit` users whose username starts with `prefix` ignoring case: the exact name
    /// first, then the others by name. A prefix no username can start with finds nobody.
    pub async fn search(&self, prefix: &str, limit: usize) -> Result<Vec<UserView>, StoreError> {
        let Some((exact, longer)) = layout::username_prefix(prefix) else {
            return Ok(Vec::new());
        };
        let filter = kv_subject(USERNAMES_BUCKET, &longer);
        let stream = kv_stream(USERNAMES_BUCKET);
        let (exact, longer) = tokio::join!(
            self.usernames.get(&exact),
            self.direct.next_by_subject(&stream, 0, &filter, limit),
        );
        let mut users = Vec::with_capacity(limit);
        if let Some(bytes) = exact.map_err(unavailable)? {
            users.push(decode(prefix, &bytes)?);
        }
        let mut others = Vec::new();
        for message in longer?.messages {
            if message.operation == Operation::Put {
                others.push(decode(&message.subject, &message.payload)?);
            }
        }
        others.sort_by_key(|u: &UserView| u.username.to_ascii_lowercase());
        users.extend(others);
        users.truncate(limit);
        Ok(users)
    }

    /// Lists every user of the users bucket missing from the directory; returns how many it
    /// added. Reads the users in batches (one batched read of their directory keys per batch)
    /// and writes only what is missing.
    pub async fn backfill(&self, client: &async_nats::Client) -> Result<usize, StoreError> {
        let users = DirectGet::new(client.clone(), DIRECT_TIMEOUT);
        let stream = kv_stream(USERS_BUCKET);
        let filter = kv_subject(USERS_BUCKET, ">");
        let (mut from, mut seen, mut added) = (0, 0, 0);
        while seen < BACKFILL_MAX_USERS {
            let batch = users
                .next_by_subject(&stream, from, &filter, BACKFILL_BATCH)
                .await?;
            let Some(next) = batch.next_sequence() else {
                break;
            };
            from = next;
            seen += batch.messages.len();
            let found: Vec<UserView> = batch
                .messages
                .iter()
                .filter(|m| m.operation == Operation::Put)
                .filter_map(listed_user)
                .collect();
            added += self.add_missing(&found).await?;
            if batch.num_pending == 0 {
                break;
            }
        }
        Ok(added)
    }

    /// Writes the directory entries of `users` that one of the two buckets lacks.
    async fn add_missing(&self, users: &[UserView]) -> Result<usize, StoreError> {
        let by_id: Vec<String> = users
            .iter()
            .map(|u| kv_subject(USER_IDS_BUCKET, &u.user_id))
            .collect();
        let by_name: Vec<String> = users
            .iter()
            .filter_map(|u| layout::username_index_key(&u.username))
            .map(|k| kv_subject(USERNAMES_BUCKET, &k))
            .collect();
        let (ids_stream, names_stream) = (kv_stream(USER_IDS_BUCKET), kv_stream(USERNAMES_BUCKET));
        let (ids, names) = tokio::try_join!(
            self.direct
                .multi_last(&ids_stream, &by_id, by_id.len().max(1), None),
            self.direct
                .multi_last(&names_stream, &by_name, by_name.len().max(1), None),
        )?;
        let present = |batch: &dyschat_runtime::direct::Batch, bucket: &str, key: &str| {
            batch
                .messages
                .iter()
                .any(|m| m.operation == Operation::Put && kv_key(bucket, &m.subject) == Some(key))
        };
        let mut added = 0;
        for user in users {
            let name_key = layout::username_index_key(&user.username).unwrap_or_default();
            if present(&ids, USER_IDS_BUCKET, &user.user_id)
                && present(&names, USERNAMES_BUCKET, &name_key)
            {
                continue;
            }
            self.record(user).await?;
            added += 1;
        }
        Ok(added)
    }
}

/// The public part of a stored user record, `None` for one that does not decode (logged).
fn listed_user(message: &StoredMessage) -> Option<UserView> {
    match UserRecord::decode(&message.subject, &message.payload) {
        Ok(record) => Some(UserView {
            user_id: record.user_id,
            username: record.username,
        }),
        Err(e) => {
            tracing::warn!(error = %e, "user record skipped by the directory backfill");
            None
        }
    }
}

fn encode(user: &UserView) -> Result<bytes::Bytes, StoreError> {
    serde_json::to_vec(user)
        .map(bytes::Bytes::from)
        .map_err(|e| StoreError::Corrupt {
            key: user.user_id.clone(),
            detail: e.to_string(),
        })
}

fn decode(key: &str, bytes: &[u8]) -> Result<UserView, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt {
        key: key.to_string(),
        detail: e.to_string(),
    })
}
