//! Each user's membership index (`dyschat_memberships`, `<user_id>.<room_id>`): "my rooms"
//! without touching any room.
//!
//! The member record is the truth; the index is kept so that it is never missing an entry of a
//! member (see [`Store::index_join`] and [`Store::index_leave`]). An entry left behind by a
//! failed join, or by a room deleted before its clean-up finished, names a room the user is not
//! in, and readers check the member record.

use async_nats::jetstream::kv::Operation;
use dyschat_protocol::layout::{
    kv_key, kv_stream, kv_subject, membership_key, memberships_filter, parse_member_key,
    MEMBERSHIPS_BUCKET,
};

use super::{delete, entry, unavailable, Store, StoreError};
use crate::paging::{Cursor, Page};
use crate::records::{decode, encode, MembershipEntry};

impl Store {
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

    /// Removes the entry whatever it holds: the room is gone.
    pub async fn index_forget(&self, user_id: &str, room_id: &str) -> Result<(), StoreError> {
        let key = membership_key(user_id, room_id);
        delete(&self.memberships, MEMBERSHIPS_BUCKET, &key).await
    }

    /// One page of the user's index entries (in the order last joined), from `cursor` on.
    pub async fn index_page(
        &self,
        user_id: &str,
        cursor: Cursor,
        limit: usize,
    ) -> Result<(Vec<(String, MembershipEntry)>, Option<Cursor>), StoreError> {
        let stream = kv_stream(MEMBERSHIPS_BUCKET);
        let filter = kv_subject(MEMBERSHIPS_BUCKET, &memberships_filter(user_id));
        let mut page = Page::new(cursor, limit);
        while let Some((from, batch)) = page.next_read() {
            let batch = self
                .direct
                .next_by_subject(&stream, from, &filter, batch)
                .await?;
            page.absorb(batch, |m| {
                let Some(key) = kv_key(MEMBERSHIPS_BUCKET, &m.subject) else {
                    return Ok(None);
                };
                let Some((_, room_id)) = parse_member_key(key) else {
                    return Ok(None);
                };
                let entry: MembershipEntry = decode(key, &m.payload)?;
                Ok::<_, StoreError>(Some((room_id.to_string(), entry)))
            })?;
        }
        Ok(page.finish())
    }
}
