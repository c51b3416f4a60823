//! The three buckets the service uses: rooms and member sets (read-write) and presence
//! (read-only; ws-agents write it).
//!
//! A member set is changed only by compare-and-set: read the entry with its revision, apply the
//! [`Change`], write back expecting that revision. A concurrent writer makes the write fail with
//! "wrong last sequence"; we re-read and re-apply, so no update is ever lost, whatever the number
//! of rooms service instances.

use std::time::Duration;

use async_nats::jetstream::kv::{self, Operation};
use futures::TryStreamExt;

use crate::records::{decode, encode, Change, MemberSet, RoomRecord};

/// How often a member-set update re-reads and retries after losing a race before giving up.
pub const MAX_CAS_ATTEMPTS: u32 = 50;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("room store unavailable: {0}")]
    Unavailable(String),
    #[error("record {key} is corrupt: {detail}")]
    Corrupt { key: String, detail: String },
    /// A key that must be new (a fresh ULID) already existed.
    #[error("key {0} already exists")]
    Exists(String),
    #[error("member set of room {room_id} still conflicting after {attempts} attempts")]
    Contended { room_id: String, attempts: u32 },
}

fn unavailable(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

#[derive(Clone)]
pub struct RoomStore {
    rooms: kv::Store,
    members: kv::Store,
    presence: kv::Store,
}

impl RoomStore {
    pub fn new(rooms: kv::Store, members: kv::Store, presence: kv::Store) -> Self {
        RoomStore {
            rooms,
            members,
            presence,
        }
    }

    /// Stores a new room with its first member set. The member set is written first, so a room
    /// is never visible without its owner as a member, even if we crash in between.
    pub async fn create_room(
        &self,
        record: &RoomRecord,
        members: &MemberSet,
    ) -> Result<(), StoreError> {
        let key = record.room_id.as_str();
        create(&self.members, key, encode(key, members)?).await?;
        create(&self.rooms, key, encode(key, record)?).await
    }

    pub async fn room(&self, room_id: &str) -> Result<Option<RoomRecord>, StoreError> {
        match self.rooms.get(room_id).await.map_err(unavailable)? {
            Some(bytes) => decode(room_id, &bytes).map(Some),
            None => Ok(None),
        }
    }

    /// Every room id, in no particular order.
    pub async fn room_ids(&self) -> Result<Vec<String>, StoreError> {
        keys(&self.rooms).await
    }

    /// The room's member set; empty when it has none (never the case for a room created by
    /// [`RoomStore::create_room`]).
    pub async fn members(&self, room_id: &str) -> Result<MemberSet, StoreError> {
        match self.members.get(room_id).await.map_err(unavailable)? {
            Some(bytes) => decode(room_id, &bytes),
            None => Ok(MemberSet::default()),
        }
    }

    /// Keys of the presence bucket, `<user_id>.<agent_id>`, one per user and agent with an open
    /// socket.
    pub async fn presence_keys(&self) -> Result<Vec<String>, StoreError> {
        keys(&self.presence).await
    }

    /// Applies `change` to the room's member set by compare-and-set and returns whether it
    /// changed anything (no write happens when it did not).
    pub async fn change_members(&self, room_id: &str, change: &Change) -> Result<bool, StoreError> {
        for attempt in 0..MAX_CAS_ATTEMPTS {
            if attempt > 0 {
                tokio::time::sleep(backoff(attempt)).await;
            }
            let entry = self.members.entry(room_id).await.map_err(unavailable)?;
            let (mut set, revision) = match entry {
                Some(e) if e.operation == Operation::Put => {
                    (decode(room_id, &e.value)?, Some(e.revision))
                }
                // Deleted or purged: an empty set, overwritten at that revision.
                Some(e) => (MemberSet::default(), Some(e.revision)),
                None => (MemberSet::default(), None),
            };
            if !change.apply(&mut set) {
                return Ok(false);
            }
            let value = encode(room_id, &set)?;
            // Err((lost_race, detail)): a lost race is retried, anything else is reported.
            let written = match revision {
                Some(revision) => self
                    .members
                    .update(room_id, value, revision)
                    .await
                    .map(drop)
                    .map_err(|e| {
                        (
                            e.kind() == kv::UpdateErrorKind::WrongLastRevision,
                            e.to_string(),
                        )
                    }),
                None => self
                    .members
                    .create(room_id, value)
                    .await
                    .map(drop)
                    .map_err(|e| {
                        (
                            e.kind() == kv::CreateErrorKind::AlreadyExists,
                            e.to_string(),
                        )
                    }),
            };
            match written {
                Ok(()) => return Ok(true),
                Err((false, detail)) => return Err(StoreError::Unavailable(detail)),
                Err((true, _)) => {}
            }
            tracing::debug!(%room_id, attempt, "member set changed under us, retrying");
        }
        Err(StoreError::Contended {
            room_id: room_id.to_string(),
            attempts: MAX_CAS_ATTEMPTS,
        })
    }
}

/// A random pause that grows with the attempt number (capped), so writers that collided spread
/// out instead of colliding again in lock-step.
fn backoff(attempt: u32) -> Duration {
    let cap_ms = (2 + u64::from(attempt) * 4).min(50);
    Duration::from_millis(rand::random_range(1..=cap_ms))
}

async fn create(store: &kv::Store, key: &str, value: bytes::Bytes) -> Result<(), StoreError> {
    match store.create(key, value).await {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => {
            Err(StoreError::Exists(key.to_string()))
        }
        Err(e) => Err(unavailable(e)),
    }
}

async fn keys(store: &kv::Store) -> Result<Vec<String>, StoreError> {
    store
        .keys()
        .await
        .map_err(unavailable)?
        .try_collect()
        .await
        .map_err(unavailable)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_stays_small_and_positive() {
        for attempt in 1..MAX_CAS_ATTEMPTS {
            let pause = backoff(attempt);
            assert!(pause >= Duration::from_millis(1) && pause <= Duration::from_millis(50));
        }
    }
}
