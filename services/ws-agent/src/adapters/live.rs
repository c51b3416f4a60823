//! A room's live feed from its two RePublish subscriptions (messages on `dyschat.live.room.<R>`,
//! change events on `dyschat.live.room.<R>.chg.*`), merged back into the stream's order.
//!
//! No single subject pattern covers both, so the agent holds two subscriptions on one
//! connection. The server writes them to the connection in the stream's order and the client
//! hands each to its subscription's channel in that order, so when a change arrives, every
//! message stored before it is already in the messages channel: [`InOrder`] looks there once
//! more before handing the change on, and of two waiting entries hands on the older first.

use std::pin::Pin;
use std::task::{Context, Poll};

use futures::{Stream, StreamExt};

use crate::ports::LiveMessage;

/// Two live subscriptions merged in sequence order. Ends when either ends: a feed that lost
/// half its entries is a lost feed.
pub(crate) struct InOrder<A, B> {
    messages: A,
    changes: B,
    held_message: Option<LiveMessage>,
    held_change: Option<LiveMessage>,
    ended: bool,
}

impl<A, B> InOrder<A, B> {
    pub(crate) fn new(messages: A, changes: B) -> Self {
        InOrder {
            messages,
            changes,
            held_message: None,
            held_change: None,
            ended: false,
        }
    }
}

fn poll_into<S: Stream<Item = LiveMessage> + Unpin>(
    stream: &mut S,
    slot: &mut Option<LiveMessage>,
    ended: &mut bool,
    cx: &mut Context<'_>,
) {
    if slot.is_none() && !*ended {
        match stream.poll_next_unpin(cx) {
            Poll::Ready(Some(m)) => *slot = Some(m),
            Poll::Ready(None) => *ended = true,
            Poll::Pending => {}
        }
    }
}

impl<A, B> Stream for InOrder<A, B>
where
    A: Stream<Item = LiveMessage> + Unpin,
    B: Stream<Item = LiveMessage> + Unpin,
{
    type Item = LiveMessage;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<LiveMessage>> {
        let this = self.get_mut();
        poll_into(
            &mut this.messages,
            &mut this.held_message,
            &mut this.ended,
            cx,
        );
        poll_into(
            &mut this.changes,
            &mut this.held_change,
            &mut this.ended,
            cx,
        );
        if this.held_change.is_some() {
            // Whatever was stored before this change is in the messages channel by now.
            poll_into(
                &mut this.messages,
                &mut this.held_message,
                &mut this.ended,
                cx,
            );
        }
        let older_is_message = match (&this.held_message, &this.held_change) {
            (Some(m), Some(c)) => m.seq < c.seq,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (None, None) if this.ended => return Poll::Ready(None),
            (None, None) => return Poll::Pending,
        };
        let next = if older_is_message {
            this.held_message.take()
        } else {
            this.held_change.take()
        };
        Poll::Ready(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::LiveKind;
    use futures::channel::mpsc;
    use futures::FutureExt;

    fn entry(kind: LiveKind, seq: u64) -> LiveMessage {
        LiveMessage {
            kind,
            seq,
            prev_seq: 0,
            payload: Default::default(),
            headers: None,
            received: std::time::Instant::now(),
        }
    }

    #[tokio::test]
    async fn a_change_never_overtakes_an_earlier_message() {
        let (mtx, mrx) = mpsc::unbounded();
        let (ctx, crx) = mpsc::unbounded();
        let mut merged = InOrder::new(mrx, crx);
        // Sent in the stream's order: message 1, change 2, message 3; the change's channel
        // is polled while message 1 is "in flight" to its own.
        ctx.unbounded_send(entry(LiveKind::Change, 2)).unwrap();
        mtx.unbounded_send(entry(LiveKind::Message, 1)).unwrap();
        mtx.unbounded_send(entry(LiveKind::Message, 3)).unwrap();
        let order: Vec<u64> = (0..3)
            .map(|_| merged.next().now_or_never().flatten().unwrap().seq)
            .collect();
        assert_eq!(order, [1, 2, 3]);
        assert!(
            merged.next().now_or_never().is_none(),
            "pending while both are open"
        );
        drop(ctx);
        assert!(merged.next().await.is_none(), "ends when one feed ends");
    }
}
