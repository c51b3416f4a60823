//! [`MessageStream`] over JetStream: publishes with `Nats-Msg-Id` (retries are duplicates the
//! stream drops), reads positions from the stream leader, replays ranges with ordered consumers.
//!
//! A publish carries the trace context of the caller's `chat.send` span in its headers; JetStream
//! stores them with the message, so the writer's `chat.store` and every agent's `chat.deliver`
//! join the same trace.

use std::future::IntoFuture;
use std::time::Duration;

use async_nats::jetstream::{
    self,
    consumer::{pull::OrderedConfig, DeliverPolicy},
    context::ConsumerInfoErrorKind,
    message::PublishMessage,
    stream::{LastRawMessageErrorKind, Stream},
};
use bytes::Bytes;
use dyschat_protocol::{layout, subjects, wire::StoredMessage};
use dyschat_runtime::telemetry;
use dyschat_runtime::topology::MessageStreamSet;
use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt};

use dyschat_runtime::direct::DirectGet;

use super::bounded;
use super::changes::decode_change;
use crate::ports::{
    Ack, AckFuture, Entry, MessageStream, PortError, PortResult, ScanFrom, Sequenced,
    WriterPosition,
};

/// How long one step of a JetStream read may take before the read is abandoned.
const READ_STEP_TIMEOUT: Duration = Duration::from_secs(5);
/// How many messages a lagging replica's answer may be behind before
/// [`MessageStream::newest_up_to`] gives up confirming it with the leader.
const CONFIRM_STEPS: usize = 32;

/// How long a read of the writer's ack floor is reused: a floor only rises, so a slightly old
/// one only makes a reader trust the history store a little less than it could.
const FLOOR_FRESH: Duration = Duration::from_millis(250);

/// The writer's position on each partition, with when it was read.
type Positions = Vec<Option<(tokio::time::Instant, WriterPosition)>>;

/// Publishes go to a room's published subject (the server's mapping puts them in the room's
/// partition); reads go to the room's stream and name its stored subjects.
#[derive(Clone)]
pub(crate) struct JetStreamMessages {
    js: jetstream::Context,
    streams: MessageStreamSet,
    client: async_nats::Client,
    position: std::sync::Arc<std::sync::Mutex<Positions>>,
    /// Retried-send scans running at once (each is a consumer on the stream).
    scans: std::sync::Arc<tokio::sync::Semaphore>,
}

/// Retried-send scans ([`MessageStream::find_sent`]) one agent runs at once. When Redis is slow
/// or down, every send with a `client_msg_id` would otherwise create a consumer to read the
/// stream, thousands a second under load, until the server refuses consumers and sends fail.
const MAX_CONCURRENT_SCANS: usize = 8;
/// How long a send waits for a scan slot before it is answered as if the scan were too long
/// (only the stream's own window then protects it, counted by
/// `dyschat_dedupe_scans_overflowed_total`).
const SCAN_SLOT_WAIT: std::time::Duration = std::time::Duration::from_millis(250);

impl JetStreamMessages {
    pub(crate) fn new(
        js: jetstream::Context,
        streams: MessageStreamSet,
        client: async_nats::Client,
    ) -> Self {
        let partitions = usize::from(streams.layout().count());
        JetStreamMessages {
            js,
            streams,
            client,
            position: std::sync::Arc::new(std::sync::Mutex::new(vec![None; partitions])),
            scans: std::sync::Arc::new(tokio::sync::Semaphore::new(MAX_CONCURRENT_SCANS)),
        }
    }

    fn stream(&self, room_id: &str) -> &Stream {
        self.streams.for_room(room_id)
    }

    /// The newest message of `room_id` with a sequence of at most `up_to`, asked of any replica
    /// (a batched direct get: `multi_last` with `up_to_seq`); 0 if there is none.
    async fn direct_newest_up_to(&self, room_id: &str, up_to: u64) -> PortResult<u64> {
        let layout = self.streams.layout();
        let batch = DirectGet::new(self.client.clone(), READ_STEP_TIMEOUT)
            .multi_last(
                &layout.room_stream(room_id),
                &[layout.stored_message(room_id)],
                1,
                Some(up_to),
            )
            .await
            .map_err(PortError::failed)?;
        Ok(batch.messages.first().map_or(0, |m| m.sequence))
    }
}

impl MessageStream for JetStreamMessages {
    fn publish<'a>(
        &'a self,
        room_id: &'a str,
        dedupe_id: String,
        payload: Bytes,
    ) -> BoxFuture<'a, PortResult<AckFuture>> {
        async move {
            let publish = PublishMessage::build()
                .headers(telemetry::headers_with_context().unwrap_or_default())
                .payload(payload)
                .message_id(dedupe_id);
            let ack = bounded(
                self.js
                    .send_publish(subjects::room_messages(room_id), publish),
            )
            .await?;
            let ack: AckFuture = Box::pin(ack.into_future().map(|result| {
                result
                    .map(|ack| Ack {
                        seq: ack.sequence,
                        duplicate: ack.duplicate,
                    })
                    .map_err(PortError::failed)
            }));
            Ok(ack)
        }
        .boxed()
    }

    /// Read from the stream leader: a replica answering a direct get may not have a message that
    /// was just acked yet.
    fn stored<'a>(
        &'a self,
        room_id: &'a str,
        seq: u64,
    ) -> BoxFuture<'a, PortResult<StoredMessage>> {
        async move {
            let raw = self
                .stream(room_id)
                .get_raw_message(seq)
                .await
                .map_err(PortError::failed)?;
            serde_json::from_slice(&raw.payload).map_err(|e| PortError::Decode(e.to_string()))
        }
        .boxed()
    }

    /// Read from the stream leader, not with a direct get: on a cluster a replica may lag, and a
    /// join or catch-up check that starts from a stale position only repairs itself on a later
    /// message.
    fn last_seq<'a>(&'a self, room_id: &'a str) -> BoxFuture<'a, PortResult<u64>> {
        async move {
            match self
                .stream(room_id)
                .get_last_raw_message_by_subject(&self.streams.layout().stored_message(room_id))
                .await
            {
                Ok(m) => Ok(m.sequence),
                Err(e) if e.kind() == LastRawMessageErrorKind::NoMessageFound => Ok(0),
                Err(e) => Err(PortError::failed(e)),
            }
        }
        .boxed()
    }

    /// A candidate from any replica (the leader has no backwards lookup), confirmed by the
    /// leader: the room's first message after the candidate must lie beyond `up_to`. A replica
    /// that lagged shows up as a message in between, which becomes the next candidate.
    fn newest_up_to<'a>(&'a self, room_id: &'a str, up_to: u64) -> BoxFuture<'a, PortResult<u64>> {
        async move {
            if up_to == 0 {
                return Ok(0);
            }
            let subject = self.streams.layout().stored_message(room_id);
            let mut candidate = self.direct_newest_up_to(room_id, up_to).await?;
            for _ in 0..CONFIRM_STEPS {
                let next = self
                    .stream(room_id)
                    .raw_message_builder()
                    .sequence(candidate + 1)
                    .next_by_subject(subject.as_str())
                    .send()
                    .await;
                match next {
                    Ok(m) if m.sequence <= up_to => candidate = m.sequence,
                    Ok(_) => return Ok(candidate),
                    Err(e) if e.kind() == LastRawMessageErrorKind::NoMessageFound => {
                        return Ok(candidate)
                    }
                    Err(e) => return Err(PortError::failed(e)),
                }
            }
            Err(PortError::Failed(format!(
                "the room's position at {up_to} did not settle in {CONFIRM_STEPS} steps"
            )))
        }
        .boxed()
    }

    fn first_after<'a>(
        &'a self,
        room_id: &'a str,
        after: u64,
        n: usize,
    ) -> BoxFuture<'a, PortResult<Vec<Sequenced>>> {
        async move {
            if n == 0 {
                return Ok(Vec::new());
            }
            let consumer = self
                .stream(room_id)
                .create_consumer(OrderedConfig {
                    filter_subject: self.streams.layout().stored_message(room_id),
                    deliver_policy: DeliverPolicy::ByStartSequence {
                        start_sequence: after + 1,
                    },
                    ..Default::default()
                })
                .await
                .map_err(PortError::failed)?;
            let mut pending = consumer.cached_info().num_pending;
            let mut messages = consumer.messages().await.map_err(PortError::failed)?;
            let mut out = Vec::new();
            while pending > 0 && out.len() < n {
                let next = tokio::time::timeout(READ_STEP_TIMEOUT, messages.next())
                    .await
                    .map_err(|_| PortError::Timeout)?;
                let Some(next) = next else { break };
                let message = next.map_err(PortError::failed)?;
                let info = message.info().map_err(PortError::failed)?;
                pending = info.pending;
                let seq = info.stream_sequence;
                // An ordered consumer that was reset (a leader change) may deliver again what
                // it delivered before: a page holds each message once, in order.
                if seq <= out.last().map_or(after, |m: &Sequenced| m.seq) {
                    continue;
                }
                match serde_json::from_slice::<StoredMessage>(&message.payload) {
                    Ok(stored) => out.push(Sequenced { seq, stored }),
                    Err(e) => {
                        tracing::error!(seq, error = %e, "undecodable stored message skipped")
                    }
                }
            }
            Ok(out)
        }
        .boxed()
    }

    fn writer_position<'a>(
        &'a self,
        room_id: &'a str,
    ) -> BoxFuture<'a, PortResult<WriterPosition>> {
        async move {
            let k = usize::from(self.streams.layout().partition_of(room_id));
            let stream = self.stream(room_id);
            let cached = self.position.lock().unwrap_or_else(|p| p.into_inner())[k];
            if let Some((at, position)) = cached {
                if at.elapsed() < FLOOR_FRESH {
                    return Ok(position);
                }
            }
            let info = tokio::time::timeout(
                READ_STEP_TIMEOUT,
                stream.consumer_info(layout::WRITER_CONSUMER),
            )
            .await
            .map_err(|_| PortError::Timeout)?;
            // No writer has started yet: it has stored nothing.
            let (floor, idle) = match info {
                Ok(info) => (
                    info.ack_floor.stream_sequence,
                    info.num_pending == 0 && info.num_ack_pending == 0,
                ),
                Err(e) if e.kind() == ConsumerInfoErrorKind::NotFound => (0, false),
                Err(e) => return Err(PortError::failed(e)),
            };
            let behind_since_ms = if idle {
                None
            } else {
                // The oldest message the writer has not stored: the first one after its floor.
                let all = self.streams.layout().republish_source(k as u16);
                let next = stream
                    .raw_message_builder()
                    .sequence(floor + 1)
                    .next_by_subject(all.as_str())
                    .send()
                    .await;
                match next {
                    Ok(m) => {
                        Some(i64::try_from(m.time.unix_timestamp_nanos() / 1_000_000).unwrap_or(0))
                    }
                    Err(e) if e.kind() == LastRawMessageErrorKind::NoMessageFound => None,
                    Err(e) => return Err(PortError::failed(e)),
                }
            };
            let position = WriterPosition {
                floor,
                behind_since_ms,
            };
            self.position.lock().unwrap_or_else(|p| p.into_inner())[k] =
                Some((tokio::time::Instant::now(), position));
            Ok(position)
        }
        .boxed()
    }

    fn find_sent<'a>(
        &'a self,
        room_id: &'a str,
        from: ScanFrom,
        sender_id: &'a str,
        client_msg_id: &'a str,
        limit: u64,
    ) -> BoxFuture<'a, PortResult<Option<Option<u64>>>> {
        async move {
            let Ok(Ok(_slot)) = tokio::time::timeout(SCAN_SLOT_WAIT, self.scans.acquire()).await
            else {
                return Ok(None);
            };
            let deliver_policy = match from {
                ScanFrom::After(seq) => DeliverPolicy::ByStartSequence {
                    start_sequence: seq + 1,
                },
                ScanFrom::Since(ms) => DeliverPolicy::ByStartTime {
                    start_time: time::OffsetDateTime::from_unix_timestamp_nanos(
                        i128::from(ms.max(0)) * 1_000_000,
                    )
                    .map_err(PortError::failed)?,
                },
            };
            let consumer = self
                .stream(room_id)
                .create_consumer(OrderedConfig {
                    filter_subject: self.streams.layout().stored_message(room_id),
                    deliver_policy,
                    ..Default::default()
                })
                .await
                .map_err(PortError::failed)?;
            let mut pending = consumer.cached_info().num_pending;
            if pending > limit {
                return Ok(None);
            }
            let mut messages = consumer.messages().await.map_err(PortError::failed)?;
            while pending > 0 {
                let next = tokio::time::timeout(READ_STEP_TIMEOUT, messages.next())
                    .await
                    .map_err(|_| PortError::Timeout)?;
                let Some(next) = next else { break };
                let message = next.map_err(PortError::failed)?;
                let info = message.info().map_err(PortError::failed)?;
                pending = info.pending;
                if let Ok(stored) = serde_json::from_slice::<StoredMessage>(&message.payload) {
                    if stored.sender_id == sender_id && stored.client_msg_id == client_msg_id {
                        return Ok(Some(Some(info.stream_sequence)));
                    }
                }
            }
            Ok(Some(None))
        }
        .boxed()
    }

    fn replay<'a>(
        &'a self,
        room_id: &'a str,
        after: u64,
        up_to: u64,
        limit: u64,
    ) -> BoxFuture<'a, PortResult<Option<Vec<Entry>>>> {
        async move {
            if up_to <= after {
                return Ok(Some(Vec::new()));
            }
            let consumer = self
                .stream(room_id)
                .create_consumer(OrderedConfig {
                    filter_subjects: self.streams.layout().room_filters(room_id).to_vec(),
                    deliver_policy: DeliverPolicy::ByStartSequence {
                        start_sequence: after + 1,
                    },
                    ..Default::default()
                })
                .await
                .map_err(PortError::failed)?;
            if consumer.cached_info().num_pending > limit {
                return Ok(None);
            }
            let mut messages = consumer.messages().await.map_err(PortError::failed)?;
            let mut out: Vec<Entry> = Vec::new();
            loop {
                let next = tokio::time::timeout(READ_STEP_TIMEOUT, messages.next())
                    .await
                    .map_err(|_| PortError::Timeout)?;
                let Some(next) = next else { break };
                let message = next.map_err(PortError::failed)?;
                let seq = message.info().map_err(PortError::failed)?.stream_sequence;
                if seq > up_to {
                    break;
                }
                // A reset ordered consumer may deliver again what it delivered before.
                if seq > out.last().map_or(after, Entry::position) {
                    match decode_entry(&message.subject, seq, &message.payload) {
                        Ok(entry) => out.push(entry),
                        Err(e) => tracing::error!(seq, error = %e, "undecodable entry skipped"),
                    }
                }
                if seq == up_to || out.len() as u64 > limit {
                    break;
                }
            }
            Ok(Some(out))
        }
        .boxed()
    }
}

/// A stored entry of the room's sequence, told apart by its subject.
fn decode_entry(subject: &str, seq: u64, payload: &[u8]) -> PortResult<Entry> {
    if subjects::parse_change(subject).is_some() {
        return decode_change(seq, payload).map(Entry::Change);
    }
    serde_json::from_slice::<StoredMessage>(payload)
        .map(|stored| Entry::Message(Sequenced { seq, stored }))
        .map_err(|e| PortError::Decode(e.to_string()))
}
