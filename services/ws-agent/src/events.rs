//! Mesh events an agent reacts to: membership changes (from rooms), typing and presence (from
//! agents). Each is turned into frames for the local sockets joined to the room concerned.
//!
//! A membership event carries the trace context of the rooms request that caused it, so its
//! handling here (`events.membership`) shows up in that request's trace.

use std::sync::Arc;

use dyschat_protocol::{
    subjects,
    wire::{MembershipEvent, PresenceEvent, ServerFrame, TypingEvent},
};
use futures::StreamExt;
use tracing::Instrument;

use crate::state::AgentState;

/// Consumes the three event subjects until shutdown.
pub async fn run(state: Arc<AgentState>) -> Result<(), async_nats::SubscribeError> {
    let membership = state.nats.subscribe(subjects::MEMBERSHIP_WILDCARD).await?;
    let typing = state.nats.subscribe(subjects::TYPING_WILDCARD).await?;
    let presence = state.nats.subscribe(subjects::PRESENCE_WILDCARD).await?;
    let mut events = futures::stream::select_all([membership, typing, presence]);
    loop {
        let message = tokio::select! {
            _ = state.shutdown.cancelled() => break,
            next = events.next() => match next {
                Some(m) => m,
                None => break,
            },
        };
        let subject = message.subject.as_str();
        if subject.starts_with("dyschat.events.membership.") {
            if let Ok(event) = serde_json::from_slice::<MembershipEvent>(&message.payload) {
                let span = membership_span(&event, &message);
                on_membership(&state, event).instrument(span).await;
            }
        } else if subject.starts_with("dyschat.events.typing.") {
            if let Ok(event) = serde_json::from_slice::<TypingEvent>(&message.payload) {
                on_typing(&state, event);
            }
        } else if let Ok(event) = serde_json::from_slice::<PresenceEvent>(&message.payload) {
            on_presence(&state, event);
        }
    }
    Ok(())
}

fn membership_span(event: &MembershipEvent, message: &async_nats::Message) -> tracing::Span {
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

async fn on_membership(state: &AgentState, event: MembershipEvent) {
    state.membership.apply(&event);
    let frame = if event.joined {
        ServerFrame::MemberJoined {
            room_id: event.room_id.clone(),
            user_id: event.user_id.clone(),
            username: event.username.clone(),
        }
    } else {
        ServerFrame::MemberLeft {
            room_id: event.room_id.clone(),
            user_id: event.user_id.clone(),
            username: event.username.clone(),
        }
    };
    state.hub.broadcast(&event.room_id, &frame);
    if !event.joined {
        // A user who left stops receiving the room on every socket, not just the one that left.
        for socket in state.hub.sockets_of(&event.room_id, &event.user_id) {
            state.hub.detach(&event.room_id, socket.id()).await;
        }
    }
}

fn on_typing(state: &AgentState, event: TypingEvent) {
    let frame = ServerFrame::Typing {
        room_id: event.room_id.clone(),
        user_id: event.user_id.clone(),
        username: event.username,
    };
    state
        .hub
        .broadcast_except(&event.room_id, &event.user_id, &frame);
}

fn on_presence(state: &AgentState, event: PresenceEvent) {
    for room_id in state.hub.room_ids() {
        if state.membership.knows_member(&room_id, &event.user_id) {
            state.hub.broadcast(
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
