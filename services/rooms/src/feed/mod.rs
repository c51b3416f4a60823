//! Each user's feed (contract section 8): the rooms service makes the notifications, because it
//! knows what a message alone does not say (the room's kind and a direct room's peer, who is
//! still a member, who blocks whom).
//!
//! Event-driven on NATS's own features: a durable pull consumer `feed` on `DYSCHAT_MESSAGES`
//! (messages and their change events: an edit or a reaction makes none, a deletion erases the
//! message's notifications, see [`erase`]), shared by every rooms instance. For each message [`rules::recipients`] says who
//! is told and why; the recipients who are still members and do not block the sender (two
//! batched reads) get a [`StoredNotification`] on `dyschat.feed.<user_id>` in the `DYSCHAT_FEED`
//! stream, with `Nats-Msg-Id` `<room>:<seq>:<user>`, and only then is the message acked: a
//! redelivery stores nothing twice. The stream re-publishes each stored notification to the
//! user's event subject, which the agents holding a socket of that user listen to.
//! Invitations publish an `invite` notification directly ([`Feed::invite`]).

mod erase;
mod rules;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::{self, AckKind};
use async_nats::HeaderMap;
use dyschat_protocol::policy::RoomKind;
use dyschat_protocol::wire::{
    self, NotificationKind, StoredChange, StoredMessage, StoredNotification, UserView,
};
use dyschat_protocol::{layout, subjects};
use dyschat_runtime::config::TopologySettings;
use dyschat_runtime::topology;
use futures::StreamExt;
use tokio_util::sync::CancellationToken;

use crate::store::{Store, StoreError};

/// Messages handled at once by one rooms instance.
const CONCURRENCY: usize = 32;
/// Messages pulled per request of the consumer.
const PULL_BATCH: usize = 64;
/// How long one publish may wait for the stream's acknowledgement.
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a failed message waits before it is given again.
const RETRY_DELAY: Duration = Duration::from_secs(2);
/// How long the consumer waits before it is made again after its stream of messages failed.
const RESTART_PAUSE: Duration = Duration::from_secs(1);
/// Rooms whose kind and peers are remembered (they never change); past that the memory is
/// emptied and filled again.
const MAX_SHAPES: usize = 100_000;

/// Ensures what the feed uses: the messages stream, the feed stream and the `feed` consumer
/// (after a reconnection, too: a replaced nats-server has none of them, and the consumer's
/// stream of messages pulls from the durable again once it exists).
/// The consumer is partition `k`'s: one `feed` consumer on each message stream.
pub(crate) async fn ensure(
    client: &async_nats::Client,
    topology: &TopologySettings,
    k: u16,
) -> Result<jetstream::consumer::PullConsumer, topology::TopologyError> {
    let js = jetstream::new(client.clone());
    let (messages, _feed) = tokio::try_join!(
        topology::ensure_message_streams(&js, topology),
        topology::ensure_feed_stream(&js, topology),
    )?;
    let filter = messages.layout().republish_source(k);
    topology::ensure_feed_consumer(messages.partition(k), filter).await
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum FeedError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("publishing a notification failed: {0}")]
    Publish(String),
    #[error("publishing a notification timed out")]
    Timeout,
}

/// What the feed needs of a room, which never changes: the two users of a direct room.
#[derive(Debug, Clone)]
enum Shape {
    Room,
    Direct(Vec<UserView>),
}

#[derive(Clone)]
pub(crate) struct Feed {
    store: Arc<Store>,
    client: async_nats::Client,
    js: jetstream::Context,
    shapes: Arc<Mutex<HashMap<String, Shape>>>,
}

impl Feed {
    pub(crate) fn new(store: Arc<Store>, client: async_nats::Client) -> Self {
        Feed {
            store,
            js: jetstream::new(client.clone()),
            client,
            shapes: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// Consumes room messages until `shutdown`, making the consumer (and the streams it needs)
    /// again whenever its stream of messages fails, e.g. after a nats-server was replaced.
    /// With several message streams, each partition's consumer is consumed on its own (each
    /// with [`CONCURRENCY`] messages at once).
    pub(crate) async fn run(self, topology: TopologySettings, shutdown: CancellationToken) {
        let partitions = topology.message_streams().all();
        futures::future::join_all(partitions.map(|k| self.run_partition(&topology, k, &shutdown)))
            .await;
    }

    async fn run_partition(
        &self,
        topology: &TopologySettings,
        k: u16,
        shutdown: &CancellationToken,
    ) {
        loop {
            if let Err(e) = self.consume(topology, k, shutdown).await {
                tracing::warn!(partition = k, error = %e, "feed consumer stopped; making it again");
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(RESTART_PAUSE) => {}
            }
        }
    }

    async fn consume(
        &self,
        topology: &TopologySettings,
        k: u16,
        shutdown: &CancellationToken,
    ) -> Result<(), String> {
        let consumer = ensure(&self.client, topology, k)
            .await
            .map_err(|e| e.to_string())?;
        let messages = consumer
            .stream()
            .max_messages_per_batch(PULL_BATCH)
            .heartbeat(Duration::from_secs(5))
            .messages()
            .await
            .map_err(|e| e.to_string())?;
        tracing::info!(consumer = layout::FEED_CONSUMER, "feed consuming");
        let work = messages.for_each_concurrent(CONCURRENCY, |item| async move {
            match item {
                Ok(message) => self.handle(message).await,
                Err(e) => tracing::warn!(error = %e, "feed consumer stream error"),
            }
        });
        tokio::select! {
            _ = shutdown.cancelled() => Ok(()),
            _ = work => Err("the feed consumer's stream ended".into()),
        }
    }

    /// One message: its notifications, then the ack; a failure leaves it for redelivery.
    async fn handle(&self, message: jetstream::Message) {
        let seq = match message.info() {
            Ok(info) => info.stream_sequence,
            Err(e) => {
                tracing::warn!(error = %e, "feed message without its sequence skipped");
                let _ = message.ack().await;
                return;
            }
        };
        let outcome = if let Some(room_id) = subjects::parse_room_messages(&message.subject) {
            match serde_json::from_slice::<StoredMessage>(&message.payload) {
                Ok(stored) if stored.room_id == room_id && !stored.deleted => {
                    self.notify(&stored, seq).await
                }
                Ok(_) => Ok(()),
                Err(e) => {
                    tracing::debug!(error = %e, seq, "undecodable message makes no notification");
                    Ok(())
                }
            }
        } else if let Some((room_id, _)) = subjects::parse_change(&message.subject) {
            match serde_json::from_slice::<StoredChange>(&message.payload) {
                Ok(change) if change.room_id == room_id => self.changed(&change).await,
                _ => Ok(()),
            }
        } else {
            Ok(())
        };
        let ack = match outcome {
            Ok(()) => message.ack().await,
            Err(e) => {
                tracing::warn!(error = %e, seq, "notifications of a message failed; retrying");
                message.ack_with(AckKind::Nak(Some(RETRY_DELAY))).await
            }
        };
        if let Err(e) = ack {
            tracing::debug!(error = %e, seq, "feed ack failed (the message comes again)");
        }
    }

    /// The notifications of message `seq`.
    async fn notify(&self, message: &StoredMessage, seq: u64) -> Result<(), FeedError> {
        let Some(shape) = self.shape(&message.room_id).await? else {
            return Ok(()); // the room is gone
        };
        let peer = match &shape {
            Shape::Direct(peers) => peers
                .iter()
                .find(|p| p.user_id != message.sender_id)
                .map(|p| p.user_id.as_str()),
            Shape::Room => None,
        };
        let recipients = rules::recipients(message, peer);
        if recipients.is_empty() {
            return Ok(());
        }
        let users: Vec<String> = recipients.iter().map(|(u, _)| u.clone()).collect();
        let (members, blockers, deleted) = tokio::try_join!(
            async { Ok(self.store.members_among(&message.room_id, &users).await?) },
            async {
                Ok(self
                    .store
                    .blockers_among(&users, &message.sender_id)
                    .await?)
            },
            self.deleted(&message.room_id, seq),
        )?;
        if deleted {
            return Ok(());
        }
        let from = UserView {
            user_id: message.sender_id.clone(),
            username: message.sender_name.clone(),
        };
        let preview = wire::preview(&message.body);
        let publishes = recipients
            .into_iter()
            .filter(|(user, _)| members.contains(user) && !blockers.contains(user))
            .map(|(user, kind)| {
                let notification = StoredNotification {
                    kind,
                    room_id: message.room_id.clone(),
                    seq,
                    from: from.clone(),
                    preview: preview.clone(),
                    created_at: message.sent_at.clone(),
                };
                let id = layout::feed_dedupe_id(&message.room_id, seq, &user);
                async move { self.publish(&user, id, &notification).await }
            });
        let ids = futures::future::try_join_all(publishes).await?;
        if !ids.is_empty() {
            self.record(&message.room_id, seq, ids).await?;
        }
        Ok(())
    }

    /// Tells `invitee` that `by` invited them to the room (`at`: the invitation's time, which
    /// tells a new invitation from a retried one). Unless the invitee blocks the inviter.
    pub(crate) async fn invite(
        &self,
        room_id: &str,
        room_name: &str,
        by: UserView,
        invitee: &str,
        at: &str,
    ) -> Result<(), FeedError> {
        if self.store.blocks(invitee, &by.user_id).await? {
            return Ok(());
        }
        let notification = StoredNotification {
            kind: NotificationKind::Invite,
            room_id: room_id.to_string(),
            seq: 0,
            from: by,
            preview: wire::preview(room_name),
            created_at: at.to_string(),
        };
        let id = format!("invite:{room_id}:{invitee}:{at}");
        self.publish(invitee, id, &notification).await.map(drop)
    }

    /// Stores `notification` in the user's feed; returns its `notification_id`.
    async fn publish(
        &self,
        user_id: &str,
        dedupe_id: String,
        notification: &StoredNotification,
    ) -> Result<u64, FeedError> {
        let payload =
            serde_json::to_vec(notification).map_err(|e| FeedError::Publish(e.to_string()))?;
        let mut headers = HeaderMap::new();
        headers.insert(async_nats::header::NATS_MESSAGE_ID, dedupe_id.as_str());
        let publish = async {
            let ack = self
                .js
                .publish_with_headers(subjects::feed(user_id), headers, payload.into())
                .await
                .map_err(|e| FeedError::Publish(e.to_string()))?;
            ack.await.map_err(|e| FeedError::Publish(e.to_string()))
        };
        let ack = tokio::time::timeout(PUBLISH_TIMEOUT, publish)
            .await
            .map_err(|_| FeedError::Timeout)??;
        tracing::debug!(user = %user_id, kind = ?notification.kind, room = %notification.room_id, "notification stored");
        Ok(ack.sequence)
    }

    /// The room's kind and peers, from memory or its record; `None` for a room that is gone.
    async fn shape(&self, room_id: &str) -> Result<Option<Shape>, FeedError> {
        if let Some(shape) = self.shapes().get(room_id) {
            return Ok(Some(shape.clone()));
        }
        let Some((record, _)) = self.store.room(room_id).await? else {
            return Ok(None);
        };
        if record.deleted {
            return Ok(None);
        }
        let shape = match record.kind {
            RoomKind::Direct => Shape::Direct(record.peers),
            RoomKind::Room => Shape::Room,
        };
        let mut shapes = self.shapes();
        if shapes.len() >= MAX_SHAPES {
            shapes.clear();
        }
        shapes.insert(room_id.to_string(), shape.clone());
        Ok(Some(shape))
    }

    fn shapes(&self) -> std::sync::MutexGuard<'_, HashMap<String, Shape>> {
        self.shapes.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn ids_name_message_and_user() {
        assert_eq!(
            dyschat_protocol::layout::feed_dedupe_id("r", 7, "u"),
            "r:7:u"
        );
    }
}
