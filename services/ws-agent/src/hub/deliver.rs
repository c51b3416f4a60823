//! Delivering a room's messages and change events to its sockets: live ones as they come,
//! missed ones read from JetStream first so that every socket sees each entry once, in order.
//!
//! Both kinds share the room's one sequence: the channel forwards positions in increasing
//! order, whatever their kind. A message whose `prev_seq`, or a change whose `prev_event_seq`,
//! is newer than the last position forwarded reveals a loss, filled from JetStream first.
//!
//! Each live message is delivered in a `chat.deliver` span, a child of the sender's `chat.send`
//! (the context is in the re-published headers), and its age since `sent_at` is recorded in
//! `dyschat_delivery_latency_seconds`.

use dyschat_protocol::{
    subjects, time,
    wire::{Message, ServerFrame, StoredChange, StoredMessage},
};
use dyschat_runtime::{metric, telemetry};

use super::{lock, Hub, Mode, RoomChannel};
use crate::core::fold;
use crate::ports::{LiveKind, LiveMessage};
use crate::socket::{OutFrame, CLOSE_SLOW};

/// What a forwarded position is, for the channel's bookkeeping.
#[derive(Debug, Clone, Copy)]
pub(super) enum Forward {
    Message { prev_seq: u64 },
    Change,
}

impl Hub {
    /// Forwards one live entry, filling any gap before it first.
    pub(super) async fn deliver(&self, room_id: &str, channel: &RoomChannel, message: LiveMessage) {
        let seq = message.seq;
        let last = lock(&channel.state).last_forwarded;
        if last.is_some_and(|last| seq <= last) {
            return;
        }
        match message.kind {
            LiveKind::Message => self.deliver_message(room_id, channel, last, message).await,
            LiveKind::Change => self.deliver_change(room_id, channel, last, message).await,
        }
    }

    async fn deliver_message(
        &self,
        room_id: &str,
        channel: &RoomChannel,
        last: Option<u64>,
        message: LiveMessage,
    ) {
        let (seq, prev, received) = (message.seq, message.prev_seq, message.received);
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
                let frame = OutFrame::new(&ServerFrame::Message(Message::from_stored(
                    stored, seq, prev,
                )));
                let delivered = fan_out(
                    channel,
                    seq,
                    Forward::Message { prev_seq: prev },
                    frame,
                    self.buffer_limit,
                );
                span.record("sockets", delivered);
                crate::core::record_hop(metric::hop::LIVE_FAN_OUT, received.elapsed());
            }
            Err(e) => tracing::error!(seq, error = %e, "undecodable live message skipped"),
        }
    }

    async fn deliver_change(
        &self,
        room_id: &str,
        channel: &RoomChannel,
        last: Option<u64>,
        message: LiveMessage,
    ) {
        let event_seq = message.seq;
        let change = match serde_json::from_slice::<StoredChange>(&message.payload) {
            Ok(change) => change,
            Err(e) => {
                tracing::error!(event_seq, error = %e, "undecodable live change skipped");
                return;
            }
        };
        if let Some(last) = last.filter(|last| change.prev_event_seq > *last) {
            self.fill_gap(room_id, channel, last, event_seq - 1).await;
        }
        let frame = OutFrame::new(&ServerFrame::MessageUpdated {
            room_id: room_id.to_string(),
            change: change.change,
            message: Message::from_stored(change.message, change.seq, change.prev_seq),
            event_seq,
            prev_event_seq: change.prev_event_seq,
        });
        fan_out(
            channel,
            event_seq,
            Forward::Change,
            frame,
            self.buffer_limit,
        );
    }

    /// Reads `(after, up_to]` of the room from JetStream and forwards it. `after` is a position
    /// of the room (the last forwarded).
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
            Ok(Some(entries)) => {
                let (last_message, last_change) = {
                    let state = lock(&channel.state);
                    (state.last_message, state.last_change)
                };
                let start = fold::Start {
                    after,
                    prev_seq: fold::first_prev_seq(&entries, after, last_message),
                    prev_event_seq: if last_change > 0 {
                        last_change
                    } else {
                        fold::first_prev_event_seq(&entries, after)
                    },
                };
                for (position, frame) in fold::replay_frames(room_id, &entries, start) {
                    let forward = match &frame {
                        ServerFrame::Message(m) => Forward::Message {
                            prev_seq: m.prev_seq,
                        },
                        _ => Forward::Change,
                    };
                    fan_out(
                        channel,
                        position,
                        forward,
                        OutFrame::new(&frame),
                        self.buffer_limit,
                    );
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

/// Queues `frame` (the entry at `position`, serialised once) on every socket that has not had
/// it yet; returns on how many sockets it was queued. A socket whose queue is full is closed
/// (1013) rather than waited for, so one slow reader never slows the room.
pub(super) fn fan_out(
    channel: &RoomChannel,
    position: u64,
    forward: Forward,
    frame: OutFrame,
    buffer_limit: usize,
) -> u64 {
    let mut state = lock(&channel.state);
    if state.last_forwarded.is_some_and(|last| position <= last) {
        return 0;
    }
    match forward {
        Forward::Message { prev_seq } => state.forwarded(position, prev_seq),
        Forward::Change => state.forwarded_change(position),
    }
    let mut delivered = 0u64;
    for attached in state.sockets.values_mut() {
        match &mut attached.mode {
            Mode::Live { last_seq } => {
                if position > *last_seq && attached.socket.push(frame.clone()) {
                    *last_seq = position;
                    delivered += 1;
                }
            }
            Mode::Buffering(buffer) => {
                if buffer.len() < buffer_limit {
                    buffer.push((position, frame.clone()));
                } else {
                    attached.socket.close(CLOSE_SLOW);
                }
            }
        }
    }
    metrics::counter!(metric::WS_MESSAGES_DELIVERED_TOTAL).increment(delivered);
    delivered
}
