//! Delivering a room's messages to its sockets: live ones as they come, missed ones read from
//! JetStream first so that every socket sees each message once, in order.
//!
//! Each live message is delivered in a `chat.deliver` span, a child of the sender's `chat.send`
//! (the context is in the re-published headers), and its age since `sent_at` is recorded in
//! `dyschat_delivery_latency_seconds`.

use dyschat_protocol::{
    subjects, time,
    wire::{Message, ServerFrame, StoredMessage},
};
use dyschat_runtime::{metric, telemetry};

use super::{lock, Hub, Mode, RoomChannel};
use crate::ports::LiveMessage;
use crate::socket::{OutFrame, CLOSE_SLOW};

impl Hub {
    /// Forwards one live message, filling any gap before it first.
    pub(super) async fn deliver(&self, room_id: &str, channel: &RoomChannel, message: LiveMessage) {
        let (seq, prev) = (message.seq, message.prev_seq);
        let last = lock(&channel.state).last_forwarded;
        if last.is_some_and(|last| seq <= last) {
            return;
        }
        if let Some(last) = last.filter(|last| prev > *last) {
            self.fill_gap(room_id, channel, last, prev).await;
        }
        match serde_json::from_slice::<StoredMessage>(&message.payload) {
            Ok(stored) => {
                if let Some(age) = time::seconds_since(&stored.sent_at) {
                    metrics::histogram!(metric::DELIVERY_LATENCY_SECONDS).record(age);
                }
                let span = deliver_span(room_id, seq, &stored.message_id, &message);
                let _entered = span.enter();
                let delivered = fan_out(
                    channel,
                    Message::from_stored(stored, seq, prev),
                    self.buffer_limit,
                );
                span.record("sockets", delivered);
            }
            Err(e) => tracing::error!(seq, error = %e, "undecodable live message skipped"),
        }
    }

    /// Reads `(after, up_to]` of the room from JetStream and forwards it. `after` is a position
    /// of the room (the last forwarded), so it is the `prev_seq` of the first message read.
    pub(super) async fn fill_gap(
        &self,
        room_id: &str,
        channel: &RoomChannel,
        after: u64,
        up_to: u64,
    ) {
        metrics::counter!(metric::WS_GAP_FILLS_TOTAL).increment(1);
        tracing::info!(room = %room_id, after, up_to, "live gap detected, filling from JetStream");
        match self
            .stream
            .replay(room_id, after, up_to, self.recovery_limit)
            .await
        {
            Ok(Some(messages)) => {
                let mut prev = after;
                for m in messages {
                    let seq = m.seq;
                    fan_out(
                        channel,
                        Message::from_stored(m.stored, seq, prev),
                        self.buffer_limit,
                    );
                    prev = seq;
                }
            }
            Ok(None) => {
                tracing::warn!(room = %room_id, "gap too large to fill; clients rejoin with since")
            }
            Err(e) => {
                tracing::warn!(room = %room_id, error = %e, "gap fill failed; clients rejoin with since")
            }
        }
    }
}

/// The `chat.deliver` span of a live message at this agent (none while traces are not exported).
/// Like `chat.send`, it names the subject pattern, not the room's subject: the room is `room.id`.
fn deliver_span(room_id: &str, seq: u64, message_id: &str, message: &LiveMessage) -> tracing::Span {
    if !telemetry::exporting() {
        return tracing::Span::none();
    }
    let span = tracing::info_span!(
        "chat.deliver",
        otel.kind = "consumer",
        messaging.system = "nats",
        messaging.operation.type = "process",
        messaging.destination.name = subjects::LIVE_WILDCARD,
        room.id = %room_id,
        message.id = %message_id,
        message.seq = seq,
        sockets = tracing::field::Empty,
        dyschat.service = "dyschat-ws-agent",
    );
    telemetry::set_parent(&span, message.headers.as_ref());
    span
}

/// Serialises `message` once and queues it on every socket that has not had it yet; returns on
/// how many sockets it was queued. A socket whose queue is full is closed (1013) rather than
/// waited for, so one slow reader never slows the room.
pub(super) fn fan_out(channel: &RoomChannel, message: Message, buffer_limit: usize) -> u64 {
    let (seq, prev) = (message.seq, message.prev_seq);
    let frame = OutFrame::new(&ServerFrame::Message(message));
    let mut state = lock(&channel.state);
    if state.last_forwarded.is_some_and(|last| seq <= last) {
        return 0;
    }
    state.forwarded(seq, prev);
    let mut delivered = 0u64;
    for attached in state.sockets.values_mut() {
        match &mut attached.mode {
            Mode::Live { last_seq } => {
                if seq > *last_seq && attached.socket.push(frame.clone()) {
                    *last_seq = seq;
                    delivered += 1;
                }
            }
            Mode::Buffering(buffer) => {
                if buffer.len() < buffer_limit {
                    buffer.push((seq, frame.clone()));
                } else {
                    attached.socket.close(CLOSE_SLOW);
                }
            }
        }
    }
    metrics::counter!(metric::WS_MESSAGES_DELIVERED_TOTAL).increment(delivered);
    delivered
}
