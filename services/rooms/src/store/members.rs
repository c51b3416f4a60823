//! Member records (`dyschat_members`, `<room_id>.<user_id>`) and each user's membership index
//! (`dyschat_memberships`, `<user_id>.<room_id>`).
//!
//! A join creates the member record, a leave deletes it at the revision it read: both are
//! conditional writes on one key, so two rooms services joining the same user at once make one
//! record (the loser sees it and changes nothing), and a leave never deletes a record written after
//! it looked. The record is the truth; the index is kept so that it is never missing an entry
//! of a member (see [`Store::index_join`] and [`Store::index_leave`]); an entry left behind by a
//! failed join names a room the user is not in, and readers check the record.

use std::time::Duration;

use async_nats::jetstream::kv::{Operation, UpdateErrorKind};
use dyschat_protocol::layout::{
    kv_stream, kv_subject, member_key, members_filter, membership_key, MEMBERSHIPS_BUCKET,
    MEMBERS_BUCKET,
};

use dyschat_runtime::direct::{DirectError, StoredMessage, MAX_RESULTS};

use super::{entry, unavailable, Store, StoreError, MAX_ATTEMPTS};
use crate::paging::{snapshot_page, Cursor};
use crate::records::{decode, encode, MemberRecord, MembershipEntry};

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
fn retry_pause(attempt: u32) -> Duration {
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

    /// The index entry of a join, written before the member record (and again after a join that
    /// created it, see [`Store::index_leave`]).
    pub async fn index_join(
        &self,
        user_id: &str,
        room_id: &str,
        entry: &MembershipEntry,
    ) -> Result<(), StoreError> {
        let key = membership_key(user_id, room_id);
        self.memberships
            .put(&key, encode(&key, entry)?)
            .await
            .map_err(|e| unavailable(MEMBERSHIPS_BUCKET, e))?;
        Ok(())
    }

    /// The revision of the user's index entry for the room, read by a leave *before* it deletes
    /// the member record.
    pub async fn index_revision(
        &self,
        user_id: &str,
        room_id: &str,
    ) -> Result<Option<u64>, StoreError> {
        let key = membership_key(user_id, room_id);
        Ok(entry(&self.memberships, MEMBERSHIPS_BUCKET, &key)
            .await?
            .filter(|e| e.operation == Operation::Put)
            .map(|e| e.revision))
    }

    /// Removes the index entry after the member record, only if it is still at `revision` (read
    /// before the record was deleted). A join racing this leave rewrites the entry after creating
    /// its record, so either that rewrite comes later, or it moved the revision and this delete
    /// does nothing: a member's entry is never lost.
    pub async fn index_leave(
        &self,
        user_id: &str,
        room_id: &str,
        revision: u64,
    ) -> Result<(), StoreError> {
        let key = membership_key(user_id, room_id);
        if self
            .delete_at(MEMBERSHIPS_BUCKET, &key, revision)
            .await?
            .is_none()
        {
            tracing::debug!(%user_id, %room_id, "membership index entry rewritten meanwhile, kept");
        }
        Ok(())
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
