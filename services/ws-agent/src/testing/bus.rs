//! The fake bus: the rooms' live feeds (what the fake stream re-publishes, or a test injects)
//! and the typing and receipt events the core publishes.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use dyschat_protocol::wire::{ReceiptEvent, TypingEvent};
use futures::channel::mpsc;
use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt};

use super::lock;
use crate::ports::{Bus, LiveMessage, LiveStream, PortResult};

/// The fake live feeds and typing events.
#[derive(Default)]
pub(crate) struct FakeBus {
    live: Mutex<HashMap<String, Vec<mpsc::UnboundedSender<LiveMessage>>>>,
    pub typing: Mutex<Vec<TypingEvent>>,
    pub receipts: Mutex<Vec<ReceiptEvent>>,
    pub subscribes: AtomicUsize,
}

impl FakeBus {
    /// Delivers `message` to every live subscriber of the room.
    pub(crate) fn inject(&self, room_id: &str, message: LiveMessage) {
        let mut live = lock(&self.live);
        if let Some(subscribers) = live.get_mut(room_id) {
            subscribers.retain(|tx| tx.unbounded_send(message.clone()).is_ok());
        }
    }

    /// Live subscriptions to the room still open.
    pub(crate) fn subscribers(&self, room_id: &str) -> usize {
        let mut live = lock(&self.live);
        live.get_mut(room_id).map_or(0, |subscribers| {
            subscribers.retain(|tx| !tx.is_closed());
            subscribers.len()
        })
    }
}

impl Bus for FakeBus {
    fn subscribe_live<'a>(&'a self, room_id: &'a str) -> BoxFuture<'a, PortResult<LiveStream>> {
        self.subscribes.fetch_add(1, Ordering::SeqCst);
        let (tx, rx) = mpsc::unbounded();
        lock(&self.live)
            .entry(room_id.to_string())
            .or_default()
            .push(tx);
        let live: LiveStream = rx.boxed();
        futures::future::ready(Ok(live)).boxed()
    }

    fn publish_typing<'a>(&'a self, event: &'a TypingEvent) -> BoxFuture<'a, PortResult<()>> {
        lock(&self.typing).push(event.clone());
        futures::future::ready(Ok(())).boxed()
    }

    fn publish_receipt<'a>(&'a self, event: &'a ReceiptEvent) -> BoxFuture<'a, PortResult<()>> {
        lock(&self.receipts).push(event.clone());
        futures::future::ready(Ok(())).boxed()
    }
}
