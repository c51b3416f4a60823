//! What the service tells the mesh after a change is stored: membership events (joins, leaves,
//! kicks) on `dyschat.events.membership.<room>` and the rest ([`RoomEvent`]) on
//! `dyschat.events.room.<room>`. Each carries the trace context of the request that caused it,
//! so the agents' reaction joins its trace.
//!
//! The change is already stored, so a publish that fails is logged rather than failing the
//! request: an agent that missed an event still has the revisioned answer of `access` to go by.

use dyschat_protocol::policy::Standing;
use dyschat_protocol::subjects;
use dyschat_protocol::wire::{MembershipEvent, RoomEvent};
use serde::Serialize;

use super::Rooms;
use crate::error::RoomsError;

impl Rooms {
    /// Announces that `user_id` joined (or stopped being a member of) the room, at `revision`.
    pub(super) async fn announce_membership(
        &self,
        room_id: &str,
        user_id: &str,
        username: &str,
        joined: bool,
        revision: u64,
        standing: Standing,
    ) {
        tracing::debug!(%room_id, %user_id, joined, revision, "membership changed");
        let event = MembershipEvent {
            room_id: room_id.to_string(),
            user_id: user_id.to_string(),
            username: username.to_string(),
            joined,
            revision,
            standing: Some(standing),
        };
        self.publish(subjects::membership(room_id), &event).await;
    }

    /// Announces a change of the room other than a join or leave.
    pub(super) async fn announce(&self, event: RoomEvent) {
        let subject = subjects::room_events(event.room_id());
        self.publish(subject, &event).await;
    }

    /// Moves `user_id`'s standing in the room to a new revision (its record touched) and
    /// announces it as `standing`.
    pub(super) async fn restand(
        &self,
        room_id: &str,
        user_id: &str,
        standing: Standing,
    ) -> Result<(), RoomsError> {
        let revision = self.store.touch(room_id, user_id).await?;
        self.announce_standing(room_id, user_id, revision, standing)
            .await;
        Ok(())
    }

    /// Announces a change of `user_id`'s standing that no socket sees as a frame.
    pub(super) async fn announce_standing(
        &self,
        room_id: &str,
        user_id: &str,
        revision: u64,
        standing: Standing,
    ) {
        self.announce(RoomEvent::Standing {
            room_id: room_id.to_string(),
            user_id: user_id.to_string(),
            revision,
            standing,
        })
        .await;
    }

    async fn publish<T: Serialize>(&self, subject: String, event: &T) {
        let payload = match serde_json::to_vec(event) {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(error = %e, %subject, "could not encode an event");
                return;
            }
        };
        let headers = dyschat_runtime::telemetry::headers_with_context().unwrap_or_default();
        if let Err(e) = self
            .events
            .publish_with_headers(subject.clone(), headers, payload.into())
            .await
        {
            tracing::warn!(error = %e, %subject, "could not publish an event");
        }
    }
}
