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
//!
//! The periodic check is also when a channel that only HTTP posts held, and that none holds any
//! more, is closed: a room posted to over and over keeps its subscription in between.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use tokio::time::{Instant, MissedTickBehavior};

use super::{lock, Hub, RoomChannel};
use crate::ports::LiveStream;
use crate::socket::CLOSE_GOING_AWAY;

/// When a new room subscription first checks that it missed nothing, and how often after.
pub(super) const CATCH_UP_FIRST: Duration = Duration::from_secs(1);
pub(super) const CATCH_UP_EVERY: Duration = Duration::from_secs(15);
/// How long a message this agent acked may take to come live before it is read from JetStream.
pub(super) const EXPECT_GRACE: Duration = Duration::from_secs(1);

impl Hub {
    pub(super) async fn room_task(
        self: Arc<Self>,
        room_id: String,
        channel: Arc<RoomChannel>,
        mut live: LiveStream,
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
                    if self.close_if_idle(&room_id, &channel) {
                        break;
                    }
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
                next = live.next() => match next {
                    Some(m) => m,
                    None => {
                        self.lost_feed(&room_id, &channel);
                        break;
                    }
                },
            };
            heard = true;
            self.deliver(&room_id, &channel, message).await;
        }
        // Dropping the feed unsubscribes.
        drop(live);
    }

    /// The live feed ended without the channel being stopped (the connection is gone for good):
    /// the sockets are closed so their clients reconnect and rejoin with `since`, and the next
    /// join subscribes afresh.
    fn lost_feed(&self, room_id: &str, channel: &Arc<RoomChannel>) {
        tracing::warn!(room = %room_id, "live feed ended; closing the room's sockets");
        let sockets: Vec<_> = {
            let mut state = lock(&channel.state);
            if state.closed {
                return;
            }
            state.closed = true;
            state.waiters.clear();
            state.sockets.drain().map(|(_, a)| a.socket).collect()
        };
        for socket in sockets {
            socket.close(CLOSE_GOING_AWAY);
        }
        self.forget(room_id, channel);
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

    /// Compares the room's newest position in JetStream (message or change) with the last one
    /// forwarded and fills the difference.
    async fn catch_up(&self, room_id: &str, channel: &RoomChannel) {
        let Some(last) = lock(&channel.state).last_forwarded else {
            return;
        };
        let newest = tokio::try_join!(
            self.stream.last_seq(room_id),
            self.changes.last_change(room_id)
        );
        match newest {
            Ok((message, change)) => {
                let newest = message.max(change.map_or(0, |c| c.event_seq));
                if newest > last {
                    self.fill_gap(room_id, channel, last, newest).await;
                }
            }
            Err(e) => tracing::debug!(room = %room_id, error = %e, "catch-up check failed"),
        }
    }
}
