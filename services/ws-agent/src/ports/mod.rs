//! What the domain core ([`crate::core`]) and the hub ([`crate::hub`]) need from the outside
//! world, as small traits (ports): the message stream (JetStream), history (Redis), the rooms
//! service, the live feed and event bus (core NATS), presence, revoked tokens and read markers (KV), the
//! per-user event subjects, the file store. The real implementations
//! are in [`crate::adapters`]; unit tests run the same core over in-memory fakes.
//!
//! Why trait objects and not generics: an operation behind a port (a publish, a replay, an access
//! check) is one network round trip, beside which one `Arc<dyn ..>` call and one boxed future are
//! nothing; the per-message path (live delivery) is a stream boxed once per room subscription and
//! then polled without further allocation. Generics would thread a type parameter through every
//! edge, the router and the OpenAPI table for no measurable gain.

use std::sync::Arc;

use async_nats::HeaderMap;
use bytes::Bytes;
use dyschat_protocol::wire::{
    Access, AccessRequest, MemberList, MembersRequest, MembershipReply, MembershipRequest,
    MessagePage, MyRoomList, PageRequest, PresenceEvent, ReadMarkerEvent, ReceiptEvent,
    StoredMessage, StoredNotification, TypingEvent,
};
use dyschat_protocol::ApiError;
use dyschat_runtime::history::{PageQuery, StoreState};
use futures::future::BoxFuture;
use futures::stream::BoxStream;

mod changes;
mod files;
mod search;

pub(crate) use changes::{ChangeEntry, ChangeLog, Entry};
pub(crate) use files::{ByteStream, FileRecord, FileStore, PutError};
pub(crate) use search::SearchService;

/// A port operation that did not complete. What exactly failed is in the message, for the log;
/// the edges only ever say "unavailable, try again".
#[derive(Debug, thiserror::Error)]
pub(crate) enum PortError {
    #[error("timed out")]
    Timeout,
    #[error("{0}")]
    Failed(String),
    #[error("undecodable reply: {0}")]
    Decode(String),
}

impl PortError {
    pub(crate) fn failed(e: impl std::fmt::Display) -> PortError {
        PortError::Failed(e.to_string())
    }
}

pub(crate) type PortResult<T> = Result<T, PortError>;

/// The stream's acknowledgement of a publish.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Ack {
    pub seq: u64,
    /// A retry inside the de-duplication window: `seq` is the first message's.
    pub duplicate: bool,
}

/// A publish whose frame is on the wire, waiting for the store acknowledgement.
pub(crate) type AckFuture = BoxFuture<'static, PortResult<Ack>>;

/// A stored message with its place in the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Sequenced {
    pub seq: u64,
    pub stored: StoredMessage,
}

/// The room messages in JetStream. Every read here is one the leader answers (or, for
/// [`newest_up_to`](MessageStream::newest_up_to), one it confirms): a lagging replica must never
/// make a position look older than it is.
pub(crate) trait MessageStream: Send + Sync {
    /// Publishes `payload` to the room's subject with `dedupe_id` as `Nats-Msg-Id` and the
    /// current span's trace context in its headers.
    fn publish<'a>(
        &'a self,
        room_id: &'a str,
        dedupe_id: String,
        payload: Bytes,
    ) -> BoxFuture<'a, PortResult<AckFuture>>;
    /// The message stored at `seq`.
    fn stored<'a>(&'a self, room_id: &'a str, seq: u64)
        -> BoxFuture<'a, PortResult<StoredMessage>>;
    /// The room's newest `seq`, 0 for an empty room.
    fn last_seq<'a>(&'a self, room_id: &'a str) -> BoxFuture<'a, PortResult<u64>>;
    /// The room's newest `seq` that is at most `up_to`, 0 if none: the `prev_seq` of a message
    /// known only by its own `seq` (`up_to = seq - 1`).
    fn newest_up_to<'a>(&'a self, room_id: &'a str, up_to: u64) -> BoxFuture<'a, PortResult<u64>>;
    /// The room's first `n` messages with `seq > after`, oldest first (fewer at the end).
    fn first_after<'a>(
        &'a self,
        room_id: &'a str,
        after: u64,
        n: usize,
    ) -> BoxFuture<'a, PortResult<Vec<Sequenced>>>;
    /// How far msg-writer has got with the stream (partition) holding `room_id` (see
    /// [`WriterPosition`]).
    fn writer_position<'a>(&'a self, room_id: &'a str)
        -> BoxFuture<'a, PortResult<WriterPosition>>;
    /// The seq of the room's message sent by `sender_id` with `client_msg_id`, looking at the
    /// room's messages from `from` on; `None` when more than `limit` would have to be read, or
    /// when the agent already runs as many such scans as it allows at once.
    fn find_sent<'a>(
        &'a self,
        room_id: &'a str,
        from: ScanFrom,
        sender_id: &'a str,
        client_msg_id: &'a str,
        limit: u64,
    ) -> BoxFuture<'a, PortResult<Option<Option<u64>>>>;
    /// The room's messages and change events with `after < position <= up_to`, in sequence
    /// order, or `None` when there are more than `limit` of them.
    fn replay<'a>(
        &'a self,
        room_id: &'a str,
        after: u64,
        up_to: u64,
        limit: u64,
    ) -> BoxFuture<'a, PortResult<Option<Vec<Entry>>>>;
}

/// How far msg-writer has got with the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct WriterPosition {
    /// Every message at or below this stream sequence was stored in history (the ack floor of
    /// the writer's durable consumer): what the history store may be trusted with.
    pub floor: u64,
    /// When the oldest message not stored yet was stored in the stream (unix ms); `None` when
    /// the writer has stored everything.
    pub behind_since_ms: Option<i64>,
}

/// Where a scan of a room's messages starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ScanFrom {
    /// The messages after this stream sequence.
    After(u64),
    /// The messages stored at or after this time (unix ms).
    Since(i64),
}

/// Room history as msg-writer stored it.
pub(crate) trait HistoryStore: Send + Sync {
    /// Whether the store holds everything it was given (see [`StoreState`]).
    fn state<'a>(&'a self, room_id: &'a str) -> BoxFuture<'a, PortResult<StoreState>>;
    /// The seq of an indexed send `field` (`<sender>:<client_msg_id>`) of the room on one of
    /// `days`, and the store's state, in one round trip.
    fn sent<'a>(
        &'a self,
        room_id: &'a str,
        field: &'a str,
        days: &'a [u64],
    ) -> BoxFuture<'a, PortResult<(Option<u64>, StoreState)>>;
    fn page<'a>(
        &'a self,
        room_id: &'a str,
        query: PageQuery,
        limit: usize,
    ) -> BoxFuture<'a, PortResult<MessagePage>>;
    /// How many of the room's stored messages have `after < seq <= up_to`, how many of those
    /// `sender_id` sent, and how many mention them (msg-writer keeps a sorted set of each
    /// sender's seqs and of each mentioned user's beside the history): three `ZCOUNT`s in one
    /// round trip.
    fn counts<'a>(
        &'a self,
        room_id: &'a str,
        sender_id: &'a str,
        after: u64,
        up_to: u64,
    ) -> BoxFuture<'a, PortResult<(u64, u64, u64)>>;
}

/// The rooms service's answers, in the contract's error type: a `not_found` from rooms is the
/// user's answer, not a failure of the port.
pub(crate) trait RoomsService: Send + Sync {
    fn access(&self, req: AccessRequest) -> BoxFuture<'_, Result<Access, ApiError>>;
    fn join(&self, req: MembershipRequest) -> BoxFuture<'_, Result<MembershipReply, ApiError>>;
    fn leave(&self, req: MembershipRequest) -> BoxFuture<'_, Result<MembershipReply, ApiError>>;
    fn members(&self, req: MembersRequest) -> BoxFuture<'_, Result<MemberList, ApiError>>;
    /// One page of the rooms the user is a member of.
    fn my_rooms(&self, req: PageRequest) -> BoxFuture<'_, Result<MyRoomList, ApiError>>;
    /// The user ids of those of `names` (lower-cased usernames, at most
    /// [`dyschat_protocol::mentions::MAX_CANDIDATES`]) who are members of the room, in the
    /// order of `names`: the mentions of a send.
    fn mentions(
        &self,
        room_id: &str,
        names: Vec<String>,
    ) -> BoxFuture<'_, Result<Vec<String>, ApiError>>;
}

/// What a live entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LiveKind {
    /// A message (`seq`, and its `prev_seq` from `Nats-Last-Sequence`).
    Message,
    /// A change event (`seq` is its `event_seq`; `prev_seq` means nothing: the payload, a
    /// [`StoredChange`](dyschat_protocol::wire::StoredChange), says its `prev_event_seq`).
    Change,
}

/// One entry of a room's live feed (the stream's RePublish), with its `Nats-Sequence` and
/// `Nats-Last-Sequence` already read; messages and change events in the stream's order.
#[derive(Debug, Clone)]
pub(crate) struct LiveMessage {
    pub kind: LiveKind,
    pub seq: u64,
    pub prev_seq: u64,
    /// The stored payload (a [`StoredMessage`] or a change event as JSON).
    pub payload: Bytes,
    /// The re-published headers: the sender's trace context.
    pub headers: Option<HeaderMap>,
    /// When the agent received it (for [`dyschat_runtime::metric::hop::LIVE_FAN_OUT`]).
    pub received: std::time::Instant,
}

/// A room's live feed; dropping it unsubscribes.
pub(crate) type LiveStream = BoxStream<'static, LiveMessage>;

/// A mesh event (membership, typing, presence) as it arrived.
#[derive(Debug, Clone)]
pub(crate) struct EventMessage {
    pub subject: String,
    pub payload: Bytes,
    pub headers: Option<HeaderMap>,
}

/// Core NATS: live feeds and the agent's own events.
pub(crate) trait Bus: Send + Sync {
    /// Subscribes to the room's live feed. Once this returns, the subscription is registered
    /// with the server the agent is connected to.
    fn subscribe_live<'a>(&'a self, room_id: &'a str) -> BoxFuture<'a, PortResult<LiveStream>>;
    fn publish_typing<'a>(&'a self, event: &'a TypingEvent) -> BoxFuture<'a, PortResult<()>>;
    fn publish_receipt<'a>(&'a self, event: &'a ReceiptEvent) -> BoxFuture<'a, PortResult<()>>;
}

/// This agent's presence entries and announcements.
pub(crate) trait PresenceStore: Send + Sync {
    /// Writes (`online`) or removes this agent's entry for `user_id`.
    fn set_local<'a>(&'a self, user_id: &'a str, online: bool) -> BoxFuture<'a, PortResult<()>>;
    /// Whether another agent holds an entry for `user_id`.
    fn online_elsewhere<'a>(&'a self, user_id: &'a str) -> BoxFuture<'a, PortResult<bool>>;
    fn announce<'a>(&'a self, event: &'a PresenceEvent) -> BoxFuture<'a, PortResult<()>>;
}

/// The revoked-token bucket, asked directly: what the agent does for a token its in-memory set
/// cannot vouch for (its watch of the bucket has not caught up yet, or the set is full, see
/// [`crate::core::revocation`]). The watch itself feeds the set from the adapter.
pub(crate) trait RevocationStore: Send + Sync {
    /// Whether the bucket holds a revocation of token `token_id` (one KV get).
    fn is_revoked<'a>(&'a self, token_id: &'a str) -> BoxFuture<'a, PortResult<bool>>;
}

/// A read marker as stored: the `seq` read up to and the entry's revision (what a
/// compare-and-set expects).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct StoredMarker {
    pub seq: u64,
    pub revision: u64,
}

/// The read-marker bucket. The forward-only rule and its retries are the core's
/// ([`crate::core::read`]); this only reads and writes by compare-and-set.
pub(crate) trait ReadMarkerStore: Send + Sync {
    /// The user's marker in the room, `None` when they never read it.
    fn marker<'a>(
        &'a self,
        user_id: &'a str,
        room_id: &'a str,
    ) -> BoxFuture<'a, PortResult<Option<StoredMarker>>>;
    /// Writes `seq` if the entry is still at `expected` (`None`: the key must be new); `false`
    /// when another write came first.
    fn put_if<'a>(
        &'a self,
        user_id: &'a str,
        room_id: &'a str,
        seq: u64,
        expected: Option<u64>,
    ) -> BoxFuture<'a, PortResult<bool>>;
    /// The user's markers in `room_ids`, `(room_id, seq)`, rooms never read left out: one
    /// batched read per 1,024 rooms.
    fn markers<'a>(
        &'a self,
        user_id: &'a str,
        room_ids: &'a [String],
    ) -> BoxFuture<'a, PortResult<Vec<(String, u64)>>>;
    /// The markers of `user_ids` in the room, `(user_id, seq)`, users who never read it left
    /// out: one batched read per 1,024 users.
    fn room_markers<'a>(
        &'a self,
        room_id: &'a str,
        user_ids: &'a [String],
    ) -> BoxFuture<'a, PortResult<Vec<(String, u64)>>>;
}

/// One event of a user's subjects as it arrived.
#[derive(Debug, Clone)]
pub(crate) struct UserEventMessage {
    pub subject: String,
    pub payload: Bytes,
    /// `Nats-Sequence` of a message the feed stream re-published (its `notification_id`).
    pub sequence: Option<u64>,
}

/// The per-user event subjects (`dyschat.events.user.<user_id>.<kind>`): an agent subscribes
/// to a user's only while it holds a socket of theirs ([`crate::core::UserSockets`]).
pub(crate) trait UserEvents: Send + Sync {
    /// Subscribes to the user's events (as they arrive, with their subject and headers);
    /// dropping it unsubscribes. Once this returns, the subscription is registered with the
    /// server.
    fn subscribe<'a>(
        &'a self,
        user_id: &'a str,
    ) -> BoxFuture<'a, PortResult<BoxStream<'static, UserEventMessage>>>;
    fn publish_read<'a>(&'a self, event: &'a ReadMarkerEvent) -> BoxFuture<'a, PortResult<()>>;
}

/// A page of a user's feed, newest first, `(notification_id, notification)`, and whether older
/// ones exist.
pub(crate) type FeedPage = (Vec<(u64, StoredNotification)>, bool);

/// Each user's feed (the `DYSCHAT_FEED` stream, one subject per user; ids are its sequences)
/// and feed marker (`dyschat_feed_read`). The rules are the core's ([`crate::core::feed`]).
pub(crate) trait FeedStore: Send + Sync {
    /// The user's notifications with an id below `before` (all when `None`), newest first, at
    /// most `limit`, and whether older ones exist.
    fn page<'a>(
        &'a self,
        user_id: &'a str,
        before: Option<u64>,
        limit: usize,
    ) -> BoxFuture<'a, PortResult<FeedPage>>;
    /// How many of the user's notifications have an id above `after`.
    fn count_after<'a>(&'a self, user_id: &'a str, after: u64) -> BoxFuture<'a, PortResult<u64>>;
    /// The id of the user's newest notification, 0 when they have none.
    fn newest<'a>(&'a self, user_id: &'a str) -> BoxFuture<'a, PortResult<u64>>;
    /// The user's feed marker (the id read up to), `None` when never set.
    fn marker<'a>(&'a self, user_id: &'a str) -> BoxFuture<'a, PortResult<Option<StoredMarker>>>;
    /// Writes the marker if the entry is still at `expected` (`None`: the key must be new);
    /// `false` when another write came first.
    fn put_marker_if<'a>(
        &'a self,
        user_id: &'a str,
        up_to: u64,
        expected: Option<u64>,
    ) -> BoxFuture<'a, PortResult<bool>>;
}

/// What a shared token bucket granted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Grant {
    /// Tokens taken, at most the ones asked for; 0 when the bucket is empty.
    pub granted: u32,
    /// With nothing granted, how long until a token is there.
    pub wait_ms: u64,
}

/// Token buckets shared by every agent (rate limits that hold across the mesh).
pub(crate) trait RateStore: Send + Sync {
    /// Takes up to `want` tokens from `bucket` (refilled at `per_sec`, holding at most `burst`).
    fn take<'a>(
        &'a self,
        bucket: &'a str,
        per_sec: f64,
        burst: f64,
        want: u32,
    ) -> BoxFuture<'a, PortResult<Grant>>;
}

/// Every port the core uses, cheap to clone.
#[derive(Clone)]
pub(crate) struct Ports {
    pub stream: Arc<dyn MessageStream>,
    pub changes: Arc<dyn ChangeLog>,
    pub history: Arc<dyn HistoryStore>,
    pub rooms: Arc<dyn RoomsService>,
    pub bus: Arc<dyn Bus>,
    pub presence: Arc<dyn PresenceStore>,
    pub rates: Arc<dyn RateStore>,
    pub revoked: Arc<dyn RevocationStore>,
    pub read_markers: Arc<dyn ReadMarkerStore>,
    pub user_events: Arc<dyn UserEvents>,
    pub feed: Arc<dyn FeedStore>,
    pub files: Arc<dyn FileStore>,
    pub search: Arc<dyn SearchService>,
}
