//! The frame operations of a session, each a translation: check the frame's ids (a malformed
//! one is `bad_request` on this edge), call the core, turn the result into frames. Errors are
//! [`CoreError`]s that the caller turns into an `error` frame.

use dyschat_protocol::{ids, wire::ServerFrame};
use dyschat_runtime::{history::PageQuery, telemetry};
use tracing::Instrument;

use super::Session;
use crate::core::{page_limit, send_span, CoreError, Edit, Outgoing, Reply};
use crate::socket::OutFrame;

impl Session {
    /// A fresh token on an open socket extends its life (same user only); from then on the
    /// socket lives and dies by the new token (a logout of the old one leaves it open).
    pub(super) async fn reauthenticate(
        &mut self,
        token: &str,
        reference: Option<String>,
    ) -> Result<(), CoreError> {
        let user = self.core.authenticate(token).await?;
        if user.user_id != self.user.user_id {
            return Err(
                dyschat_protocol::ApiError::unauthorized("token is for another user").into(),
            );
        }
        self.token = self
            .core
            .revocations
            .attach(&user.token_id, self.socket.clone());
        self.user.expires = user.expires;
        self.user.token_id = user.token_id.clone();
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
    ) -> Result<(), CoreError> {
        ids::validate_id("room_id", room_id)?;
        self.rooms
            .join(&self.core, &self.user, room_id, since, reference)
            .await
    }

    pub(super) async fn leave(
        &mut self,
        room_id: &str,
        reference: Option<String>,
    ) -> Result<(), CoreError> {
        ids::validate_id("room_id", room_id)?;
        self.rooms.leave(&self.core, &self.user, room_id).await?;
        self.reply(ServerFrame::Left {
            room_id: room_id.to_string(),
            reference,
        });
        Ok(())
    }

    /// Returns once the publish is on the wire; the `ack` (or `error`) follows when the store
    /// confirms it, while the socket goes on reading.
    pub(super) async fn send(
        &mut self,
        out: Outgoing,
        reference: Option<String>,
    ) -> Result<(), CoreError> {
        ids::validate_id("room_id", &out.room_id)?;
        // Bounds the sends awaiting their store acknowledgement; reading pauses at the bound.
        let permit = self
            .sends
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| CoreError::Closing)?;
        // Each frame starts its own trace; its id goes back in the ack.
        let span = send_span(&out.room_id);
        let pending = self
            .core
            .send(&self.user, out, Reply::Ack)
            .instrument(span.clone())
            .await?;
        let (core, socket) = (self.core.clone(), self.socket.clone());
        let trace_id = telemetry::trace_id_of(&span);
        self.core.tracker.spawn(
            async move {
                let frame = match core.confirm(pending).await {
                    Ok(sent) => ServerFrame::Ack {
                        room_id: sent.stored.room_id,
                        client_msg_id: sent.stored.client_msg_id,
                        seq: sent.seq,
                        message_id: sent.stored.message_id,
                        sent_at: sent.stored.sent_at,
                        duplicate: sent.duplicate,
                        trace_id,
                        reference,
                    },
                    Err(e) => ServerFrame::error(e.into(), reference),
                };
                socket.push(OutFrame::new(&frame));
                drop(permit);
            }
            .instrument(span),
        );
        Ok(())
    }

    pub(super) async fn typing(&mut self, room_id: &str) -> Result<(), CoreError> {
        ids::validate_id("room_id", room_id)?;
        self.core.typing(&self.user, room_id).await
    }

    pub(super) async fn history(
        &mut self,
        room_id: &str,
        before: Option<u64>,
        limit: Option<u32>,
        reference: Option<String>,
    ) -> Result<(), CoreError> {
        ids::validate_id("room_id", room_id)?;
        let limit = page_limit(limit.map(i64::from))?;
        let page = self
            .core
            .history(&self.user, room_id, PageQuery::Before(before), limit)
            .await?;
        self.reply(ServerFrame::History {
            room_id: room_id.to_string(),
            messages: page.messages,
            has_more: page.has_more,
            reference,
        });
        Ok(())
    }

    pub(super) async fn read(
        &mut self,
        room_id: &str,
        seq: u64,
        reference: Option<String>,
    ) -> Result<(), CoreError> {
        ids::validate_id("room_id", room_id)?;
        let seq = self
            .core
            .read(&self.user, room_id, seq, Some(self.socket.id()))
            .await?;
        self.reply(ServerFrame::ReadMarker {
            room_id: room_id.to_string(),
            seq,
            reference,
        });
        Ok(())
    }

    /// `edit`, `delete`, `react` and `unreact`: one core change, answered by its kind.
    pub(super) async fn change(
        &mut self,
        room_id: &str,
        seq: u64,
        edit: Edit,
        reference: Option<String>,
    ) -> Result<(), CoreError> {
        ids::validate_id("room_id", room_id)?;
        let done = self
            .core
            .change(&self.user, room_id, seq, edit.clone())
            .await?;
        let room_id = done.room_id;
        self.reply(match edit {
            Edit::Body(_) => ServerFrame::Edited {
                room_id,
                seq,
                edited_at: done.state.edited_at.unwrap_or_default(),
                reference,
            },
            Edit::Delete => ServerFrame::Deleted {
                room_id,
                seq,
                reference,
            },
            Edit::React(emoji) => ServerFrame::Reacted {
                room_id,
                seq,
                emoji,
                reference,
            },
            Edit::Unreact(emoji) => ServerFrame::Unreacted {
                room_id,
                seq,
                emoji,
                reference,
            },
        });
        Ok(())
    }
}
