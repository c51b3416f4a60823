//! Room records (`dyschat_rooms`) and the room list's index (`dyschat_room_index`).
//!
//! The list pages the index's stream from the cursor with `next_by_subj`, then reads the page's
//! room records and member counts in one `multi_last` each: three batched reads per page, however
//! many rooms exist (the list used to read every key of the rooms bucket).

use std::collections::HashMap;

use async_nats::jetstream::kv::{self, CreateErrorKind};
use dyschat_protocol::layout::{kv_key, kv_stream, kv_subject, ROOMS_BUCKET, ROOM_INDEX_BUCKET};

use super::{entry, unavailable, Store, StoreError};
use crate::paging::Cursor;
use crate::records::{decode, encode, RoomRecord};

impl Store {
    /// Stores a new room: its record, then its index entry, so a listed room always has a record.
    pub async fn create_room(&self, record: &RoomRecord) -> Result<(), StoreError> {
        let key = record.room_id.as_str();
        create(&self.rooms, ROOMS_BUCKET, key, encode(key, record)?).await?;
        let entry = record.index_entry();
        create(
            &self.room_index,
            ROOM_INDEX_BUCKET,
            key,
            encode(key, &entry)?,
        )
        .await
    }

    pub async fn room(&self, room_id: &str) -> Result<Option<RoomRecord>, StoreError> {
        match entry(&self.rooms, ROOMS_BUCKET, room_id).await? {
            Some(e) if e.operation == kv::Operation::Put => decode(room_id, &e.value).map(Some),
            _ => Ok(None),
        }
    }

    /// One page of rooms in creation order, from `cursor` on.
    pub async fn room_page(
        &self,
        cursor: Cursor,
        limit: usize,
    ) -> Result<(Vec<RoomRecord>, Option<Cursor>), StoreError> {
        let stream = kv_stream(ROOM_INDEX_BUCKET);
        let filter = kv_subject(ROOM_INDEX_BUCKET, "*");
        let (ids, next) = self
            .page_by_subject(&stream, &filter, cursor, limit, |m| {
                Ok(kv_key(ROOM_INDEX_BUCKET, &m.subject).map(str::to_string))
            })
            .await?;
        let mut records = self.rooms_by_id(&ids).await?;
        let rooms = ids
            .iter()
            .filter_map(|id| {
                let record = records.remove(id);
                if record.is_none() {
                    tracing::warn!(room_id = %id, "indexed room has no record");
                }
                record
            })
            .collect();
        Ok((rooms, next))
    }

    /// The records of `ids` that exist, in one batch.
    async fn rooms_by_id(&self, ids: &[String]) -> Result<HashMap<String, RoomRecord>, StoreError> {
        let subjects: Vec<String> = ids.iter().map(|id| kv_subject(ROOMS_BUCKET, id)).collect();
        let mut records = HashMap::with_capacity(ids.len());
        if subjects.is_empty() {
            return Ok(records);
        }
        let batch = self
            .direct
            .multi_last(&kv_stream(ROOMS_BUCKET), &subjects, subjects.len(), None)
            .await?;
        for message in batch.messages {
            if message.operation != kv::Operation::Put {
                continue;
            }
            if let Some(id) = kv_key(ROOMS_BUCKET, &message.subject) {
                records.insert(id.to_string(), decode(id, &message.payload)?);
            }
        }
        Ok(records)
    }
}

/// Creates `key`, which must be new (room ids are fresh ULIDs).
async fn create(
    store: &kv::Store,
    what: &'static str,
    key: &str,
    value: bytes::Bytes,
) -> Result<(), StoreError> {
    match store.create(key, value).await {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == CreateErrorKind::AlreadyExists => {
            Err(StoreError::Exists(key.to_string()))
        }
        Err(e) => Err(unavailable(what, e)),
    }
}
