//! Mesh events an agent reacts to: membership changes and room events (roles, standings, room
//! updates, deletions, from rooms), typing, presence and read receipts (from agents). Each is routed by its
//! parsed subject ([`EventSubject`], [`subjects::parse_room_events`]), applied to the standing
//! cache and turned into frames for the local sockets joined to the room concerned.
//!
//! A membership or room event is applied only if it is newer than what this agent knows of the
//! (room, user) pair (a room update: of the room); a stale one changes nothing, frames included. It carries the trace context
//! of the rooms request that caused it, so its handling here (`events.membership`) shows up in
//! that request's trace.

use dyschat_protocol::{
    policy::Action,
    subjects::{self, EventSubject},
    wire::{MembershipEvent, PresenceEvent, ReceiptEvent, RoomEvent, ServerFrame, TypingEvent},
};
use futures::stream::BoxStream;
use futures::StreamExt;
use serde::de::DeserializeOwned;
use tracing::Instrument;

use super::standing::Change;
use super::Core;
use crate::ports::EventMessage;

/// Handles `events` until shutdown or until the stream ends.
pub(crate) async fn run(core: &Core, mut events: BoxStream<'static, EventMessage>) {
    loop {
        let message = tokio::select! {
            _ = core.shutdown.cancelled() => break,
            next = events.next() => match next {
                Some(m) => m,
                None => break,
            },
        };
        handle(core, &message).await;
    }
}

fn decode<T: DeserializeOwned>(message: &EventMessage) -> Option<T> {
    match serde_json::from_slice(&message.payload) {
        Ok(event) => Some(event),
        Err(e) => {
            tracing::debug!(subject = %message.subject, error = %e, "undecodable event ignored");
            None
        }
    }
}

/// Routes one event by its subject. An event whose payload names another room or user than its
/// subject is ignored.
pub(crate) async fn handle(core: &Core, message: &EventMessage) {
    if let Some(room_id) = subjects::parse_room_events(&message.subject) {
        if let Some(event) = decode::<RoomEvent>(message).filter(|e| e.room_id() == room_id) {
            on_room_event(core, event);
        }
        return;
    }
    match EventSubject::parse(&message.subject) {
        Some(EventSubject::Membership { room_id }) => {
            if let Some(event) = decode::<MembershipEvent>(message).filter(|e| e.room_id == room_id)
            {
                let span = membership_span(&event, message);
                on_membership(core, event).instrument(span).await;
            }
        }
        Some(EventSubject::Typing { room_id }) => {
            if let Some(event) = decode::<TypingEvent>(message).filter(|e| e.room_id == room_id) {
                on_typing(core, event);
            }
        }
        Some(EventSubject::Receipt { room_id }) => {
            if let Some(event) = decode::<ReceiptEvent>(message).filter(|e| e.room_id == room_id) {
                on_receipt(core, event);
            }
        }
        Some(EventSubject::Presence { user_id }) => {
            if let Some(event) = decode::<PresenceEvent>(message).filter(|e| e.user_id == user_id) {
                on_presence(core, event);
            }
        }
        None => tracing::debug!(subject = %message.subject, "event on an unknown subject ignored"),
    }
}

fn membership_span(event: &MembershipEvent, message: &EventMessage) -> tracing::Span {
    if !dyschat_runtime::telemetry::exporting() {
        return tracing::Span::none();
    }
    let span = tracing::info_span!(
        "events.membership",
        otel.kind = "consumer",
        messaging.system = "nats",
        messaging.destination.name = %message.subject,
        room.id = %event.room_id,
        user.id = %event.user_id,
        joined = event.joined,
        dyschat.service = "dyschat-ws-agent",
    );
    dyschat_runtime::telemetry::set_parent(&span, message.headers.as_ref());
    span
}

async fn on_membership(core: &Core, event: MembershipEvent) {
    let change = event
        .standing
        .map_or(Change::Joined(event.joined), Change::To);
    if !core
        .membership
        .cache
        .event(&event.room_id, &event.user_id, change, event.revision)
    {
        tracing::debug!(room = %event.room_id, user = %event.user_id, revision = event.revision, "stale membership event ignored");
        return;
    }
    let (room_id, user_id) = (event.room_id, event.user_id);
    let frame = if event.joined {
        ServerFrame::MemberJoined {
            room_id: room_id.clone(),
            user_id: user_id.clone(),
            username: event.username,
        }
    } else {
        ServerFrame::MemberLeft {
            room_id: room_id.clone(),
            user_id: user_id.clone(),
            username: event.username,
        }
    };
    core.hub.broadcast(&room_id, &frame);
    if !event.joined {
        // A user who left stops receiving the room on every socket, not just the one that left.
        for socket in core.hub.sockets_of(&room_id, &user_id) {
            core.hub.detach(&room_id, socket.id());
        }
    }
}

fn on_room_event(core: &Core, event: RoomEvent) {
    let cache = &core.membership.cache;
    match event {
        RoomEvent::MemberRole {
            room_id,
            user_id,
            role,
            revision,
            standing,
            ..
        } => {
            if cache.event(&room_id, &user_id, Change::To(standing), revision) {
                let frame = ServerFrame::MemberRole {
                    room_id: room_id.clone(),
                    user_id,
                    role,
                };
                core.hub.broadcast(&room_id, &frame);
            }
        }
        RoomEvent::Standing {
            room_id,
            user_id,
            revision,
            standing,
        } => {
            cache.event(&room_id, &user_id, Change::To(standing), revision);
        }
        RoomEvent::RoomUpdated {
            room,
            room_revision,
        } => {
            if cache.room_updated(&room.room_id, room.visibility, room_revision) {
                let room_id = room.room_id.clone();
                core.hub
                    .broadcast(&room_id, &ServerFrame::RoomUpdated { room });
            }
        }
        RoomEvent::RoomDeleted { room_id } => {
            // The eviction before the delete's answer detached the room's sockets already; an
            // agent that missed it does it now.
            cache.deleted(&room_id);
            let frame = ServerFrame::RoomDeleted {
                room_id: room_id.clone(),
            };
            core.hub.evict(&room_id, None, &frame);
        }
    }
}

fn on_typing(core: &Core, event: TypingEvent) {
    // Once per 2 s per user and room whatever number of agents the typist's sockets are on.
    if !core
        .limits
        .typing_shown
        .due(&event.user_id, &event.room_id, std::time::Instant::now())
    {
        return;
    }
    let frame = ServerFrame::Typing {
        room_id: event.room_id.clone(),
        user_id: event.user_id.clone(),
        username: event.username,
    };
    core.hub
        .broadcast_except(&event.room_id, &event.user_id, &frame);
}

/// A member read the room: its other members' sockets joined here are told (the agent that
/// moved the marker sent it only for a room of at most 100 members).
fn on_receipt(core: &Core, event: ReceiptEvent) {
    let frame = ServerFrame::Receipt {
        room_id: event.room_id.clone(),
        user_id: event.user_id.clone(),
        seq: event.seq,
    };
    core.hub
        .broadcast_except(&event.room_id, &event.user_id, &frame);
}

fn on_presence(core: &Core, event: PresenceEvent) {
    for room_id in core.hub.room_ids() {
        if core
            .membership
            .allows_cached(&room_id, &event.user_id, Action::Read)
        {
            core.hub.broadcast(
                &room_id,
                &ServerFrame::Presence {
                    room_id: room_id.clone(),
                    user_id: event.user_id.clone(),
                    online: event.online,
                },
            );
        }
    }
}
