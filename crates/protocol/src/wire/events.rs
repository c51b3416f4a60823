//! Core-NATS event payloads exchanged between services.

use serde::{Deserialize, Serialize};

use crate::policy::Standing;
use crate::wire::{Role, Room};

/// Published by rooms on `dyschat.events.membership.<room_id>` after a join or leave took effect.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MembershipEvent {
    pub room_id: String,
    pub user_id: String,
    pub username: String,
    pub joined: bool,
    /// The revision of the member record this change produced: consumers apply an event only if
    /// it is newer than what they know of `(room_id, user_id)`, so a late event never undoes a
    /// later change.
    #[serde(default)]
    pub revision: u64,
    /// The user's standing in the room after the change (at `revision`): replaces what an agent
    /// cached for the pair when `revision` is newer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub standing: Option<Standing>,
}

/// Published by an agent on `dyschat.events.user.<user_id>.read`
/// ([`crate::subjects::user_event`]) after it moved the user's read marker in a room: every
/// agent holding a socket of the user sends those sockets `read_marker {room_id, seq}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadMarkerEvent {
    pub user_id: String,
    pub room_id: String,
    pub seq: u64,
    /// The socket whose `read` moved the marker (`<agent_id>/<socket id>`): it has its answer
    /// already and gets no second `read_marker`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<String>,
}

/// What changed in a room besides joins and leaves, published by rooms on
/// `dyschat.events.room.<room_id>` ([`crate::subjects::room_events`]) after the change is stored.
/// Per-user changes carry the (room, user) revision they produced, like [`MembershipEvent`]:
/// apply one only if it is newer than what is known of the pair.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum RoomEvent {
    /// A member's role changed: subscribed sockets get `member_role {room_id, user_id, role}`.
    /// An owner change is two of these (the new owner's `owner`, the old owner's `moderator`).
    MemberRole {
        room_id: String,
        user_id: String,
        username: String,
        role: Role,
        revision: u64,
        standing: Standing,
    },
    /// The user's standing changed without a frame to anyone: invited, invitation taken back,
    /// banned while not a member, unbanned, blocked or unblocked by the peer of a direct room.
    Standing {
        room_id: String,
        user_id: String,
        revision: u64,
        standing: Standing,
    },
    /// The room's name, topic, visibility or owner changed: subscribed sockets get
    /// `room_updated {room}`; `room.visibility` replaces the visibility of every cached
    /// standing in the room when `room_revision` is newer.
    RoomUpdated { room: Room, room_revision: u64 },
    /// The room was deleted (its sockets were evicted before the delete was answered). Agents
    /// drop what they cached of it; msg-writer removes its history from Redis.
    RoomDeleted { room_id: String },
}

impl RoomEvent {
    pub fn room_id(&self) -> &str {
        match self {
            RoomEvent::MemberRole { room_id, .. }
            | RoomEvent::Standing { room_id, .. }
            | RoomEvent::RoomDeleted { room_id } => room_id,
            RoomEvent::RoomUpdated { room, .. } => &room.room_id,
        }
    }
}

/// Why sockets are evicted from a room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EvictionCause {
    Kicked,
    Banned,
    Deleted,
}

/// Sent by rooms as a request on `dyschat.evict.<room_id>` ([`crate::subjects::eviction`])
/// before it answers a kick, ban or room deletion; every ws-agent receives it.
///
/// What an agent does, in this order, before replying:
/// 1. stops passing on anything of `room_id` to the sockets concerned (those of `user_id`, or
///    every socket when `user_id` is `None`) and detaches them from the room;
/// 2. sends each of them `kicked {room_id, by, reason}` (cause `kicked` or `banned`) or
///    `room_deleted {room_id}` (cause `deleted`) as the last frame of that room;
/// 3. records `standing` at `revision` for (room, user) in its cache (for a deletion, forgets
///    the room: it is `not_found` from now on);
/// 4. replies [`EvictionAck`] with its agent id (its key in `dyschat_agents`), also when it had
///    no socket concerned.
///
/// Rooms waits for one reply per live agent (the entries of `dyschat_agents`), at most a bound
/// (2 s by default), then answers the request anyway.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Eviction {
    pub eviction_id: String,
    pub room_id: String,
    /// The user whose sockets leave the room; `None`: every socket (the room was deleted).
    pub user_id: Option<String>,
    pub cause: EvictionCause,
    /// Who kicked, banned or deleted (a user id).
    pub by: String,
    /// The moderator's reason, `""` when none was given.
    #[serde(default)]
    pub reason: String,
    /// The (room, user) revision after the change (0 for a deletion).
    #[serde(default)]
    pub revision: u64,
    /// The user's standing after the change (`None` for a deletion).
    #[serde(default)]
    pub standing: Option<Standing>,
}

/// An agent's reply to an [`Eviction`]: its sockets concerned no longer receive the room.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EvictionAck {
    pub eviction_id: String,
    pub agent_id: String,
}

/// Published by a ws-agent on `dyschat.events.typing.<room_id>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TypingEvent {
    pub room_id: String,
    pub user_id: String,
    pub username: String,
}

/// Published by a ws-agent on `dyschat.events.presence.<user_id>` when the user's first socket on
/// that agent opens or its last one closes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PresenceEvent {
    pub user_id: String,
    pub online: bool,
}

/// What msg-writer publishes on the dead-letter subject for a message it could never store.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeadLetter {
    pub stream_seq: u64,
    pub subject: String,
    pub reason: String,
    /// The original payload, lossily decoded as UTF-8.
    pub payload: String,
}
