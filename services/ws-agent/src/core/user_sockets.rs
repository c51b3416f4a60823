//! Per-user interest: the agent listens to a user's event subjects
//! (`dyschat.events.user.<user_id>.*`) only while it holds a socket of that user, and forwards
//! what arrives to exactly those sockets: read markers (`.read`, published by the agent that
//! moved one; the socket whose `read` moved it has its answer already and is skipped) and
//! notifications (`.feed`, re-published by the feed stream with their `notification_id` as
//! `Nats-Sequence`).
//!
//! Why per user and not one wildcard subscription: with a wildcard every agent would receive
//! every user's events and drop most of them; with one subscription per local user, the server
//! routes each event only to the agents that have a socket of its user, so the cost of an event
//! does not grow with the number of agents. The first socket of a user subscribes (and waits a
//! bounded while for the subscription to be registered, so a frame sent right after `ready` is
//! not missed), the last one to close unsubscribes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use dyschat_protocol::subjects::{self, UserEventKind};
use dyschat_protocol::wire::{ReadMarkerEvent, ServerFrame, StoredNotification};
use futures::StreamExt;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::ports::{UserEventMessage, UserEvents};
use crate::socket::{OutFrame, SocketHandle};

/// How long a user's first socket waits for the subscription before it goes on without it.
const SUBSCRIBE_WAIT: Duration = Duration::from_secs(5);
/// How long a failed subscription waits before trying again (while the user has a socket).
const RETRY: Duration = Duration::from_secs(1);

struct Entry {
    sockets: Vec<SocketHandle>,
    /// Ends the user's subscription.
    stop: CancellationToken,
}

pub(crate) struct UserSockets {
    events: Arc<dyn UserEvents>,
    /// This agent's instance id, the first part of a read marker's `origin`.
    instance: String,
    users: Mutex<HashMap<String, Entry>>,
    tracker: TaskTracker,
    shutdown: CancellationToken,
}

impl UserSockets {
    pub(crate) fn new(
        events: Arc<dyn UserEvents>,
        instance: String,
        tracker: TaskTracker,
        shutdown: CancellationToken,
    ) -> Arc<Self> {
        Arc::new(UserSockets {
            events,
            instance,
            users: Mutex::new(HashMap::new()),
            tracker,
            shutdown,
        })
    }

    fn users(&self) -> MutexGuard<'_, HashMap<String, Entry>> {
        self.users.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Lists an authenticated socket under its user; the user's first socket here subscribes.
    pub(crate) async fn attach(self: &Arc<Self>, socket: &SocketHandle) {
        let user_id = socket.user_id().to_string();
        let first = {
            let mut users = self.users();
            let entry = users.entry(user_id.clone()).or_insert_with(|| Entry {
                sockets: Vec::new(),
                stop: self.shutdown.child_token(),
            });
            entry.sockets.push(socket.clone());
            (entry.sockets.len() == 1).then(|| entry.stop.clone())
        };
        let Some(stop) = first else { return };
        let (ready, subscribed) = tokio::sync::oneshot::channel();
        let this = self.clone();
        self.tracker
            .spawn(async move { this.forward(user_id, stop, ready).await });
        let _ = tokio::time::timeout(SUBSCRIBE_WAIT, subscribed).await;
    }

    /// Removes a closed socket; the user's last socket here unsubscribes.
    pub(crate) fn detach(&self, socket: &SocketHandle) {
        let mut users = self.users();
        let Some(entry) = users.get_mut(socket.user_id()) else {
            return;
        };
        entry.sockets.retain(|s| s.id() != socket.id());
        if entry.sockets.is_empty() {
            if let Some(entry) = users.remove(socket.user_id()) {
                entry.stop.cancel();
            }
        }
    }

    /// The users with a subscription here (tests).
    #[cfg(test)]
    pub(crate) fn users_listened(&self) -> usize {
        self.users().len()
    }

    /// Subscribes (retrying while the user is still here), then forwards until `stop`.
    async fn forward(
        self: Arc<Self>,
        user_id: String,
        stop: CancellationToken,
        ready: tokio::sync::oneshot::Sender<()>,
    ) {
        let mut ready = Some(ready);
        let mut events = loop {
            let attempt = tokio::select! {
                _ = stop.cancelled() => return,
                attempt = self.events.subscribe(&user_id) => attempt,
            };
            // The first socket goes on after the first attempt, whatever its outcome.
            if let Some(ready) = ready.take() {
                let _ = ready.send(());
            }
            match attempt {
                Ok(events) => break events,
                Err(e) => {
                    tracing::warn!(error = %e, user = %user_id, "user events subscription failed")
                }
            }
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(RETRY) => {}
            }
        };
        loop {
            let payload = tokio::select! {
                _ = stop.cancelled() => return,
                next = events.next() => match next {
                    Some(payload) => payload,
                    None => return,
                },
            };
            self.deliver(&user_id, &payload);
        }
    }

    /// The `origin` of a read marker moved by socket `socket_id` of this agent.
    pub(crate) fn origin(&self, socket_id: u64) -> String {
        format!("{}/{socket_id}", self.instance)
    }

    /// One event of the user's subjects, to each of their sockets here.
    fn deliver(&self, user_id: &str, event: &UserEventMessage) {
        let Some((subject_user, kind)) = subjects::parse_user_event(&event.subject) else {
            tracing::debug!(subject = %event.subject, "event on an unknown user subject ignored");
            return;
        };
        if subject_user != user_id {
            return;
        }
        let (frame, skip) = match kind {
            UserEventKind::ReadMarker => {
                let marker = match serde_json::from_slice::<ReadMarkerEvent>(&event.payload) {
                    Ok(marker) if marker.user_id == user_id => marker,
                    Ok(_) => return,
                    Err(e) => {
                        tracing::debug!(error = %e, "undecodable read marker event ignored");
                        return;
                    }
                };
                let frame = ServerFrame::ReadMarker {
                    room_id: marker.room_id,
                    seq: marker.seq,
                    reference: None,
                };
                (frame, marker.origin)
            }
            UserEventKind::Notification => {
                let id = event.sequence;
                let stored = serde_json::from_slice::<StoredNotification>(&event.payload);
                let (Some(id), Ok(stored)) = (id, stored) else {
                    tracing::debug!("undecodable notification ignored");
                    return;
                };
                // A new notification is newer than any marker (a marker names an existing one).
                let frame = ServerFrame::Notification {
                    notification: stored.view(id, 0),
                };
                (frame, None)
            }
        };
        let frame = OutFrame::new(&frame);
        let sockets = self
            .users()
            .get(user_id)
            .map(|e| e.sockets.clone())
            .unwrap_or_default();
        for socket in sockets {
            if skip.as_deref() == Some(self.origin(socket.id()).as_str()) {
                continue;
            }
            socket.push(frame.clone());
        }
    }
}
