//! Counts as NATS counters (`DYSCHAT_COUNTERS`): a room's members
//! (`dyschat.count.members.<room_id>`), the rooms a user owns (`dyschat.count.owned.<user_id>`)
//! and the rooms a user is in (`dyschat.count.joined.<user_id>`).
//!
//! An increment is a publish with `Nats-Incr`; the server adds it to the subject's total, so any
//! number of joins count at once without a compare-and-set. The member count changes only when a
//! join really created a member record (+1) or a leave really deleted one (-1); each change
//! carries a `Nats-Msg-Id` naming that record revision, so an increment retried after a lost ack
//! counts once. The quota counters are taken before the thing they count (the ack's total says
//! whether the user is past the quota) and given back when it did not happen.

use std::collections::HashMap;

use async_nats::jetstream::context::PublishErrorKind;
use async_nats::HeaderMap;
use dyschat_protocol::layout::COUNTERS_STREAM;
use dyschat_protocol::subjects;

use super::{unavailable, Store, StoreError};
use crate::records::{counter_total, parse_total};

/// Attempts of one increment whose ack timed out (the same message id each time).
const INCREMENT_ATTEMPTS: u32 = 2;

impl Store {
    /// Adds `delta` to the room's member count; `change_id` names the change (the same id is
    /// counted once). Returns the new total when the server reported it (not for a duplicate).
    pub async fn add_members(
        &self,
        room_id: &str,
        delta: i64,
        change_id: &str,
    ) -> Result<Option<u64>, StoreError> {
        self.add(subjects::member_count(room_id), delta, change_id)
            .await
    }

    /// Adds `delta` to the counter `subject` (see [`Store::add_members`]).
    pub async fn add(
        &self,
        subject: String,
        delta: i64,
        change_id: &str,
    ) -> Result<Option<u64>, StoreError> {
        let mut last_error = None;
        for _ in 0..INCREMENT_ATTEMPTS {
            let mut headers = HeaderMap::new();
            headers.insert("Nats-Incr", format!("{delta:+}").as_str());
            headers.insert(async_nats::header::NATS_MESSAGE_ID, change_id);
            let sent = self
                .js
                .publish_with_headers(subject.clone(), headers, bytes::Bytes::new())
                .await
                .map_err(|e| unavailable(COUNTERS_STREAM, e))?;
            match sent.await {
                Ok(ack) => return ack.value.map(|v| parse_total(&subject, &v)).transpose(),
                Err(e) if e.kind() == PublishErrorKind::TimedOut => last_error = Some(e),
                Err(e) => return Err(unavailable(COUNTERS_STREAM, e)),
            }
        }
        Err(unavailable(
            COUNTERS_STREAM,
            last_error.map_or_else(|| "no attempt".to_string(), |e| e.to_string()),
        ))
    }

    /// The member count of each room asked for (0 for a room never counted), in one batch.
    pub async fn member_counts(
        &self,
        room_ids: &[&str],
    ) -> Result<HashMap<String, u64>, StoreError> {
        let wanted: Vec<String> = room_ids.iter().map(|r| subjects::member_count(r)).collect();
        let mut counts = HashMap::with_capacity(wanted.len());
        if wanted.is_empty() {
            return Ok(counts);
        }
        let batch = self
            .direct
            .multi_last(COUNTERS_STREAM, &wanted, wanted.len(), None)
            .await?;
        for message in batch.messages {
            if let Some(room_id) = subjects::parse_member_count(&message.subject) {
                let total = counter_total(&message.subject, &message.payload)?;
                counts.insert(room_id.to_string(), total);
            }
        }
        Ok(counts)
    }

    pub async fn member_count(&self, room_id: &str) -> Result<u64, StoreError> {
        let counts = self.member_counts(&[room_id]).await?;
        Ok(counts.get(room_id).copied().unwrap_or(0))
    }

    /// Removes the counter `subject` (a deleted room's member count).
    pub async fn forget_counter(&self, subject: String) -> Result<(), StoreError> {
        let stream = self
            .js
            .get_stream_no_info(COUNTERS_STREAM)
            .await
            .map_err(|e| unavailable(COUNTERS_STREAM, e))?;
        stream
            .purge()
            .filter(subject)
            .await
            .map_err(|e| unavailable(COUNTERS_STREAM, e))?;
        Ok(())
    }
}
