//! [`ChangeLog`] over JetStream: a room's change events on each message's own subject of the
//! messages stream, read from the leader, stored with a compare-and-set on the room's newest
//! change (`Nats-Expected-Last-Subject-Sequence` checked against the room's change filter
//! as stored, `dyschat.msg.room.<room>.chg.*` or its partitioned form: the server checks the
//! filter against stored subjects, after the mapping), so that the `prev_event_seq` a change names is the one the
//! stream really stored before it.

use std::future::IntoFuture;

use async_nats::jetstream::{
    self,
    context::PublishErrorKind,
    message::{PublishMessage, StreamMessage},
    stream::{LastRawMessageErrorKind, Stream},
};
use bytes::Bytes;
use dyschat_protocol::{
    subjects,
    wire::{StoredChange, StoredMessage},
};
use dyschat_runtime::telemetry;
use dyschat_runtime::topology::MessageStreamSet;
use futures::future::BoxFuture;
use futures::FutureExt;

use super::deadline;
use crate::ports::{ChangeEntry, ChangeLog, PortError, PortResult};

/// The header that makes the expected last subject sequence apply to a filter (here the
/// room's changes) rather than the published subject alone.
const EXPECTED_LAST_SUBJECT_FILTER: &str = "Nats-Expected-Last-Subject-Sequence-Subject";

#[derive(Clone)]
pub(crate) struct JetStreamChanges {
    js: jetstream::Context,
    streams: MessageStreamSet,
}

impl JetStreamChanges {
    pub(crate) fn new(js: jetstream::Context, streams: MessageStreamSet) -> Self {
        JetStreamChanges { js, streams }
    }

    fn stream(&self, room_id: &str) -> &Stream {
        self.streams.for_room(room_id)
    }

    async fn last_by_subject(
        &self,
        room_id: &str,
        subject: &str,
    ) -> PortResult<Option<StreamMessage>> {
        let stream = self.stream(room_id);
        match deadline(stream.get_last_raw_message_by_subject(subject)).await? {
            Ok(m) => Ok(Some(m)),
            Err(e) if e.kind() == LastRawMessageErrorKind::NoMessageFound => Ok(None),
            Err(e) => Err(PortError::failed(e)),
        }
    }
}

impl JetStreamChanges {
    /// The newest change event stored on `subject` (a message's, or the room's filter).
    async fn last_change_on(
        &self,
        room_id: &str,
        subject: String,
    ) -> PortResult<Option<ChangeEntry>> {
        match self.last_by_subject(room_id, &subject).await? {
            Some(m) => decode_change(m.sequence, &m.payload).map(Some),
            None => Ok(None),
        }
    }
}

/// A stored change event, decoded.
pub(crate) fn decode_change(event_seq: u64, payload: &[u8]) -> PortResult<ChangeEntry> {
    serde_json::from_slice::<StoredChange>(payload)
        .map(|change| ChangeEntry { event_seq, change })
        .map_err(|e| PortError::Decode(e.to_string()))
}

impl ChangeLog for JetStreamChanges {
    fn last_change<'a>(
        &'a self,
        room_id: &'a str,
    ) -> BoxFuture<'a, PortResult<Option<ChangeEntry>>> {
        let subject = self.streams.layout().stored_changes(room_id);
        self.last_change_on(room_id, subject).boxed()
    }

    fn last_change_of<'a>(
        &'a self,
        room_id: &'a str,
        seq: u64,
    ) -> BoxFuture<'a, PortResult<Option<ChangeEntry>>> {
        let subject = self.streams.layout().stored_change(room_id, seq);
        self.last_change_on(room_id, subject).boxed()
    }

    fn message_at<'a>(
        &'a self,
        room_id: &'a str,
        seq: u64,
    ) -> BoxFuture<'a, PortResult<Option<StoredMessage>>> {
        async move {
            let m = match deadline(self.stream(room_id).get_raw_message(seq)).await? {
                Ok(m) => m,
                Err(e) if e.kind() == LastRawMessageErrorKind::NoMessageFound => return Ok(None),
                Err(e) => return Err(PortError::failed(e)),
            };
            if m.subject.as_str() != self.streams.layout().stored_message(room_id) {
                return Ok(None);
            }
            serde_json::from_slice(&m.payload)
                .map(Some)
                .map_err(|e| PortError::Decode(e.to_string()))
        }
        .boxed()
    }

    fn publish_change<'a>(
        &'a self,
        room_id: &'a str,
        seq: u64,
        payload: Bytes,
        expected: u64,
    ) -> BoxFuture<'a, PortResult<Option<u64>>> {
        async move {
            let publish = PublishMessage::build()
                .headers(telemetry::headers_with_context().unwrap_or_default())
                .payload(payload)
                .expected_last_subject_sequence(expected)
                .header(
                    EXPECTED_LAST_SUBJECT_FILTER,
                    self.streams.layout().stored_changes(room_id).as_str(),
                );
            let subject = subjects::room_change(room_id, seq);
            let ack = deadline(self.js.send_publish(subject, publish))
                .await?
                .map_err(PortError::failed)?;
            match deadline(ack.into_future()).await? {
                Ok(ack) => Ok(Some(ack.sequence)),
                Err(e) if e.kind() == PublishErrorKind::WrongLastSequence => Ok(None),
                Err(e) => Err(PortError::failed(e)),
            }
        }
        .boxed()
    }
}
