//! A deleted message's notifications go with its text: each message that made notifications
//! leaves a record of their ids on `dyschat.notified.<room_id>.<seq>` in the feed stream
//! ([`Notified`]); the message's deletion (a change event the `feed` consumer also receives)
//! erases those notifications and the record, and a room's deletion every record of the room
//! and what they name. A notification made after its message's deletion was stored is avoided by
//! looking for that deletion first (the message's last change event).

use async_nats::jetstream::{self, context::PublishErrorKind};
use async_nats::HeaderMap;
use dyschat_protocol::wire::{ChangeKind, Notified, StoredChange};
use dyschat_protocol::{layout, subjects};
use dyschat_runtime::direct::{DirectGet, MAX_BATCH};

use super::{Feed, FeedError};

/// Records of a room read per batch when the room is deleted.
const ROOM_BATCH: usize = 256;
/// Records of a room gone through at most (a room's every message with notifications).
const MAX_ROOM_RECORDS: usize = 1_000_000;

impl Feed {
    /// Whether message `seq` of the room was deleted already (its last change event says so).
    pub(super) async fn deleted(&self, room_id: &str, seq: u64) -> Result<bool, FeedError> {
        let streams = self.store.message_streams();
        let subject = [streams.stored_change(room_id, seq)];
        let batch = self
            .direct()
            .multi_last(&streams.room_stream(room_id), &subject, 1, None)
            .await
            .map_err(|e| FeedError::Publish(e.to_string()))?;
        Ok(batch.messages.first().is_some_and(|m| {
            serde_json::from_slice::<StoredChange>(&m.payload)
                .is_ok_and(|c| c.change == ChangeKind::Deleted)
        }))
    }

    /// Records the notifications message `seq` of the room made.
    pub(super) async fn record(
        &self,
        room_id: &str,
        seq: u64,
        ids: Vec<u64>,
    ) -> Result<(), FeedError> {
        let payload =
            serde_json::to_vec(&Notified { ids }).map_err(|e| FeedError::Publish(e.to_string()))?;
        let mut headers = HeaderMap::new();
        let id = format!("notified:{room_id}:{seq}");
        headers.insert(async_nats::header::NATS_MESSAGE_ID, id.as_str());
        let ack = self
            .js
            .publish_with_headers(subjects::notified(room_id, seq), headers, payload.into())
            .await
            .map_err(|e| FeedError::Publish(e.to_string()))?;
        match ack.await {
            Ok(_) => Ok(()),
            Err(e) if e.kind() == PublishErrorKind::TimedOut => Err(FeedError::Timeout),
            Err(e) => Err(FeedError::Publish(e.to_string())),
        }
    }

    /// A change event: a deletion erases the message's notifications.
    pub(super) async fn changed(&self, change: &StoredChange) -> Result<(), FeedError> {
        if change.change != ChangeKind::Deleted {
            return Ok(());
        }
        let subject = [subjects::notified(&change.room_id, change.seq)];
        let batch = self
            .direct()
            .multi_last(layout::FEED_STREAM, &subject, 1, None)
            .await
            .map_err(|e| FeedError::Publish(e.to_string()))?;
        for record in batch.messages {
            self.erase_record(record.sequence, &record.payload).await?;
        }
        Ok(())
    }

    /// Erases every notification of the room's messages (after the room's deletion).
    pub(crate) async fn erase_room(&self, room_id: &str) -> Result<usize, FeedError> {
        let filter = subjects::notified_in(room_id);
        let direct = self.direct();
        let (mut from, mut seen) = (0, 0);
        while seen < MAX_ROOM_RECORDS {
            let batch = direct
                .next_by_subject(
                    layout::FEED_STREAM,
                    from,
                    &filter,
                    ROOM_BATCH.min(MAX_BATCH),
                )
                .await
                .map_err(|e| FeedError::Publish(e.to_string()))?;
            let Some(next) = batch.next_sequence() else {
                break;
            };
            from = next;
            seen += batch.messages.len();
            for record in &batch.messages {
                self.erase_record(record.sequence, &record.payload).await?;
            }
            if batch.num_pending == 0 {
                break;
            }
        }
        Ok(seen)
    }

    /// Erases the notifications a record names, then the record.
    async fn erase_record(&self, record_seq: u64, payload: &[u8]) -> Result<(), FeedError> {
        let ids = serde_json::from_slice::<Notified>(payload)
            .map(|n| n.ids)
            .unwrap_or_default();
        let stream = self
            .js
            .get_stream_no_info(layout::FEED_STREAM)
            .await
            .map_err(|e| FeedError::Publish(e.to_string()))?;
        for id in ids.into_iter().chain([record_seq]) {
            if let Err(e) = stream.delete_message(id).await {
                // Gone already (the per-user bound, its age, an earlier attempt) is fine.
                let gone = matches!(e.kind(), jetstream::stream::DeleteMessageErrorKind::JetStream(js)
                    if js.error_code() == jetstream::ErrorCode::NO_MESSAGE_FOUND);
                if !gone {
                    return Err(FeedError::Publish(e.to_string()));
                }
            }
        }
        Ok(())
    }

    fn direct(&self) -> DirectGet {
        DirectGet::new(self.client.clone(), super::PUBLISH_TIMEOUT)
    }
}
