//! Sending a message: the one path both edges take.
//!
//! [`Core::send`] validates, rate-limits, authorizes, attaches the files it names
//! ([`super::files`]) and publishes; it returns as soon as the
//! publish is on the wire, so a socket reads its next frame while the store is confirmed.
//! [`Core::confirm`] waits for the stream's acknowledgement (a retry with the same
//! `client_msg_id` is a duplicate that answers the first message). The WebSocket answers with an
//! `ack`; an HTTP post wants the whole Message ([`Reply::Message`]), whose `prev_seq` it learns
//! from the room task ([`crate::hub::Watch`]), never from a store that may be behind.
//!
//! Publish and confirm run in the caller's `chat.send` span ([`send_span`]): the root of the
//! message's trace (a child of the HTTP request for a post).

use std::time::Instant;

use dyschat_protocol::{
    ids, subjects, time,
    wire::{dedupe_id, Message, StoredMessage},
};
use dyschat_runtime::metric;

use super::{Core, CoreError, User};
use crate::hub::Watch;
use crate::limits::Class;
use crate::ports::{Ack, AckFuture};
use futures::FutureExt;

/// What a user asked to send. `room_id` has passed the edge's id check.
#[derive(Debug, Clone)]
pub(crate) struct Outgoing {
    pub room_id: String,
    pub body: String,
    pub client_msg_id: Option<String>,
    /// The `seq` of the message this one answers.
    pub reply_to: Option<u64>,
    /// File ids to attach.
    pub attachments: Vec<String>,
}

/// What the edge answers a send with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reply {
    /// `ack {seq, ...}` (WebSocket).
    Ack,
    /// The whole Message, `prev_seq` included (HTTP).
    Message,
}

/// A send whose publish is on the wire; [`Core::confirm`] waits for the store.
pub(crate) struct Pending {
    ack: AckFuture,
    stored: StoredMessage,
    published: Instant,
    watch: Option<Watch>,
}

/// A stored send.
#[derive(Debug, Clone)]
pub(crate) struct Sent {
    pub seq: u64,
    pub duplicate: bool,
    /// The message as stored (for a duplicate: the first one).
    pub stored: StoredMessage,
    /// Known when the send asked for [`Reply::Message`].
    pub prev_seq: Option<u64>,
}

impl Sent {
    /// The Message of a send made with [`Reply::Message`].
    pub(crate) fn into_message(self) -> Result<Message, CoreError> {
        let prev_seq = self
            .prev_seq
            .ok_or_else(|| CoreError::Internal("the send did not ask for its message".into()))?;
        Ok(Message::from_stored(self.stored, self.seq, prev_seq))
    }
}

impl Core {
    /// Validates, rate-limits, authorizes and publishes a send of `user`.
    pub(crate) async fn send(
        &self,
        user: &User,
        out: Outgoing,
        reply: Reply,
    ) -> Result<Pending, CoreError> {
        debug_assert!(ids::is_valid_id(&out.room_id));
        let started = Instant::now();
        ids::validate_body(&out.body)?;
        let supplied = out.client_msg_id.is_some();
        let client_msg_id = match out.client_msg_id {
            Some(id) => {
                ids::validate_id("client_msg_id", &id)?;
                id
            }
            None => ids::new_id(),
        };
        self.limits.check(Class::Send, &user.user_id).await?;
        self.membership
            .decide(
                &out.room_id,
                &user.user_id,
                dyschat_protocol::policy::Action::Post,
            )
            .await?;
        // Checked before anything is read (the files themselves are marked attached last).
        super::files::rules::check_attachments(&out.room_id, &out.attachments)?;
        let mentioned = self
            .mentions_of(&out.room_id, &out.body, &user.user_id)
            .await?;
        let reply_to = match out.reply_to {
            Some(seq) => Some((seq, self.reply_parent(&out.room_id, seq).await?.sender_id)),
            None => None,
        };
        // A retry older than the stream's own window is answered from the index (a duplicate
        // costs no quota and is not published again).
        let earlier = if supplied {
            let asked = Instant::now();
            let earlier = self
                .earlier_send(&out.room_id, &user.user_id, &client_msg_id)
                .await?;
            record_hop(metric::hop::DEDUPE, asked.elapsed());
            earlier
        } else {
            None
        };
        if earlier.is_none() {
            self.limits
                .check_stored_bytes(&user.user_id, out.body.len())
                .await?;
        }
        // Held from before the publish, so the room task remembers the message's position even
        // when its live copy arrives before its ack.
        let watch = match reply {
            Reply::Message => Some(
                self.hub
                    .watch(&out.room_id)
                    .await
                    .map_err(CoreError::unavailable("room subscription"))?,
            ),
            Reply::Ack => None,
        };
        let mut stored = StoredMessage::sent(
            out.room_id,
            ids::new_id(),
            client_msg_id,
            user.user_id.clone(),
            user.username.clone(),
            out.body,
            time::now(),
        );
        stored.mentions = mentioned;
        if earlier.is_none() && !out.attachments.is_empty() {
            // Marked attached before the publish: no sweep ever removes a file a stored message
            // names (a publish that fails leaves them attached to nothing, merely unswept).
            let holder = dedupe_id(&stored.sender_id, &stored.room_id, &stored.client_msg_id);
            stored.attachments = self
                .attach(&stored.room_id, &holder, &out.attachments)
                .await?;
        }
        if let Some((seq, sender)) = reply_to {
            stored.reply_to = Some(seq);
            stored.reply_to_sender = Some(sender);
        }
        let span = tracing::Span::current();
        span.record("message.id", stored.message_id.as_str());
        span.record("message.client_id", stored.client_msg_id.as_str());
        let ack: AckFuture = match earlier {
            Some(seq) => futures::future::ready(Ok(Ack {
                seq,
                duplicate: true,
            }))
            .boxed(),
            None => {
                let payload =
                    serde_json::to_vec(&stored).map_err(|e| CoreError::Internal(e.to_string()))?;
                let dedupe = dedupe_id(&stored.sender_id, &stored.room_id, &stored.client_msg_id);
                let publishing = Instant::now();
                record_hop(metric::hop::CHECKS, publishing - started);
                let ack = self
                    .stream
                    .publish(&stored.room_id, dedupe, payload.into())
                    .await
                    .map_err(CoreError::unavailable("publish"))?;
                record_hop(metric::hop::PUBLISH, publishing.elapsed());
                ack
            }
        };
        Ok(Pending {
            ack,
            stored,
            published: Instant::now(),
            watch,
        })
    }

    /// Waits for the stream to store a published send.
    pub(crate) async fn confirm(&self, pending: Pending) -> Result<Sent, CoreError> {
        let ack = pending
            .ack
            .await
            .map_err(CoreError::unavailable("message store"))?;
        let waited = pending.published.elapsed();
        metrics::histogram!(metric::PUBLISH_ACK_SECONDS).record(waited.as_secs_f64());
        record_hop(metric::hop::STORE_ACK, waited);
        let span = tracing::Span::current();
        span.record("message.seq", ack.seq);
        span.record("duplicate", ack.duplicate);
        let stored = if ack.duplicate {
            self.stream
                .stored(&pending.stored.room_id, ack.seq)
                .await
                .map_err(CoreError::unavailable("message lookup"))?
        } else {
            pending.stored
        };
        metrics::counter!(metric::MESSAGES_PUBLISHED_TOTAL, "duplicate" => ack.duplicate.to_string())
            .increment(1);
        self.hub.expect(&stored.room_id, ack.seq);
        let prev_seq = match &pending.watch {
            Some(watch) => Some(
                watch
                    .prev_of(ack.seq)
                    .await
                    .map_err(CoreError::unavailable("message position lookup"))?,
            ),
            None => None,
        };
        Ok(Sent {
            seq: ack.seq,
            duplicate: ack.duplicate,
            stored,
            prev_seq,
        })
    }
}

/// Records one hop of a message through the agent ([`metric::HOP_SECONDS`]).
pub(crate) fn record_hop(hop: &'static str, took: std::time::Duration) {
    metrics::histogram!(metric::HOP_SECONDS, "hop" => hop).record(took.as_secs_f64());
}

/// The `chat.send` span of one send; `message.id` and `message.seq` are filled in as they are
/// known.
pub(crate) fn send_span(room_id: &str) -> tracing::Span {
    tracing::info_span!(
        "chat.send",
        otel.kind = "producer",
        messaging.system = "nats",
        messaging.operation.type = "publish",
        messaging.destination.name = subjects::ROOM_MESSAGES_WILDCARD,
        room.id = %room_id,
        message.id = tracing::field::Empty,
        message.client_id = tracing::field::Empty,
        message.seq = tracing::field::Empty,
        duplicate = tracing::field::Empty,
        dyschat.service = "dyschat-ws-agent",
    )
}
