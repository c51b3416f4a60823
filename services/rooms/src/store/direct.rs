//! Direct rooms by pair of users (`dyschat_dms`) and blocks (`dyschat_blocks`).
//!
//! The pair's key is created with a KV `create` (write if absent), so of any number of requests
//! opening the same two users' room at once, in either order, exactly one room id is kept and
//! every request reads that one.

use async_nats::jetstream::kv::Operation;
use dyschat_protocol::layout::{
    block_key, blocks_filter, dm_key, kv_key, kv_stream, kv_subject, parse_block_key,
    BLOCKS_BUCKET, DMS_BUCKET,
};
use dyschat_protocol::wire::UserView;

use super::{create, delete, put, value, Store, StoreError, MAX_ATTEMPTS};
use crate::paging::Cursor;
use crate::records::{decode, encode, BlockRecord, DmEntry};

impl Store {
    /// The direct room of `a` and `b` (either order), if it was ever opened.
    pub async fn dm(&self, a: &str, b: &str) -> Result<Option<String>, StoreError> {
        let key = dm_key(a, b);
        Ok(value::<DmEntry>(&self.dms, DMS_BUCKET, &key)
            .await?
            .map(|(entry, _)| entry.room_id))
    }

    /// Records `room_id` as the direct room of `a` and `b` unless they have one: the room id
    /// that holds (this one, or the one another request recorded first).
    pub async fn claim_dm(&self, a: &str, b: &str, room_id: &str) -> Result<String, StoreError> {
        let key = dm_key(a, b);
        let entry = DmEntry {
            room_id: room_id.to_string(),
        };
        let bytes = encode(&key, &entry)?;
        for attempt in 0..MAX_ATTEMPTS {
            if attempt > 0 {
                tokio::time::sleep(super::members::retry_pause(attempt)).await;
            }
            if create(&self.dms, DMS_BUCKET, &key, bytes.clone()).await? {
                return Ok(entry.room_id);
            }
            // Taken: read the winner's (a replica may not have it yet, hence the retries).
            if let Some(room_id) = self.dm(a, b).await? {
                return Ok(room_id);
            }
        }
        Err(StoreError::Contended {
            key,
            attempts: MAX_ATTEMPTS,
        })
    }

    /// Whether `blocker` blocks `blocked`.
    pub async fn blocks(&self, blocker: &str, blocked: &str) -> Result<bool, StoreError> {
        let key = block_key(blocker, blocked);
        Ok(value::<BlockRecord>(&self.blocks, BLOCKS_BUCKET, &key)
            .await?
            .is_some())
    }

    /// Which of `users` (at most [`dyschat_runtime::direct::MAX_RESULTS`]) block `blocked`:
    /// one batch (the feed tells nobody about a user they block).
    pub async fn blockers_among(
        &self,
        users: &[String],
        blocked: &str,
    ) -> Result<std::collections::HashSet<String>, StoreError> {
        let keys: Vec<String> = users.iter().map(|u| block_key(u, blocked)).collect();
        let mut found = std::collections::HashSet::new();
        if keys.is_empty() {
            return Ok(found);
        }
        for (key, message) in self.last_of(BLOCKS_BUCKET, &keys).await? {
            if message.operation != Operation::Put {
                continue;
            }
            if let Some((blocker, _)) = parse_block_key(&key) {
                found.insert(blocker.to_string());
            }
        }
        Ok(found)
    }

    pub async fn put_block(
        &self,
        blocker: &str,
        blocked: &str,
        record: &BlockRecord,
    ) -> Result<(), StoreError> {
        let key = block_key(blocker, blocked);
        put(&self.blocks, BLOCKS_BUCKET, &key, encode(&key, record)?).await?;
        Ok(())
    }

    pub async fn remove_block(&self, blocker: &str, blocked: &str) -> Result<(), StoreError> {
        delete(&self.blocks, BLOCKS_BUCKET, &block_key(blocker, blocked)).await
    }

    /// One page of the users `blocker` blocks (in the order blocked), from `cursor` on.
    pub async fn block_page(
        &self,
        blocker: &str,
        cursor: Cursor,
        limit: usize,
    ) -> Result<(Vec<UserView>, Option<Cursor>), StoreError> {
        let stream = kv_stream(BLOCKS_BUCKET);
        let filter = kv_subject(BLOCKS_BUCKET, &blocks_filter(blocker));
        self.page_by_subject(&stream, &filter, cursor, limit, |m| {
            if m.operation != Operation::Put {
                return Ok(None);
            }
            let Some((_, blocked)) = kv_key(BLOCKS_BUCKET, &m.subject).and_then(parse_block_key)
            else {
                return Ok(None);
            };
            let record: BlockRecord = decode(&m.subject, &m.payload)?;
            Ok::<_, StoreError>(Some(UserView {
                user_id: blocked.to_string(),
                username: record.username,
            }))
        })
        .await
    }
}
