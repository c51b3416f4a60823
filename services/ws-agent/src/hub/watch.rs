//! Where a posted message stands in its room: the `prev_seq` an HTTP post answers with.
//!
//! The room task already learns `(seq, prev_seq)` of every message it forwards, from the
//! re-published headers or, for a message it had to read from JetStream, from the replay's
//! order. So a post holds the room's channel (a [`Watch`], subscribing the agent to the room if no
//! local socket had) from before its publish until it knows its position, and asks the room task:
//! - a message the task forwarded while the post watched is in the channel's recent pairs (its
//!   live copy often comes before its ack);
//! - one not forwarded yet is waited for, with the acked `seq` announced to the task
//!   ([`Hub::expect`]), which reads it from JetStream if its live copy does not come;
//! - one forwarded before the post watched (a retried send: a duplicate of an older message), or
//!   one the room moved past, or a wait that runs out, is looked up in the stream itself.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::oneshot;

use super::{expect_on, lock, Holder, Hub, RoomChannel};
use crate::ports::PortError;

/// The most posts of one room waiting for the room task at once; more ask the stream directly.
const MAX_WAITERS: usize = 1024;
/// How long a post waits for the room task before asking the stream.
pub(crate) const POSITION_WAIT: Duration = Duration::from_secs(5);

/// A post's hold on its room's channel; dropping it lets the channel close once idle.
pub(crate) struct Watch {
    hub: Arc<Hub>,
    room_id: String,
    channel: Arc<RoomChannel>,
}

impl Hub {
    /// Holds the room for a post about to be published. A fresh channel first reads the room's
    /// position, so that everything stored after it (the post included) is forwarded with its
    /// `prev_seq`.
    pub(crate) async fn watch(self: &Arc<Self>, room_id: &str) -> Result<Watch, PortError> {
        let (channel, _) = self.enter(room_id, Holder::Watcher).await?;
        let watch = Watch {
            hub: self.clone(),
            room_id: room_id.to_string(),
            channel,
        };
        if lock(&watch.channel.state).last_forwarded.is_none() {
            let last = self.stream.last_seq(room_id).await?;
            lock(&watch.channel.state).note_position(last);
        }
        Ok(watch)
    }
}

impl Watch {
    /// The `prev_seq` of the room's message at `seq` (which the stream acked).
    pub(crate) async fn prev_of(&self, seq: u64) -> Result<u64, PortError> {
        let waiting = {
            let mut state = lock(&self.channel.state);
            if let Ok(i) = state.recent.binary_search_by_key(&seq, |(s, _)| *s) {
                return Ok(state.recent[i].1);
            }
            let passed = state.last_forwarded.is_some_and(|last| seq <= last);
            if passed || state.closed || state.waiters.len() >= MAX_WAITERS {
                None
            } else {
                let (tx, rx) = oneshot::channel();
                state.waiters.push((seq, tx));
                Some(rx)
            }
        };
        if let Some(rx) = waiting {
            expect_on(&self.channel, seq);
            if let Ok(Ok(Some(prev))) = tokio::time::timeout(POSITION_WAIT, rx).await {
                return Ok(prev);
            }
            tracing::debug!(room = %self.room_id, seq, "position not learnt live, asking the stream");
        }
        self.hub
            .stream
            .newest_up_to(&self.room_id, seq.saturating_sub(1))
            .await
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let mut state = lock(&self.channel.state);
        state.watchers = state.watchers.saturating_sub(1);
        state.waiters.retain(|(_, tx)| !tx.is_closed());
        if state.watchers == 0 {
            state.recent = Default::default();
        }
    }
}
