//! The frame operations of a session: join (with replay), leave, send, typing, history and
//! re-authentication. Each returns an [`ApiError`] that the caller turns into an `error` frame.

use std::time::Instant;

use dyschat_protocol::{
    ids,
    wire::{ServerFrame, TypingEvent},
    ApiError,
};
use dyschat_runtime::telemetry;
use tracing::Instrument;

use super::{Session, MAX_ROOMS_PER_SOCKET};
use crate::chat::SendRequest;
use crate::socket::OutFrame;

impl Session {
    /// A fresh token on an open socket extends its life (same user only).
    pub(super) fn reauthenticate(
        &mut self,
        token: &str,
        reference: Option<String>,
    ) -> Result<(), ApiError> {
        let user = self.state.verify_token(token)?;
        if user.user_id != self.user.user_id {
            return Err(ApiError::unauthorized("token is for another user"));
        }
        self.user.expires = user.expires;
        self.reply(ServerFrame::Ready {
            user_id: user.user_id,
            username: user.username,
            reference,
        });
        Ok(())
    }

    pub(super) async fn join(
        &mut self,
        room_id: &str,
        since: Option<u64>,
        reference: Option<String>,
    ) -> Result<(), ApiError> {
        ids::validate_id("room_id", room_id)?;
        if !self.joined.contains(room_id) && self.joined.len() >= MAX_ROOMS_PER_SOCKET {
            return Err(ApiError::bad_request(
                "too many rooms joined on this socket",
            ));
        }
        let state = self.state.clone();
        state.set_membership(room_id, &self.user, true).await?;
        if self.joined.remove(room_id) {
            state.hub.detach(room_id, self.socket.id()).await;
        }
        state.hub.attach(room_id, &self.socket).await?;
        self.joined.insert(room_id.to_string());
        match self.catch_up(room_id, since, reference).await {
            Ok(()) => Ok(()),
            Err(e) => {
                self.joined.remove(room_id);
                state.hub.detach(room_id, self.socket.id()).await;
                Err(e)
            }
        }
    }

    /// Sends `joined`, the replay after `since` if asked for, and switches the socket to live.
    pub(super) async fn catch_up(
        &mut self,
        room_id: &str,
        since: Option<u64>,
        reference: Option<String>,
    ) -> Result<(), ApiError> {
        let state = &self.state;
        let last_seq = state.chat.last_seq(room_id).await?;
        state.hub.note_position(room_id, last_seq);
        let joined = |recovered| ServerFrame::Joined {
            room_id: room_id.to_string(),
            last_seq,
            recovered,
            reference: reference.clone(),
        };
        let since = match since {
            Some(since) if since < last_seq => since,
            _ => {
                self.reply(joined(true));
                state.hub.activate(room_id, self.socket.id(), last_seq);
                return Ok(());
            }
        };
        let prev_of_first = state
            .chat
            .seq_before(room_id, since + 1)
            .await
            .unwrap_or(since);
        let limit = state.config.agent.recovery_limit;
        match state
            .chat
            .replay(room_id, since, last_seq, prev_of_first, limit)
            .await?
        {
            None => self.reply(joined(false)),
            Some(messages) => {
                self.reply(joined(true));
                for m in messages {
                    let frame = OutFrame::new(&ServerFrame::Message(m));
                    if !self.socket.push_wait(frame).await {
                        return Ok(());
                    }
                }
            }
        }
        state.hub.activate(room_id, self.socket.id(), last_seq);
        Ok(())
    }

    pub(super) async fn leave(
        &mut self,
        room_id: &str,
        reference: Option<String>,
    ) -> Result<(), ApiError> {
        ids::validate_id("room_id", room_id)?;
        let state = self.state.clone();
        state.set_membership(room_id, &self.user, false).await?;
        if self.joined.remove(room_id) {
            state.hub.detach(room_id, self.socket.id()).await;
        }
        self.reply(ServerFrame::Left {
            room_id: room_id.to_string(),
            reference,
        });
        Ok(())
    }

    pub(super) async fn send(
        &mut self,
        room_id: String,
        body: String,
        client_msg_id: Option<String>,
        reference: Option<String>,
    ) -> Result<(), ApiError> {
        ids::validate_id("room_id", &room_id)?;
        self.state
            .limits
            .check_send(&self.user.user_id, Instant::now())?;
        self.state
            .require_member(&room_id, &self.user.user_id)
            .await?;
        // Bounds the sends awaiting their store acknowledgement; reading pauses at the bound.
        let permit = self
            .sends
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| ApiError::unavailable("socket closing"))?;
        // Each frame starts its own trace; its id goes back in the ack.
        let span = crate::chat::send_span(&room_id);
        let pending = self
            .state
            .chat
            .publish(SendRequest {
                room_id,
                sender_id: self.user.user_id.clone(),
                sender_name: self.user.username.clone(),
                body,
                client_msg_id,
            })
            .instrument(span.clone())
            .await?;
        let state = self.state.clone();
        let socket = self.socket.clone();
        let trace_id = telemetry::trace_id_of(&span);
        self.state.tracker.spawn(
            async move {
                let frame = match state.chat.confirm(pending).await {
                    Ok(sent) => {
                        state.hub.expect(&sent.room_id, sent.seq);
                        ServerFrame::Ack {
                            room_id: sent.room_id,
                            client_msg_id: sent.client_msg_id,
                            seq: sent.seq,
                            message_id: sent.message_id,
                            sent_at: sent.sent_at,
                            duplicate: sent.duplicate,
                            trace_id,
                            reference,
                        }
                    }
                    Err(e) => ServerFrame::error(e, reference),
                };
                socket.push(OutFrame::new(&frame));
                drop(permit);
            }
            .instrument(span),
        );
        Ok(())
    }

    pub(super) async fn typing(&mut self, room_id: &str) -> Result<(), ApiError> {
        ids::validate_id("room_id", room_id)?;
        self.state
            .require_member(room_id, &self.user.user_id)
            .await?;
        let event = TypingEvent {
            room_id: room_id.to_string(),
            user_id: self.user.user_id.clone(),
            username: self.user.username.clone(),
        };
        let bytes = serde_json::to_vec(&event).map_err(|e| ApiError::internal(e.to_string()))?;
        self.state
            .nats
            .publish(dyschat_protocol::subjects::typing(room_id), bytes.into())
            .await
            .map_err(|e| ApiError::unavailable(format!("typing not sent: {e}")))
    }

    pub(super) async fn history(
        &mut self,
        room_id: &str,
        before: Option<u64>,
        limit: Option<u32>,
        reference: Option<String>,
    ) -> Result<(), ApiError> {
        ids::validate_id("room_id", room_id)?;
        self.state
            .require_member(room_id, &self.user.user_id)
            .await?;
        let limit = crate::chat::page_limit(limit.map(i64::from))?;
        let page = self
            .state
            .chat
            .history(
                room_id,
                dyschat_runtime::history::PageQuery::Before(before),
                limit,
            )
            .await?;
        self.reply(ServerFrame::History {
            room_id: room_id.to_string(),
            messages: page.messages,
            has_more: page.has_more,
            reference,
        });
        Ok(())
    }
}
