//! What every handler of the agent shares, and the few operations both edges (HTTP and
//! WebSocket) perform the same way: asking auth and rooms, checking membership, posting.

use std::sync::Arc;
use std::time::{Duration, Instant};

use dyschat_protocol::{
    ids, subjects,
    wire::{
        Access, AccessRequest, Member, MemberList, MembershipEvent, MembershipReply,
        MembershipRequest, Message, RoomRequest,
    },
    ApiError,
};

use dyschat_runtime::{
    rpc,
    token::{self, Claims, TokenError},
};

use crate::config::Config;
use futures::StreamExt;
use metrics_exporter_prometheus::PrometheusHandle;
use serde::{de::DeserializeOwned, Serialize};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use crate::chat::{Chat, SendRequest};
use crate::hub::{sequence_headers, Hub};
use crate::limits::Limits;
use crate::membership::MembershipCache;
use crate::presence::Presence;

/// How long a posted message waits to learn its `prev_seq` from the live stream before falling
/// back to the stored history.
const PREV_SEQ_WAIT: Duration = Duration::from_secs(2);

pub struct AgentState {
    pub config: Config,
    pub nats: async_nats::Client,
    pub chat: Chat,
    pub hub: Arc<Hub>,
    pub membership: MembershipCache,
    pub presence: Presence,
    pub limits: Limits,
    pub metrics: PrometheusHandle,
    pub shutdown: CancellationToken,
    pub tracker: TaskTracker,
}

/// The authenticated caller of a request or socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub user_id: String,
    pub username: String,
    /// Token expiry, unix seconds.
    pub expires: i64,
}

impl From<Claims> for User {
    fn from(c: Claims) -> Self {
        User {
            user_id: c.sub,
            username: c.name,
            expires: c.exp,
        }
    }
}

impl AgentState {
    pub fn verify_token(&self, token: &str) -> Result<User, ApiError> {
        match token::verify(&self.config.agent.auth_secret, token) {
            Ok(claims) if ids::is_valid_id(&claims.sub) => Ok(claims.into()),
            Ok(_) => Err(ApiError::unauthorized(
                "token subject is not a valid user id",
            )),
            Err(TokenError::Expired) => Err(ApiError::unauthorized("token expired")),
            Err(TokenError::Invalid(_)) => Err(ApiError::unauthorized("invalid token")),
        }
    }

    /// A request to auth or rooms. It takes one of the agent's bounded request slots first, so a
    /// flood of clients queues here instead of piling onto NATS.
    async fn request<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        subject: String,
        body: &Req,
    ) -> Result<Resp, ApiError> {
        let _slot = self
            .limits
            .request_slot(self.config.agent.request_timeout())
            .await?;
        rpc::request(
            &self.nats,
            subject,
            body,
            self.config.agent.request_timeout(),
        )
        .await
    }

    pub async fn auth<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        subject: &str,
        body: &Req,
    ) -> Result<Resp, ApiError> {
        self.request(subject.to_string(), body).await
    }

    pub async fn rooms<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        endpoint: &str,
        body: &Req,
    ) -> Result<Resp, ApiError> {
        self.request(subjects::rooms::subject(endpoint), body).await
    }

    /// The room's members (404 for an unknown room), refreshing the membership cache.
    pub async fn members(&self, room_id: &str) -> Result<Vec<Member>, ApiError> {
        let list: MemberList = self
            .rooms(
                subjects::rooms::MEMBERS,
                &RoomRequest {
                    room_id: room_id.to_string(),
                },
            )
            .await?;
        self.membership.put(room_id, &list.members);
        Ok(list.members)
    }

    /// `not_found` for an unknown room, `forbidden` for a non-member.
    pub async fn require_member(&self, room_id: &str, user_id: &str) -> Result<(), ApiError> {
        if !ids::is_valid_id(room_id) {
            return Err(ApiError::not_found("room not found"));
        }
        let is_member = match self.membership.check(room_id, user_id) {
            Some(known) => known,
            None => {
                self.members(room_id).await?;
                self.membership.check(room_id, user_id).unwrap_or(false)
            }
        };
        // The members reply is the first page only (1,000): ask about this user alone.
        let is_member = is_member || self.access(room_id, user_id).await?;
        if is_member {
            Ok(())
        } else {
            Err(ApiError::forbidden("you are not a member of this room"))
        }
    }

    /// Whether the rooms service knows `user_id` as a member of `room_id`; a member is added to
    /// the cached room, if it is cached.
    async fn access(&self, room_id: &str, user_id: &str) -> Result<bool, ApiError> {
        let req = AccessRequest {
            room_id: room_id.to_string(),
            user_id: user_id.to_string(),
        };
        let access: Access = self.rooms(subjects::rooms::ACCESS, &req).await?;
        if access.role.is_some() {
            self.membership.apply(&MembershipEvent {
                room_id: room_id.to_string(),
                user_id: user_id.to_string(),
                username: String::new(),
                joined: true,
                revision: access.revision,
            });
        }
        Ok(access.role.is_some())
    }

    /// Joins (`joined`) or leaves a room through the rooms service and updates the local cache at
    /// once, so the caller's next send is not refused by a cache the event has not reached yet.
    pub async fn set_membership(
        &self,
        room_id: &str,
        user: &User,
        joined: bool,
    ) -> Result<MembershipReply, ApiError> {
        if !ids::is_valid_id(room_id) {
            return Err(ApiError::not_found("room not found"));
        }
        let endpoint = if joined {
            subjects::rooms::JOIN
        } else {
            subjects::rooms::LEAVE
        };
        let reply: MembershipReply = self
            .rooms(
                endpoint,
                &MembershipRequest {
                    room_id: room_id.to_string(),
                    user_id: user.user_id.clone(),
                    username: user.username.clone(),
                },
            )
            .await?;
        self.membership.apply(&MembershipEvent {
            room_id: room_id.to_string(),
            user_id: user.user_id.clone(),
            username: user.username.clone(),
            joined,
            revision: reply.revision,
        });
        Ok(reply)
    }

    /// Posts a message over HTTP: the same publish as a WebSocket `send`, and the full Message in
    /// return. Its `prev_seq` is read from the live re-publish of the message itself.
    pub async fn post_message(
        &self,
        user: &User,
        room_id: &str,
        body: String,
        client_msg_id: Option<String>,
    ) -> Result<Message, ApiError> {
        if !ids::is_valid_id(room_id) {
            return Err(ApiError::not_found("room not found"));
        }
        self.limits.check_send(&user.user_id, Instant::now())?;
        self.require_member(room_id, &user.user_id).await?;
        let span = crate::chat::send_span(room_id);
        let mut live = self
            .nats
            .subscribe(subjects::live(room_id))
            .await
            .map_err(|e| ApiError::unavailable(format!("subscribe failed: {e}")))?;
        let sent = self
            .chat
            .send(SendRequest {
                room_id: room_id.to_string(),
                sender_id: user.user_id.clone(),
                sender_name: user.username.clone(),
                body,
                client_msg_id,
            })
            .instrument(span)
            .await?;
        self.hub.expect(room_id, sent.seq);
        let mut prev = None;
        if !sent.duplicate {
            let wait = async {
                while let Some(m) = live.next().await {
                    if let Some((seq, prev_seq)) = m.headers.as_ref().and_then(sequence_headers) {
                        if seq == sent.seq {
                            return Some(prev_seq);
                        }
                    }
                }
                None
            };
            prev = tokio::time::timeout(PREV_SEQ_WAIT, wait)
                .await
                .ok()
                .flatten();
        }
        let _ = live.unsubscribe().await;
        let prev = match prev {
            Some(p) => p,
            None => self.chat.seq_before(room_id, sent.seq).await?,
        };
        Ok(Message::from_stored(sent.stored, sent.seq, prev))
    }
}
