//! Every NATS subject of the mesh, defined once.
//!
//! Functions that take an id expect one that passed [`crate::ids::validate_id`]; callers validate at
//! the edge, and debug builds assert it here so a missed check shows up in tests.

use crate::ids::is_valid_id;

/// Room messages are published here (`dyschat.msg.room.<room_id>`) and stored by the
/// `DYSCHAT_MESSAGES` stream.
pub const ROOM_MESSAGES_WILDCARD: &str = "dyschat.msg.room.*";
/// The stream re-publishes each stored message here (`dyschat.live.room.<room_id>`) with
/// `Nats-Sequence` and `Nats-Last-Sequence`; ws-agents subscribe per room.
pub const LIVE_WILDCARD: &str = "dyschat.live.room.*";
/// A room's change events (edits, deletions, reactions) are published on the changed message's
/// own subject, `dyschat.msg.room.<room_id>.chg.<seq>` ([`room_change`]), stored by the same
/// stream in the same sequence: the last event of a subject is the message's current state.
pub const ROOM_CHANGES_WILDCARD: &str = "dyschat.msg.room.*.chg.*";
/// Where the stream re-publishes change events (`dyschat.live.room.<room_id>.chg.<seq>`).
pub const LIVE_CHANGES_WILDCARD: &str = "dyschat.live.room.*.chg.*";
/// Everything the messages stream stores, messages and changes.
pub const ROOM_STREAM_ALL: &str = "dyschat.msg.room.>";
/// What the stream re-publishes: everything it stores.
pub const LIVE_REPUBLISH_SOURCE: &str = ROOM_STREAM_ALL;
/// RePublish destination: a message of room `R` arrives on `dyschat.live.room.R`
/// ([`live`]), a change of its message `S` on `dyschat.live.room.R.chg.S` ([`live_changes`]).
pub const LIVE_REPUBLISH_DEST: &str = "dyschat.live.room.>";

/// Membership changes (`dyschat.events.membership.<room_id>`), published by rooms.
pub const MEMBERSHIP_WILDCARD: &str = "dyschat.events.membership.*";
/// Typing indicators (`dyschat.events.typing.<room_id>`), published by ws-agents.
pub const TYPING_WILDCARD: &str = "dyschat.events.typing.*";
/// Presence changes (`dyschat.events.presence.<user_id>`), published by ws-agents.
pub const PRESENCE_WILDCARD: &str = "dyschat.events.presence.*";
/// Events for one user's sockets on every agent (`dyschat.events.user.<user_id>.<kind>`, see
/// [`user_event`]): an agent subscribes to a user's subjects ([`user_events_filter`]) only
/// while it holds a socket of theirs, so each event reaches only the agents that need it.
pub const USER_EVENTS_WILDCARD: &str = "dyschat.events.user.>";

/// Each user's feed (`dyschat.feed.<user_id>`, [`feed`]), stored by the `DYSCHAT_FEED` stream;
/// published by rooms.
pub const FEED_WILDCARD: &str = "dyschat.feed.*";
/// Where the feed stream re-publishes each stored notification: the user's event subject of
/// kind [`UserEventKind::Notification`], with `Nats-Sequence` (the `notification_id`).
pub const FEED_REPUBLISH_DEST: &str = "dyschat.events.user.{{wildcard(1)}}.feed";

/// Which notifications a message made (`dyschat.notified.<room_id>.<seq>`, [`notified`]), kept
/// by the `DYSCHAT_FEED` stream beside them: what erasing a deleted message's (or room's)
/// notifications reads. Written by rooms.
pub const NOTIFIED_WILDCARD: &str = "dyschat.notified.*.*";

/// Read receipts (`dyschat.events.receipt.<room_id>`, a [`crate::wire::ReceiptEvent`]),
/// published by ws-agents for rooms of at most 100 members.
pub const RECEIPT_WILDCARD: &str = "dyschat.events.receipt.*";

/// What changed in a room besides who is in it (`dyschat.events.room.<room_id>`, a
/// [`crate::wire::RoomEvent`]), published by rooms: roles, standings, updates, deletion.
pub const ROOM_EVENTS_WILDCARD: &str = "dyschat.events.room.*";

/// Evictions (`dyschat.evict.<room_id>`, a [`crate::wire::Eviction`]), sent by rooms as a
/// request with a reply inbox. Every ws-agent subscribes (not in a queue group) and replies once
/// it has detached the sockets concerned, so rooms answers a kick, ban or deletion only after
/// every live agent confirmed.
pub const EVICTION_WILDCARD: &str = "dyschat.evict.*";

/// Member counts (`dyschat.count.members.<room_id>`), NATS counters of the `DYSCHAT_COUNTERS`
/// stream: published with `Nats-Incr`, read as the subject's last message.
pub const COUNTERS_WILDCARD: &str = "dyschat.count.>";

/// Messages msg-writer could never store, with the reason, kept by the `DYSCHAT_DEADLETTER`
/// stream for an operator to inspect.
pub const DEAD_LETTER: &str = "dyschat.deadletter.msg";
pub const DEAD_LETTER_WILDCARD: &str = "dyschat.deadletter.>";

/// Request-reply endpoints of the auth service (group + endpoint names of the NATS service API).
pub mod auth {
    pub const SERVICE: &str = "dyschat-auth";
    pub const GROUP: &str = "dyschat.auth";
    pub const REGISTER: &str = "register";
    pub const LOGIN: &str = "login";
    /// Revokes the token in the request (see [`crate::wire::LogoutRequest`]).
    pub const LOGOUT: &str = "logout";
    pub const REGISTER_SUBJECT: &str = "dyschat.auth.register";
    pub const LOGIN_SUBJECT: &str = "dyschat.auth.login";
    pub const LOGOUT_SUBJECT: &str = "dyschat.auth.logout";
    /// Users whose username starts with a prefix (`GET /api/v1/users?q=`).
    pub const SEARCH: &str = "search";
    pub const SEARCH_SUBJECT: &str = "dyschat.auth.search";
    /// One user by id (`{user_id, username}` or `not_found`), for the other services.
    pub const USER: &str = "user";
    pub const USER_SUBJECT: &str = "dyschat.auth.user";
    /// Users by exact username ignoring case (`[{user_id, username}]`), for mentions.
    pub const USERS_BY_NAME: &str = "users_by_name";
    pub const USERS_BY_NAME_SUBJECT: &str = "dyschat.auth.users_by_name";
}

/// Request-reply endpoints of the rooms service.
pub mod rooms {
    pub const SERVICE: &str = "dyschat-rooms";
    pub const GROUP: &str = "dyschat.rooms";
    pub const CREATE: &str = "create";
    pub const GET: &str = "get";
    pub const LIST: &str = "list";
    pub const JOIN: &str = "join";
    pub const LEAVE: &str = "leave";
    pub const MEMBERS: &str = "members";
    pub const ACCESS: &str = "access";
    pub const UPDATE: &str = "update";
    pub const DELETE: &str = "delete";
    pub const INVITE: &str = "invite";
    pub const UNINVITE: &str = "uninvite";
    pub const SET_ROLE: &str = "set_role";
    pub const TRANSFER_OWNER: &str = "transfer_owner";
    pub const KICK: &str = "kick";
    pub const BAN: &str = "ban";
    pub const UNBAN: &str = "unban";
    pub const BANS: &str = "bans";
    pub const MY_ROOMS: &str = "my_rooms";
    pub const OPEN_DM: &str = "open_dm";
    pub const BLOCK: &str = "block";
    pub const UNBLOCK: &str = "unblock";
    pub const BLOCKS: &str = "blocks";
    /// Which of a list of usernames are members of a room (the mentions of a send).
    pub const MENTIONS: &str = "mentions";

    /// The full subject of an endpoint, e.g. `dyschat.rooms.join`.
    pub fn subject(endpoint: &str) -> String {
        format!("{GROUP}.{endpoint}")
    }
}

/// The message search service (`dyschat-search`): one endpoint, answered by whichever caught-up
/// instance the queue group picks.
pub mod search {
    pub const SERVICE: &str = "dyschat-search";
    pub const GROUP: &str = "dyschat.search";
    pub const MESSAGES: &str = "messages";
    pub const MESSAGES_SUBJECT: &str = "dyschat.search.messages";
}

/// The NATS service API's ping of the micro service `service` (`$SRV.PING.<service>`): it answers
/// once its endpoints are subscribed.
pub fn service_ping(service: &str) -> String {
    format!("$SRV.PING.{service}")
}

/// The NATS service API's description of the micro service `service` (`$SRV.INFO.<service>`):
/// its endpoints and their subjects.
pub fn service_info(service: &str) -> String {
    format!("$SRV.INFO.{service}")
}

fn with_id(prefix: &str, id: &str) -> String {
    debug_assert!(is_valid_id(id), "unvalidated id in a subject: {id:?}");
    format!("{prefix}.{id}")
}

const ROOM_MESSAGES_PREFIX: &str = "dyschat.msg.room";
const LIVE_PREFIX: &str = "dyschat.live.room";
const MEMBERSHIP_PREFIX: &str = "dyschat.events.membership";
const TYPING_PREFIX: &str = "dyschat.events.typing";
const PRESENCE_PREFIX: &str = "dyschat.events.presence";
const USER_EVENTS_PREFIX: &str = "dyschat.events.user";
const FEED_PREFIX: &str = "dyschat.feed";
const RECEIPT_PREFIX: &str = "dyschat.events.receipt";
const NOTIFIED_PREFIX: &str = "dyschat.notified";
const MEMBER_COUNT_PREFIX: &str = "dyschat.count.members";
const OWNED_COUNT_PREFIX: &str = "dyschat.count.owned";
const JOINED_COUNT_PREFIX: &str = "dyschat.count.joined";
const ROOM_EVENTS_PREFIX: &str = "dyschat.events.room";
const EVICTION_PREFIX: &str = "dyschat.evict";

pub fn room_messages(room_id: &str) -> String {
    with_id(ROOM_MESSAGES_PREFIX, room_id)
}

pub fn live(room_id: &str) -> String {
    with_id(LIVE_PREFIX, room_id)
}

/// The change events of the room's message `seq`.
pub fn room_change(room_id: &str, seq: u64) -> String {
    format!("{}.chg.{seq}", room_messages(room_id))
}

/// Every change event of the room (what the room's last change is looked up with, and the
/// subject the expected-last-sequence of a new change is checked against).
pub fn room_changes(room_id: &str) -> String {
    format!("{}.chg.*", room_messages(room_id))
}

/// Where the stream re-publishes the room's change events.
pub fn live_changes(room_id: &str) -> String {
    format!("{}.chg.*", live(room_id))
}

/// What follows the room prefix of a stored subject, published (`dyschat.msg.room.`) or
/// partitioned (`dyschat.msg.part.<k>.room.`, see [`crate::streams`]): the one parser of both.
fn strip_stored_prefix(subject: &str) -> Option<&str> {
    if let Some(rest) = subject.strip_prefix(ROOM_MESSAGES_PREFIX) {
        return rest.strip_prefix('.');
    }
    let rest = subject
        .strip_prefix(crate::streams::PARTITION_PREFIX)?
        .strip_prefix('.')?;
    let (k, rest) = rest.split_once('.')?;
    if k.is_empty() || !k.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    rest.strip_prefix("room.")
}

/// The room and message of a change subject, stored ([`room_change`], or its partitioned form)
/// or re-published.
pub fn parse_change(subject: &str) -> Option<(&str, u64)> {
    let rest = strip_stored_prefix(subject)
        .or_else(|| subject.strip_prefix(LIVE_PREFIX)?.strip_prefix('.'))?;
    let (room_id, seq) = rest.split_once(".chg.")?;
    let seq = seq.parse().ok()?;
    is_valid_id(room_id).then_some((room_id, seq))
}

pub fn membership(room_id: &str) -> String {
    with_id(MEMBERSHIP_PREFIX, room_id)
}

pub fn typing(room_id: &str) -> String {
    with_id(TYPING_PREFIX, room_id)
}

pub fn presence(user_id: &str) -> String {
    with_id(PRESENCE_PREFIX, user_id)
}

/// What an event for every socket of a user is about: the last token of its subject.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserEventKind {
    /// A [`crate::wire::ReadMarkerEvent`]: the user's read marker moved (published by agents).
    ReadMarker,
    /// A [`crate::wire::StoredNotification`], re-published by the feed stream.
    Notification,
}

impl UserEventKind {
    fn token(self) -> &'static str {
        match self {
            UserEventKind::ReadMarker => "read",
            UserEventKind::Notification => "feed",
        }
    }
}

/// Where an event of `kind` for every socket of `user_id` is published.
pub fn user_event(user_id: &str, kind: UserEventKind) -> String {
    format!("{}.{}", with_id(USER_EVENTS_PREFIX, user_id), kind.token())
}

/// Every event subject of `user_id`: what an agent holding a socket of theirs subscribes to.
pub fn user_events_filter(user_id: &str) -> String {
    format!("{}.*", with_id(USER_EVENTS_PREFIX, user_id))
}

/// The user and kind of a subject built by [`user_event`].
pub fn parse_user_event(subject: &str) -> Option<(&str, UserEventKind)> {
    let rest = subject
        .strip_prefix(USER_EVENTS_PREFIX)?
        .strip_prefix('.')?;
    let (id, token) = rest.split_once('.')?;
    let kind = [UserEventKind::ReadMarker, UserEventKind::Notification]
        .into_iter()
        .find(|k| k.token() == token)?;
    is_valid_id(id).then_some((id, kind))
}

/// The feed subject of `user_id` in the `DYSCHAT_FEED` stream.
pub fn feed(user_id: &str) -> String {
    with_id(FEED_PREFIX, user_id)
}

/// The record of the notifications message `seq` of `room_id` made.
pub fn notified(room_id: &str, seq: u64) -> String {
    format!("{}.{seq}", with_id(NOTIFIED_PREFIX, room_id))
}

/// Every record of the notifications of `room_id`'s messages.
pub fn notified_in(room_id: &str) -> String {
    format!("{}.*", with_id(NOTIFIED_PREFIX, room_id))
}

/// Where agents announce a read receipt of the room.
pub fn receipt(room_id: &str) -> String {
    with_id(RECEIPT_PREFIX, room_id)
}

/// The counter of a room's members.
pub fn member_count(room_id: &str) -> String {
    with_id(MEMBER_COUNT_PREFIX, room_id)
}

/// The counter of rooms a user owns (quota `DYSCHAT_MAX_ROOMS_PER_USER`).
pub fn owned_count(user_id: &str) -> String {
    with_id(OWNED_COUNT_PREFIX, user_id)
}

/// The counter of rooms a user is a member of (quota `DYSCHAT_MAX_ROOMS_JOINED`).
pub fn joined_count(user_id: &str) -> String {
    with_id(JOINED_COUNT_PREFIX, user_id)
}

/// Where rooms publishes a room's [`crate::wire::RoomEvent`]s.
pub fn room_events(room_id: &str) -> String {
    with_id(ROOM_EVENTS_PREFIX, room_id)
}

/// The room of a subject built by [`room_events`].
pub fn parse_room_events(subject: &str) -> Option<&str> {
    let (prefix, id) = subject.rsplit_once('.')?;
    (prefix == ROOM_EVENTS_PREFIX && is_valid_id(id)).then_some(id)
}

/// Where rooms sends an eviction from `room_id` (see [`EVICTION_WILDCARD`]).
pub fn eviction(room_id: &str) -> String {
    with_id(EVICTION_PREFIX, room_id)
}

/// The room of a subject built by [`eviction`].
pub fn parse_eviction(subject: &str) -> Option<&str> {
    let (prefix, id) = subject.rsplit_once('.')?;
    (prefix == EVICTION_PREFIX && is_valid_id(id)).then_some(id)
}

/// Every subject of the messages stream that belongs to `room_id`, its messages and its change
/// events: what a room deletion purges, and what a replay of the room's sequence reads.
pub fn room_stream_filters(room_id: &str) -> [String; 2] {
    [room_messages(room_id), room_changes(room_id)]
}

/// The room of a counter subject built by [`member_count`].
pub fn parse_member_count(subject: &str) -> Option<&str> {
    let (prefix, id) = subject.rsplit_once('.')?;
    (prefix == MEMBER_COUNT_PREFIX && is_valid_id(id)).then_some(id)
}

/// The room id at the end of a per-room subject.
pub fn last_token(subject: &str) -> Option<&str> {
    subject.rsplit('.').next().filter(|t| is_valid_id(t))
}

/// A mesh event's subject, parsed: which kind of event, and the id it is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventSubject<'a> {
    Membership { room_id: &'a str },
    Typing { room_id: &'a str },
    Presence { user_id: &'a str },
    Receipt { room_id: &'a str },
}

impl<'a> EventSubject<'a> {
    /// Parses a subject built by [`membership`], [`typing`] or [`presence`]; `None` for anything
    /// else (including an id that is not valid).
    pub fn parse(subject: &'a str) -> Option<Self> {
        let (prefix, id) = subject.rsplit_once('.')?;
        if !is_valid_id(id) {
            return None;
        }
        match prefix {
            MEMBERSHIP_PREFIX => Some(EventSubject::Membership { room_id: id }),
            TYPING_PREFIX => Some(EventSubject::Typing { room_id: id }),
            PRESENCE_PREFIX => Some(EventSubject::Presence { user_id: id }),
            RECEIPT_PREFIX => Some(EventSubject::Receipt { room_id: id }),
            _ => None,
        }
    }
}

/// The room of a live subject built by [`live`].
pub fn parse_live(subject: &str) -> Option<&str> {
    let (prefix, id) = subject.rsplit_once('.')?;
    (prefix == LIVE_PREFIX && is_valid_id(id)).then_some(id)
}

/// The room of a message subject built by [`room_messages`], or its partitioned stored form.
pub fn parse_room_messages(subject: &str) -> Option<&str> {
    let id = strip_stored_prefix(subject)?;
    is_valid_id(id).then_some(id)
}

#[cfg(test)]
#[path = "subjects_tests.rs"]
mod tests;
