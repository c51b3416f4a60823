//! [`Bus`] over core NATS: a room's live feed is two subscriptions to its RePublish subjects
//! (messages and change events, merged in order by [`super::live`]), read
//! into [`LiveMessage`]s as it arrives (no copy, no allocation beyond the client's own), and the
//! mesh events are three wildcard subscriptions merged into one stream.

use async_nats::{header, HeaderMap};
use dyschat_protocol::{
    subjects,
    wire::{ReceiptEvent, TypingEvent},
};
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use futures::{FutureExt, StreamExt};

use super::live::InOrder;
use super::{bounded, publish_json};
use crate::ports::{Bus, EventMessage, LiveKind, LiveMessage, LiveStream, PortResult};

#[derive(Clone)]
pub(crate) struct NatsBus {
    client: async_nats::Client,
}

impl NatsBus {
    pub(crate) fn new(client: async_nats::Client) -> Self {
        NatsBus { client }
    }

    /// The mesh's events on `wildcards`, as one stream. Membership events get a subscription and
    /// a task of their own (see `lib.rs`), so a flood of typing or presence cannot make the
    /// client drop them as a slow consumer, nor delay them behind the flood.
    pub(crate) async fn events(
        &self,
        wildcards: &[&str],
    ) -> PortResult<BoxStream<'static, EventMessage>> {
        let mut subscriptions = Vec::new();
        for wildcard in wildcards {
            subscriptions.push(bounded(self.client.subscribe(wildcard.to_string())).await?);
        }
        let events = futures::stream::select_all(subscriptions).map(|m| EventMessage {
            subject: m.subject.to_string(),
            payload: m.payload,
            headers: m.headers,
        });
        Ok(events.boxed())
    }
}

/// `Nats-Sequence` and `Nats-Last-Sequence` of a re-published message: the contract's `seq` and
/// `prev_seq`.
pub(crate) fn sequence_headers(headers: &HeaderMap) -> Option<(u64, u64)> {
    let seq = headers.get(header::NATS_SEQUENCE)?.as_str().parse().ok()?;
    let prev = headers
        .get(header::NATS_LAST_SEQUENCE)
        .map_or(Some(0), |v| v.as_str().parse().ok())?;
    Some((seq, prev))
}

fn live_message(kind: LiveKind, message: async_nats::Message) -> Option<LiveMessage> {
    let Some((seq, prev_seq)) = message.headers.as_ref().and_then(sequence_headers) else {
        tracing::warn!(subject = %message.subject, "live message without sequence headers ignored");
        return None;
    };
    Some(LiveMessage {
        kind,
        seq,
        prev_seq,
        payload: message.payload,
        headers: message.headers,
        received: std::time::Instant::now(),
    })
}

impl Bus for NatsBus {
    fn subscribe_live<'a>(&'a self, room_id: &'a str) -> BoxFuture<'a, PortResult<LiveStream>> {
        async move {
            let messages = bounded(self.client.subscribe(subjects::live(room_id))).await?;
            let changes = bounded(self.client.subscribe(subjects::live_changes(room_id))).await?;
            let read = |kind| move |m| futures::future::ready(live_message(kind, m));
            let live: LiveStream = InOrder::new(
                messages.filter_map(read(LiveKind::Message)),
                changes.filter_map(read(LiveKind::Change)),
            )
            .boxed();
            Ok(live)
        }
        .boxed()
    }

    fn publish_typing<'a>(&'a self, event: &'a TypingEvent) -> BoxFuture<'a, PortResult<()>> {
        publish_json(&self.client, subjects::typing(&event.room_id), event).boxed()
    }

    fn publish_receipt<'a>(&'a self, event: &'a ReceiptEvent) -> BoxFuture<'a, PortResult<()>> {
        publish_json(&self.client, subjects::receipt(&event.room_id), event).boxed()
    }
}
