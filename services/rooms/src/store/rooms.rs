//! Room records (`dyschat_rooms`) and the room list's index (`dyschat_room_index`).
//!
//! The list walks the index's stream from the cursor with `next_by_subj` (creation order, one
//! entry per room, never rewritten), then reads that stretch's room records in one `multi_last`:
//! what may change (name, visibility, deletion) is decided on the records, so the index never
//! needs rewriting and the list's order stays stable across pages.

use std::collections::HashMap;

use async_nats::jetstream::kv::{self, UpdateErrorKind};
use dyschat_protocol::layout::{kv_key, kv_stream, kv_subject, ROOMS_BUCKET, ROOM_INDEX_BUCKET};
use dyschat_protocol::policy::RoomKind;

use super::{create, delete, unavailable, value, Store, StoreError};
use crate::paging::Cursor;
use crate::records::{decode, encode, RoomIndexEntry, RoomRecord};

/// One stretch of the room index: the rooms in creation order and where the next stretch
/// starts (`None`: the index ends here).
#[derive(Debug, Default)]
pub(crate) struct IndexStretch {
    /// `(sequence, room_id, kind)` of each entry (markers of removed entries skipped).
    pub entries: Vec<(u64, String, RoomKind)>,
    pub next: Option<Cursor>,
}

impl Store {
    /// Stores a new room: its record, then (unless it is a direct room, which no list shows)
    /// its index entry, so a listed room always has a record. `false`: the record existed.
    pub async fn create_room(&self, record: &RoomRecord) -> Result<bool, StoreError> {
        let key = record.room_id.as_str();
        if !create(&self.rooms, ROOMS_BUCKET, key, encode(key, record)?).await? {
            return Ok(false);
        }
        if record.kind != RoomKind::Direct {
            let entry = record.index_entry();
            create(
                &self.room_index,
                ROOM_INDEX_BUCKET,
                key,
                encode(key, &entry)?,
            )
            .await?;
        }
        Ok(true)
    }

    /// The room's record (deleted ones too: the caller decides) and its revision.
    pub async fn room(&self, room_id: &str) -> Result<Option<(RoomRecord, u64)>, StoreError> {
        value(&self.rooms, ROOMS_BUCKET, room_id).await
    }

    /// Writes `record` if the room is still at `revision`: the new revision, or `None` when the
    /// record changed meanwhile (read it again).
    pub async fn update_room(
        &self,
        record: &RoomRecord,
        revision: u64,
    ) -> Result<Option<u64>, StoreError> {
        let key = record.room_id.as_str();
        match self.rooms.update(key, encode(key, record)?, revision).await {
            Ok(revision) => Ok(Some(revision)),
            Err(e) if e.kind() == UpdateErrorKind::WrongLastRevision => Ok(None),
            Err(e) => Err(unavailable(ROOMS_BUCKET, e)),
        }
    }

    /// Up to `batch` entries of the room index from `cursor` on.
    pub async fn index_stretch(
        &self,
        cursor: Cursor,
        batch: usize,
    ) -> Result<IndexStretch, StoreError> {
        let filter = kv_subject(ROOM_INDEX_BUCKET, "*");
        let read = self
            .direct
            .next_by_subject(&kv_stream(ROOM_INDEX_BUCKET), cursor.0, &filter, batch)
            .await?;
        let next = match (read.next_sequence(), read.num_pending) {
            (Some(next), pending) if pending > 0 => Some(Cursor(next)),
            _ => None,
        };
        let mut entries = Vec::with_capacity(read.messages.len());
        for message in read.messages {
            if message.operation != kv::Operation::Put {
                continue;
            }
            let Some(id) = kv_key(ROOM_INDEX_BUCKET, &message.subject) else {
                continue;
            };
            let entry: RoomIndexEntry = decode(id, &message.payload)?;
            entries.push((message.sequence, id.to_string(), entry.kind));
        }
        Ok(IndexStretch { entries, next })
    }

    /// The records of `ids` that exist (deleted ones too), with their revisions, in one batch.
    pub async fn rooms_by_id(
        &self,
        ids: &[String],
    ) -> Result<HashMap<String, (RoomRecord, u64)>, StoreError> {
        let mut records = HashMap::with_capacity(ids.len());
        if ids.is_empty() {
            return Ok(records);
        }
        for (id, message) in self.last_of(ROOMS_BUCKET, ids).await? {
            if message.operation == kv::Operation::Put {
                let record = decode(&id, &message.payload)?;
                records.insert(id, (record, message.sequence));
            }
        }
        Ok(records)
    }

    /// Takes the room out of the list.
    pub async fn remove_index_entry(&self, room_id: &str) -> Result<(), StoreError> {
        delete(&self.room_index, ROOM_INDEX_BUCKET, room_id).await
    }

    /// Removes the room record itself, the last step of a deletion.
    pub async fn remove_room(&self, room_id: &str) -> Result<(), StoreError> {
        self.rooms
            .purge(room_id)
            .await
            .map_err(|e| unavailable(ROOMS_BUCKET, e))
    }
}
