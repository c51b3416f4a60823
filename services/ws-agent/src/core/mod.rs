//! The agent's domain core: what a chat user can do, whichever edge they came through.
//!
//! The HTTP edge ([`crate::http`]) and the WebSocket edge ([`crate::session`]) only translate
//! requests and frames into calls here and results into responses and frames. Everything with a
//! rule in it lives here: sending ([`send`]: validate, rate-limit, authorize, publish, confirm,
//! one path for both edges), joining a room ([`join`]), membership checks ([`membership`]),
//! presence ([`presence`]), read markers ([`read`], [`user_sockets`]), read receipts
//! ([`receipts`]), each user's feed ([`feed`]), files ([`files`]), revoked tokens
//! ([`revocation`]) and the mesh events ([`events`]). The core reaches the outside world
//! only through the [ports](crate::ports), so it is unit-tested over in-memory fakes.

use std::sync::Arc;

use dyschat_protocol::{
    ids,
    policy::Action,
    wire::{MemberList, MembersRequest, MembershipReply, MessagePage, TypingEvent},
    ApiError,
};
use dyschat_runtime::history::{self, PageQuery};
use dyschat_runtime::token::{self, Claims, TokenError};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::AgentSettings;
use crate::hub::Hub;
use crate::limits::Limits;
use crate::ports::{
    Bus, ChangeLog, FeedStore, FileStore, HistoryStore, MessageStream, Ports, ReadMarkerStore,
    RoomsService, SearchService, UserEvents,
};

mod change;
mod dedupe;
mod error;
pub(crate) mod events;
mod evict;
pub(crate) mod feed;
pub(crate) mod files;
pub(crate) mod fold;
pub(crate) mod join;
mod membership;
mod my_rooms;
mod pages;
mod presence;
mod read;
mod receipts;
pub(crate) mod revocation;
mod search;
mod send;
pub(crate) mod standing;
mod user_sockets;

pub(crate) use change::Edit;
pub(crate) use error::CoreError;
pub(crate) use files::Upload;
pub(crate) use join::SocketRooms;
pub(crate) use membership::Membership;
pub(crate) use presence::Presence;
pub(crate) use revocation::Revocations;
pub(crate) use search::SearchQuery;
pub(crate) use send::{record_hop, send_span, Outgoing, Reply};
pub(crate) use user_sockets::UserSockets;

/// The default and largest page of a member list.
pub(crate) const MAX_MEMBER_PAGE: usize = 1000;

/// The authenticated caller of a request or socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct User {
    pub user_id: String,
    pub username: String,
    /// Token expiry, unix seconds.
    pub expires: i64,
    /// The token's id, under which a logout revokes it ([`token::id_of`]).
    pub token_id: String,
}

impl User {
    fn new(claims: Claims, token_id: String) -> Self {
        User {
            user_id: claims.sub,
            username: claims.name,
            expires: claims.exp,
            token_id,
        }
    }
}

pub(crate) struct Core {
    auth_secret: String,
    /// Outbound frames a socket may have queued before it is closed with 1013.
    pub(crate) socket_queue: usize,
    /// Write deadline and ping timing of every socket.
    pub(crate) writer: crate::session::WriterSettings,
    recovery_limit: u64,
    /// How long a retried send is recognised as a duplicate.
    dedupe_window: std::time::Duration,
    /// `since` replays read from the stream at once: each is an ordered consumer on the server.
    replays: tokio::sync::Semaphore,
    pub(crate) limits: Limits,
    pub(crate) membership: Membership,
    pub(crate) presence: Presence,
    pub(crate) revocations: Arc<Revocations>,
    /// Each local user's sockets, and their subscription to the user's events.
    pub(crate) user_sockets: Arc<UserSockets>,
    pub(crate) hub: Arc<Hub>,
    stream: Arc<dyn MessageStream>,
    changes: Arc<dyn ChangeLog>,
    /// Serialises this agent's changes of one room (a few locks, chosen by the room's hash), so
    /// its own changes do not race each other for the room's next change position.
    change_locks: change::Stripes,
    history: Arc<dyn HistoryStore>,
    rooms: Arc<dyn RoomsService>,
    bus: Arc<dyn Bus>,
    read_markers: Arc<dyn ReadMarkerStore>,
    user_events: Arc<dyn UserEvents>,
    feed: Arc<dyn FeedStore>,
    files: Arc<dyn FileStore>,
    /// Uploads this agent streams at once.
    uploads: tokio::sync::Semaphore,
    /// Downloads this agent streams at once (a permit lives as long as its body).
    downloads: Arc<tokio::sync::Semaphore>,
    max_file_bytes: u64,
    search: Arc<dyn SearchService>,
    /// Which rooms are small enough for read receipts, as last seen.
    room_sizes: receipts::RoomSizes,
    pub(crate) shutdown: CancellationToken,
    pub(crate) tracker: TaskTracker,
}

impl Core {
    pub(crate) fn new(
        settings: &AgentSettings,
        dedupe_window: std::time::Duration,
        ports: Ports,
        tracker: TaskTracker,
        shutdown: CancellationToken,
    ) -> Arc<Core> {
        let hub = Arc::new(Hub::new(
            ports.bus.clone(),
            ports.stream.clone(),
            ports.changes.clone(),
            tracker.clone(),
            shutdown.clone(),
            settings.socket_queue,
            settings.recovery_limit,
        ));
        Arc::new(Core {
            auth_secret: settings.auth_secret.clone(),
            socket_queue: settings.socket_queue,
            writer: crate::session::WriterSettings {
                write_timeout: std::time::Duration::from_secs(settings.write_timeout_secs),
                ping_idle: std::time::Duration::from_secs(settings.ping_idle_secs),
            },
            recovery_limit: settings.recovery_limit,
            replays: tokio::sync::Semaphore::new(settings.max_concurrent_replays),
            dedupe_window,
            limits: Limits::new(settings, ports.rates.clone()),
            membership: Membership::new(ports.rooms.clone(), membership::MAX_ENTRIES),
            rooms: ports.rooms,
            presence: Presence::new(ports.presence),
            revocations: Revocations::new(ports.revoked, revocation::MAX_HELD),
            user_sockets: UserSockets::new(
                ports.user_events.clone(),
                ids::new_id(),
                tracker.clone(),
                shutdown.clone(),
            ),
            hub,
            stream: ports.stream,
            changes: ports.changes,
            change_locks: change::Stripes::default(),
            history: ports.history,
            bus: ports.bus,
            read_markers: ports.read_markers,
            user_events: ports.user_events,
            feed: ports.feed,
            files: ports.files,
            uploads: tokio::sync::Semaphore::new(settings.max_concurrent_uploads),
            downloads: Arc::new(tokio::sync::Semaphore::new(
                settings.max_concurrent_downloads,
            )),
            max_file_bytes: settings.max_file_bytes,
            search: ports.search,
            room_sizes: receipts::RoomSizes::default(),
            shutdown,
            tracker,
        })
    }

    /// The user a token names, if it is valid, unexpired and not revoked: how every route and
    /// every socket (URL token, `auth` frame, re-authentication) is authenticated.
    pub(crate) async fn authenticate(&self, token: &str) -> Result<User, CoreError> {
        let claims = match token::verify(&self.auth_secret, token) {
            Ok(claims) if ids::is_valid_id(&claims.sub) => claims,
            Ok(_) => {
                return Err(ApiError::unauthorized("token subject is not a valid user id").into())
            }
            Err(TokenError::Expired) => return Err(ApiError::unauthorized("token expired").into()),
            Err(TokenError::Invalid(_)) => {
                return Err(ApiError::unauthorized("invalid token").into())
            }
        };
        let token_id =
            token::id_of(&claims, token).map_err(|_| ApiError::unauthorized("invalid token"))?;
        let now = chrono::Utc::now().timestamp();
        if self.revocations.check(&token_id, claims.exp, now).await? {
            return Err(ApiError::unauthorized("token revoked").into());
        }
        Ok(User::new(claims, token_id))
    }

    /// Joins or leaves a room (HTTP); sockets are attached by [`join`].
    pub(crate) async fn set_membership(
        &self,
        user: &User,
        room_id: &str,
        joined: bool,
    ) -> Result<MembershipReply, CoreError> {
        self.membership.set(room_id, user, joined).await
    }

    /// A page of the room's history, for a member. `limit` is already within bounds
    /// ([`page_limit`]).
    pub(crate) async fn history(
        &self,
        user: &User,
        room_id: &str,
        query: PageQuery,
        limit: usize,
    ) -> Result<MessagePage, CoreError> {
        self.membership
            .decide(room_id, &user.user_id, Action::Read)
            .await?;
        self.history_page(room_id, query, limit).await
    }

    /// A page of the room's members, for a member: `limit` 1..=1000 (default 1000), `cursor`
    /// from the previous page.
    pub(crate) async fn members(
        &self,
        user: &User,
        room_id: &str,
        limit: Option<i64>,
        cursor: Option<String>,
    ) -> Result<MemberList, CoreError> {
        let limit = match limit {
            None => MAX_MEMBER_PAGE,
            Some(n) if (1..=MAX_MEMBER_PAGE as i64).contains(&n) => n as usize,
            Some(_) => return Err(CoreError::Invalid("limit must be 1 to 1000")),
        };
        let cursor = cursor.filter(|c| !c.is_empty());
        if let Some(cursor) = &cursor {
            ids::validate_id("cursor", cursor)?;
        }
        let request = MembersRequest {
            room_id: room_id.to_string(),
            limit,
            cursor,
            user_id: user.user_id.clone(),
        };
        self.membership.members(&user.user_id, request).await
    }

    /// Tells the room's other subscribed members that `user` is typing.
    pub(crate) async fn typing(&self, user: &User, room_id: &str) -> Result<(), CoreError> {
        self.membership
            .decide(room_id, &user.user_id, Action::Post)
            .await?;
        // Accepted either way; passed on at most once per 2 s per user and room.
        if !self
            .limits
            .typing_sent
            .due(&user.user_id, room_id, std::time::Instant::now())
        {
            return Ok(());
        }
        let event = TypingEvent {
            room_id: room_id.to_string(),
            user_id: user.user_id.clone(),
            username: user.username.clone(),
        };
        self.bus
            .publish_typing(&event)
            .await
            .map_err(CoreError::unavailable("typing"))
    }
}

/// Validates a history or room list `limit`: default 50, 1..=100.
pub(crate) fn page_limit(limit: Option<i64>) -> Result<usize, CoreError> {
    match limit {
        None => Ok(history::DEFAULT_PAGE),
        Some(n) if (1..=history::MAX_PAGE as i64).contains(&n) => Ok(n as usize),
        Some(_) => Err(CoreError::Invalid("limit must be 1 to 100")),
    }
}

#[cfg(test)]
mod tests;
