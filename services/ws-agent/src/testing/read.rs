//! In-memory read markers (with a way to make writes lose a race) and per-user event subjects
//! (a publish reaches every subscriber of the user, like core NATS across agents).

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use bytes::Bytes;
use dyschat_protocol::subjects::{self, UserEventKind};
use dyschat_protocol::wire::{ReadMarkerEvent, StoredNotification};
use futures::channel::mpsc;
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use futures::{FutureExt, StreamExt};

use super::lock;
use crate::ports::{PortResult, ReadMarkerStore, StoredMarker, UserEventMessage, UserEvents};

#[derive(Default)]
pub(crate) struct FakeReadMarkers {
    markers: Mutex<HashMap<(String, String), StoredMarker>>,
    revision: AtomicUsize,
    /// The next this many writes find another write came first (and bump the entry's revision).
    pub lose_races: AtomicUsize,
    pub batches: AtomicUsize,
}

impl FakeReadMarkers {
    pub(crate) fn get(&self, user_id: &str, room_id: &str) -> Option<u64> {
        lock(&self.markers)
            .get(&(user_id.to_string(), room_id.to_string()))
            .map(|m| m.seq)
    }

    fn next_revision(&self) -> u64 {
        self.revision.fetch_add(1, Ordering::SeqCst) as u64 + 1
    }
}

impl ReadMarkerStore for FakeReadMarkers {
    fn marker<'a>(
        &'a self,
        user_id: &'a str,
        room_id: &'a str,
    ) -> BoxFuture<'a, PortResult<Option<StoredMarker>>> {
        let found = lock(&self.markers)
            .get(&(user_id.to_string(), room_id.to_string()))
            .copied();
        futures::future::ready(Ok(found)).boxed()
    }

    fn put_if<'a>(
        &'a self,
        user_id: &'a str,
        room_id: &'a str,
        seq: u64,
        expected: Option<u64>,
    ) -> BoxFuture<'a, PortResult<bool>> {
        let key = (user_id.to_string(), room_id.to_string());
        let lost = self
            .lose_races
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        let revision = self.next_revision();
        let mut markers = lock(&self.markers);
        let written = if lost {
            // Another device wrote the same marker meanwhile: same seq, newer revision.
            let current = markers.get(&key).map_or(0, |m| m.seq);
            markers.insert(
                key,
                StoredMarker {
                    seq: current,
                    revision,
                },
            );
            false
        } else if markers.get(&key).map(|m| m.revision) == expected {
            markers.insert(key, StoredMarker { seq, revision });
            true
        } else {
            false
        };
        futures::future::ready(Ok(written)).boxed()
    }

    fn markers<'a>(
        &'a self,
        user_id: &'a str,
        room_ids: &'a [String],
    ) -> BoxFuture<'a, PortResult<Vec<(String, u64)>>> {
        self.batches.fetch_add(1, Ordering::SeqCst);
        let markers = lock(&self.markers);
        let found = room_ids
            .iter()
            .filter_map(|room| {
                markers
                    .get(&(user_id.to_string(), room.clone()))
                    .map(|m| (room.clone(), m.seq))
            })
            .collect();
        futures::future::ready(Ok(found)).boxed()
    }

    fn room_markers<'a>(
        &'a self,
        room_id: &'a str,
        user_ids: &'a [String],
    ) -> BoxFuture<'a, PortResult<Vec<(String, u64)>>> {
        self.batches.fetch_add(1, Ordering::SeqCst);
        let markers = lock(&self.markers);
        let found = user_ids
            .iter()
            .filter_map(|user| {
                markers
                    .get(&(user.clone(), room_id.to_string()))
                    .map(|m| (user.clone(), m.seq))
            })
            .collect();
        futures::future::ready(Ok(found)).boxed()
    }
}

#[derive(Default)]
pub(crate) struct FakeUserEvents {
    subscribers: Mutex<HashMap<String, Vec<mpsc::UnboundedSender<UserEventMessage>>>>,
    pub published: Mutex<Vec<ReadMarkerEvent>>,
}

impl FakeUserEvents {
    /// Open subscriptions to the user's subject.
    pub(crate) fn subscribers(&self, user_id: &str) -> usize {
        let mut subscribers = lock(&self.subscribers);
        subscribers.get_mut(user_id).map_or(0, |s| {
            s.retain(|tx| !tx.is_closed());
            s.len()
        })
    }

    /// Delivers `event` to the user's subscribers, as another agent's publish would.
    pub(crate) fn inject(&self, event: &ReadMarkerEvent) {
        let payload = Bytes::from(serde_json::to_vec(event).unwrap_or_default());
        let subject = subjects::user_event(&event.user_id, UserEventKind::ReadMarker);
        self.deliver(&event.user_id, subject, payload, None);
    }

    /// Delivers a notification as the feed stream re-publishes it, with its id.
    pub(crate) fn inject_notification(&self, user_id: &str, id: u64, n: &StoredNotification) {
        let payload = Bytes::from(serde_json::to_vec(n).unwrap_or_default());
        let subject = subjects::user_event(user_id, UserEventKind::Notification);
        self.deliver(user_id, subject, payload, Some(id));
    }

    fn deliver(&self, user_id: &str, subject: String, payload: Bytes, sequence: Option<u64>) {
        let message = UserEventMessage {
            subject,
            payload,
            sequence,
        };
        if let Some(s) = lock(&self.subscribers).get_mut(user_id) {
            s.retain(|tx| tx.unbounded_send(message.clone()).is_ok());
        }
    }
}

impl UserEvents for FakeUserEvents {
    fn subscribe<'a>(
        &'a self,
        user_id: &'a str,
    ) -> BoxFuture<'a, PortResult<BoxStream<'static, UserEventMessage>>> {
        let (tx, rx) = mpsc::unbounded();
        lock(&self.subscribers)
            .entry(user_id.to_string())
            .or_default()
            .push(tx);
        futures::future::ready(Ok(rx.boxed())).boxed()
    }

    fn publish_read<'a>(&'a self, event: &'a ReadMarkerEvent) -> BoxFuture<'a, PortResult<()>> {
        lock(&self.published).push(event.clone());
        self.inject(event);
        futures::future::ready(Ok(())).boxed()
    }
}
