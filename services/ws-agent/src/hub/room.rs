//! The task behind one room subscription of an agent.
//!
//! Live messages come from the stream's RePublish over core NATS, which is at-most-once, so the
//! task never trusts the live feed alone. It notices a loss three ways and fills it from
//! JetStream each time:
//! - a message whose `prev_seq` is newer than the last `seq` forwarded (something in between was
//!   dropped);
//! - a message this agent had acked itself ([`Hub::expect`]) that does not come live within
//!   [`EXPECT_GRACE`] while nothing else arrives either (the room's newest message was dropped,
//!   so no later `prev_seq` will reveal it soon);
//! - a periodic comparison with the room's newest `seq` as the stream leader knows it (covers
//!   messages sent through other agents), first [`CATCH_UP_FIRST`] after the subscription starts,
//!   when a fresh subscription's interest may not yet have reached every node of a cluster.

use std::sync::Arc;
use std::time::Duration;

use async_nats::Subscriber;
use dyschat_protocol::{
    time,
    wire::{Message, ServerFrame, StoredMessage},
};
use dyschat_runtime::telemetry;
use futures::StreamExt;
use tokio::time::{Instant, MissedTickBehavior};

use super::{lock, sequence_headers, Hub, Mode, RoomChannel};
use crate::socket::{OutFrame, CLOSE_SLOW};

/// When a new room subscription first checks that it missed nothing, and how often after.
const CATCH_UP_FIRST: Duration = Duration::from_secs(1);
const CATCH_UP_EVERY: Duration = Duration::from_secs(15);
/// How long a message this agent acked may take to come live before it is read from JetStream.
const EXPECT_GRACE: Duration = Duration::from_secs(1);

impl Hub {
    pub(super) async fn room_task(
        self: Arc<Self>,
        room_id: String,
        channel: Arc<RoomChannel>,
        mut sub: Subscriber,
    ) {
        let mut catch_up =
            tokio::time::interval_at(Instant::now() + CATCH_UP_FIRST, CATCH_UP_EVERY);
        catch_up.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let grace = tokio::time::sleep(EXPECT_GRACE);
        tokio::pin!(grace);
        // A grace period is running, and whether any live message came during it.
        let mut waiting = false;
        let mut heard = false;
        loop {
            let message = tokio::select! {
                _ = channel.stop.cancelled() => break,
                _ = catch_up.tick() => {
                    self.catch_up(&room_id, &channel).await;
                    continue;
                }
                _ = channel.expected.notified(), if !waiting => {
                    grace.as_mut().reset(Instant::now() + EXPECT_GRACE);
                    (waiting, heard) = (true, false);
                    continue;
                }
                _ = &mut grace, if waiting => {
                    waiting = false;
                    self.settle_expected(&room_id, &channel, heard).await;
                    continue;
                }
                next = sub.next() => match next {
                    Some(m) => m,
                    None => break,
                },
            };
            heard = true;
            self.deliver(&room_id, &channel, message).await;
        }
        if let Err(e) = sub.unsubscribe().await {
            tracing::debug!(error = %e, "unsubscribe");
        }
    }

    /// Forwards one live message, filling any gap before it first.
    async fn deliver(&self, room_id: &str, channel: &RoomChannel, message: async_nats::Message) {
        let Some((seq, prev)) = message.headers.as_ref().and_then(sequence_headers) else {
            tracing::warn!(room = %room_id, "live message without sequence headers ignored");
            return;
        };
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
                    metrics::histogram!(dyschat_runtime::metric::DELIVERY_LATENCY_SECONDS)
                        .record(age);
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

    /// At the end of a grace period: fills up to the expected `seq` if the live feed went
    /// silent without it; if live messages are still coming (a busy room running behind), waits
    /// another period rather than reading what is on its way.
    async fn settle_expected(&self, room_id: &str, channel: &RoomChannel, heard: bool) {
        let (last, expected) = {
            let state = lock(&channel.state);
            (state.last_forwarded, state.expected)
        };
        match last {
            Some(last) if expected <= last => {}
            Some(last) if !heard => self.fill_gap(room_id, channel, last, expected).await,
            // Still behind, or the join has not recorded the room's position yet.
            _ => channel.expected.notify_one(),
        }
    }

    /// Compares the room's newest `seq` in JetStream with the last one forwarded and fills the
    /// difference.
    async fn catch_up(&self, room_id: &str, channel: &RoomChannel) {
        let Some(last) = lock(&channel.state).last_forwarded else {
            return;
        };
        match self.chat.last_seq(room_id).await {
            Ok(newest) if newest > last => self.fill_gap(room_id, channel, last, newest).await,
            Ok(_) => {}
            Err(e) => tracing::debug!(room = %room_id, error = %e, "catch-up check failed"),
        }
    }

    /// Reads `(after, up_to]` of the room from JetStream and forwards it.
    async fn fill_gap(&self, room_id: &str, channel: &RoomChannel, after: u64, up_to: u64) {
        metrics::counter!(dyschat_runtime::metric::WS_GAP_FILLS_TOTAL).increment(1);
        tracing::info!(room = %room_id, after, up_to, "live gap detected, filling from JetStream");
        match self
            .chat
            .replay(room_id, after, up_to, after, self.recovery_limit)
            .await
        {
            Ok(Some(messages)) => {
                for m in messages {
                    fan_out(channel, m, self.buffer_limit);
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
fn deliver_span(
    room_id: &str,
    seq: u64,
    message_id: &str,
    message: &async_nats::Message,
) -> tracing::Span {
    if !telemetry::exporting() {
        return tracing::Span::none();
    }
    let span = tracing::info_span!(
        "chat.deliver",
        otel.kind = "consumer",
        messaging.system = "nats",
        messaging.operation.type = "process",
        messaging.destination.name = %message.subject,
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
/// how many sockets it was queued.
fn fan_out(channel: &RoomChannel, message: Message, buffer_limit: usize) -> u64 {
    let seq = message.seq;
    let frame = OutFrame::new(&ServerFrame::Message(message));
    let mut state = lock(&channel.state);
    if state.last_forwarded.is_some_and(|last| seq <= last) {
        return 0;
    }
    state.last_forwarded = Some(seq);
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
    metrics::counter!(dyschat_runtime::metric::WS_MESSAGES_DELIVERED_TOTAL).increment(delivered);
    delivered
}
