//! What a room deletion removes from the streams: the room's messages from its message stream
//! (`DYSCHAT_MESSAGES`, or its partition's; one purge by each of the room's stored subject
//! filters) and every (room, user) record of the members,
//! invitations and bans buckets (one purge of each bucket's stream by `<room_id>.*`), whatever
//! the room's size. The per-user records elsewhere (membership index entries, quota counters)
//! are the caller's, member by member.

use async_nats::jetstream::{kv, stream::PurgeErrorKind, ErrorCode};
use dyschat_protocol::layout::{kv_subject, members_filter, MESSAGES_STREAM};

use super::{unavailable, Store, StoreError};

impl Store {
    /// Removes every message and change event of the room from the messages stream (one purge
    /// per subject filter). A mesh whose stream does not exist yet (no message was ever sent)
    /// has nothing to remove.
    pub async fn purge_messages(&self, room_id: &str) -> Result<u64, StoreError> {
        let streams = self.message_streams();
        let name = streams.room_stream(room_id);
        let stream = self
            .js
            .get_stream_no_info(&name)
            .await
            .map_err(|e| unavailable(MESSAGES_STREAM, e))?;
        let mut total = 0;
        for filter in streams.room_filters(room_id) {
            match stream.purge().filter(filter).await {
                Ok(purged) => total += purged.purged,
                Err(e) if matches!(e.kind(), PurgeErrorKind::JetStream(js) if js.error_code() == ErrorCode::STREAM_NOT_FOUND) => {
                    return Ok(0)
                }
                Err(e) => return Err(unavailable(MESSAGES_STREAM, e)),
            }
        }
        Ok(total)
    }

    /// Removes every member record, invitation and ban of the room.
    pub async fn purge_room_keys(&self, room_id: &str) -> Result<(), StoreError> {
        tokio::try_join!(
            purge_keys(&self.members, room_id),
            purge_keys(&self.invites, room_id),
            purge_keys(&self.bans, room_id),
        )?;
        Ok(())
    }
}

/// Purges every key `<room_id>.*` of `bucket`'s stream.
async fn purge_keys(bucket: &kv::Store, room_id: &str) -> Result<(), StoreError> {
    bucket
        .stream
        .purge()
        .filter(kv_subject(&bucket.name, &members_filter(room_id)))
        .await
        .map_err(|e| StoreError::Unavailable {
            what: "room records",
            detail: format!("purging {}: {e}", bucket.name),
        })?;
    Ok(())
}
