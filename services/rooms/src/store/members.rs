//! Member records (`dyschat_members`, `<room_id>.<user_id>`).
//!
//! The key of (room, user) is also what orders every change to the user's standing in the
//! room: a change stored elsewhere (an invitation, a ban, a block in a direct room) is followed
//! by a [`Store::touch`] of the key, so its revision moves and the events and `access` answers
//! about the pair stay ordered by one number.
//!
//! A join creates the member record, a leave deletes it at the revision it read: both are
//! conditional writes on one key, so two rooms services joining the same user at once make one
//! record (the loser sees it and changes nothing), and a leave never deletes a record written after
//! it looked. The record is the truth; the index is kept so that it is never missing an entry
//! of a member (see [`Store::index_join`] and [`Store::index_leave`]); an entry left behind by a
//! failed join names a room the user is not in, and readers check the record.

use std::time::Duration;

use std::collections::{HashMap, HashSet};

use async_nats::jetstream::kv::{Operation, UpdateErrorKind};
use dyschat_protocol::layout::{kv_stream, kv_subject, member_key, members_filter, MEMBERS_BUCKET};
use dyschat_protocol::wire::Role;

use dyschat_runtime::direct::{DirectError, StoredMessage, MAX_RESULTS};

use super::{entry, unavailable, Store, StoreError, MAX_ATTEMPTS};
use crate::paging::{snapshot_page, Cursor};
use crate::records::{decode, encode, MemberRecord};

/// What a join or leave did to a member record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Change {
    /// Whether this request changed anything (else the record already was as asked).
    pub changed: bool,
    /// The record's revision after the request: the new record or delete marker when it
    /// changed, else the one found (0 for a key never written).
    pub revision: u64,
}

/// A member record as the membership check reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum MemberState {
    Member {
        record: MemberRecord,
        revision: u64,
    },
    /// Not a member; `revision` is the delete marker's, or 0 for someone never a member.
    Absent {
        revision: u64,
    },
}

/// The largest room read whole for a page: its keys (members and leavers' markers) must fit one
/// `multi_last` ([`MAX_RESULTS`]).
pub(crate) const SNAPSHOT_MEMBERS: u64 = 500;

/// The pause before retry `attempt` of a write that lost a race: short, growing, bounded.
pub(super) fn retry_pause(attempt: u32) -> Duration {
    Duration::from_millis(u64::from(attempt.min(10)) * 2)
}

impl Store {
    /// One KV get: the membership check.
    pub async fn member(&self, room_id: &str, user_id: &str) -> Result<MemberState, StoreError> {
        let key = member_key(room_id, user_id);
        Ok(match entry(&self.members, MEMBERS_BUCKET, &key).await? {
            Some(e) if e.operation == Operation::Put => MemberState::Member {
                record: decode(&key, &e.value)?,
                revision: e.revision,
            },
            Some(e) => MemberState::Absent {
                revision: e.revision,
            },
            None => MemberState::Absent { revision: 0 },
        })
    }

    /// Creates the member record unless one exists (idempotent join). Expects the key to be new,
    /// then, after a lost race or a former membership, re-reads it: a record means no change,
    /// a marker means a rejoin at the marker's revision.
    pub async fn create_member(
        &self,
        room_id: &str,
        record: &MemberRecord,
    ) -> Result<Change, StoreError> {
        let key = member_key(room_id, &record.user_id);
        let value = encode(&key, record)?;
        let mut expected = 0;
        for attempt in 0..MAX_ATTEMPTS {
            // Attempt 1 is the rejoin after a marker; later ones lost a race or read a replica
            // behind the leader.
            if attempt > 1 {
                tokio::time::sleep(retry_pause(attempt)).await;
            }
            match self.members.update(&key, value.clone(), expected).await {
                Ok(revision) => {
                    return Ok(Change {
                        changed: true,
                        revision,
                    })
                }
                Err(e) if e.kind() == UpdateErrorKind::WrongLastRevision => {}
                Err(e) => return Err(unavailable(MEMBERS_BUCKET, e)),
            }
            match entry(&self.members, MEMBERS_BUCKET, &key).await? {
                Some(e) if e.operation == Operation::Put => {
                    return Ok(Change {
                        changed: false,
                        revision: e.revision,
                    })
                }
                Some(e) => expected = e.revision,
                None => expected = 0,
            }
        }
        Err(StoreError::Contended {
            key,
            attempts: MAX_ATTEMPTS,
        })
    }

    /// Deletes the member record if there is one (idempotent leave), at the revision read.
    pub async fn delete_member(&self, room_id: &str, user_id: &str) -> Result<Change, StoreError> {
        let key = member_key(room_id, user_id);
        for attempt in 0..MAX_ATTEMPTS {
            if attempt > 0 {
                tokio::time::sleep(retry_pause(attempt)).await;
            }
            let revision = match entry(&self.members, MEMBERS_BUCKET, &key).await? {
                Some(e) if e.operation == Operation::Put => e.revision,
                Some(e) => {
                    return Ok(Change {
                        changed: false,
                        revision: e.revision,
                    })
                }
                None => {
                    return Ok(Change {
                        changed: false,
                        revision: 0,
                    })
                }
            };
            if let Some(revision) = self.delete_at(MEMBERS_BUCKET, &key, revision).await? {
                return Ok(Change {
                    changed: true,
                    revision,
                });
            }
        }
        Err(StoreError::Contended {
            key,
            attempts: MAX_ATTEMPTS,
        })
    }

    /// One page of the room's members in the order they (last) joined, from `cursor` on.
    /// `members` (the room's member count) picks the read: a room of at most
    /// [`SNAPSHOT_MEMBERS`] is read whole with one `multi_last`, a larger one (or one whose
    /// leavers' markers make the snapshot too large) a page at a time with `next_by_subj`.
    pub async fn member_page(
        &self,
        room_id: &str,
        cursor: Cursor,
        limit: usize,
        members: u64,
    ) -> Result<(Vec<MemberRecord>, Option<Cursor>), StoreError> {
        let stream = kv_stream(MEMBERS_BUCKET);
        let filter = kv_subject(MEMBERS_BUCKET, &members_filter(room_id));
        let decode = |m: &StoredMessage| decode(&m.subject, &m.payload).map(Some);
        if members <= SNAPSHOT_MEMBERS {
            let filters = [filter.clone()];
            match self
                .direct
                .multi_last(&stream, &filters, MAX_RESULTS, None)
                .await
            {
                Ok(snapshot) => return snapshot_page(&snapshot.messages, cursor, limit, decode),
                Err(DirectError::TooManyResults) => {}
                Err(e) => return Err(e.into()),
            }
        }
        self.page_by_subject(&stream, &filter, cursor, limit, decode)
            .await
    }

    /// Moves the (room, user) key to a new revision without changing what it says (a member's
    /// record is written again, anyone else's key gets a fresh delete marker): the change just
    /// stored elsewhere is now ordered after everything before it. Returns the new revision.
    pub async fn touch(&self, room_id: &str, user_id: &str) -> Result<u64, StoreError> {
        let key = member_key(room_id, user_id);
        for attempt in 0..MAX_ATTEMPTS {
            if attempt > 0 {
                tokio::time::sleep(retry_pause(attempt)).await;
            }
            let found = entry(&self.members, MEMBERS_BUCKET, &key).await?;
            let written = match found {
                Some(e) if e.operation == Operation::Put => {
                    match self.members.update(&key, e.value, e.revision).await {
                        Ok(revision) => Some(revision),
                        Err(e) if e.kind() == UpdateErrorKind::WrongLastRevision => None,
                        Err(e) => return Err(unavailable(MEMBERS_BUCKET, e)),
                    }
                }
                other => {
                    let revision = other.map_or(0, |e| e.revision);
                    self.delete_at(MEMBERS_BUCKET, &key, revision).await?
                }
            };
            if let Some(revision) = written {
                return Ok(revision);
            }
        }
        Err(StoreError::Contended {
            key,
            attempts: MAX_ATTEMPTS,
        })
    }

    /// Gives the member `role`: the new record and revision, or `None` when the user is not a
    /// member (any more).
    pub async fn set_role(
        &self,
        room_id: &str,
        user_id: &str,
        role: Role,
    ) -> Result<Option<(MemberRecord, u64)>, StoreError> {
        let key = member_key(room_id, user_id);
        for attempt in 0..MAX_ATTEMPTS {
            if attempt > 0 {
                tokio::time::sleep(retry_pause(attempt)).await;
            }
            let (mut record, revision) = match self.member(room_id, user_id).await? {
                MemberState::Member { record, revision } => (record, revision),
                MemberState::Absent { .. } => return Ok(None),
            };
            if record.role == role {
                return Ok(Some((record, revision)));
            }
            record.role = role;
            match self
                .members
                .update(&key, encode(&key, &record)?, revision)
                .await
            {
                Ok(revision) => return Ok(Some((record, revision))),
                Err(e) if e.kind() == UpdateErrorKind::WrongLastRevision => {}
                Err(e) => return Err(unavailable(MEMBERS_BUCKET, e)),
            }
        }
        Err(StoreError::Contended {
            key,
            attempts: MAX_ATTEMPTS,
        })
    }

    /// The member record of `user_id` in each of `room_ids` (at most
    /// [`MAX_RESULTS`]), by room: one batch for a page of the user's rooms.
    pub async fn member_of_each(
        &self,
        room_ids: &[String],
        user_id: &str,
    ) -> Result<HashMap<String, MemberRecord>, StoreError> {
        let keys: Vec<String> = room_ids.iter().map(|r| member_key(r, user_id)).collect();
        let mut found = HashMap::with_capacity(keys.len());
        if keys.is_empty() {
            return Ok(found);
        }
        for (key, message) in self.last_of(MEMBERS_BUCKET, &keys).await? {
            if message.operation != Operation::Put {
                continue;
            }
            if let Some((room_id, _)) = dyschat_protocol::layout::parse_member_key(&key) {
                found.insert(room_id.to_string(), decode(&key, &message.payload)?);
            }
        }
        Ok(found)
    }
}

impl Store {
    /// Which of `user_ids` (at most [`MAX_RESULTS`]) are members of `room_id`: one batch.
    pub async fn members_among(
        &self,
        room_id: &str,
        user_ids: &[String],
    ) -> Result<HashSet<String>, StoreError> {
        let keys: Vec<String> = user_ids.iter().map(|u| member_key(room_id, u)).collect();
        let mut found = HashSet::with_capacity(keys.len());
        if keys.is_empty() {
            return Ok(found);
        }
        for (key, message) in self.last_of(MEMBERS_BUCKET, &keys).await? {
            if message.operation != Operation::Put {
                continue;
            }
            if let Some((_, user_id)) = dyschat_protocol::layout::parse_member_key(&key) {
                found.insert(user_id.to_string());
            }
        }
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_pauses_stay_short() {
        let total: Duration = (0..MAX_ATTEMPTS).map(retry_pause).sum();
        assert!(total <= Duration::from_millis(200), "{total:?}");
        assert!(retry_pause(2) > retry_pause(1));
    }
}
