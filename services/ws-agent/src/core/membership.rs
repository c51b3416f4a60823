//! The one place the agent decides who may do what in a room.
//!
//! Every frame and route that touches a room (join, `since` replays, history, members, typing,
//! presence, send, HTTP post) asks [`Membership::decide`], which reads the user's [`Standing`]
//! from the [cache](super::standing) (or, when it is not cached or not fresh, from the rooms
//! service's `access` answer) and decides with `dyschat_protocol::policy::decide`, the same
//! function the rooms service decides its own endpoints with: there is no second copy of a rule.
//! A hidden private room and a room that does not exist answer the same `not_found`, by the same
//! path.

use std::sync::Arc;

use dyschat_protocol::policy::{self, Action, Standing};
use dyschat_protocol::wire::{
    AccessRequest, MemberList, MembersRequest, MembershipReply, MembershipRequest,
};
use dyschat_protocol::{ApiError, ErrorCode};

use super::standing::{Change, Lookup, StandingCache};
use super::{CoreError, User};
use crate::ports::RoomsService;

pub(crate) use super::standing::MAX_ENTRIES;

/// Standing checks and membership changes, over the cache and the rooms service.
pub(crate) struct Membership {
    pub(crate) cache: StandingCache,
    rooms: Arc<dyn RoomsService>,
}

fn room_not_found() -> CoreError {
    CoreError::Api(ApiError::not_found(policy::ROOM_NOT_FOUND))
}

impl Membership {
    pub(crate) fn new(rooms: Arc<dyn RoomsService>, max_entries: usize) -> Self {
        Membership {
            cache: StandingCache::new(max_entries),
            rooms,
        }
    }

    /// The user's standing in the room; `not_found` for an unknown or deleted room.
    pub(crate) async fn standing(
        &self,
        room_id: &str,
        user_id: &str,
    ) -> Result<Standing, CoreError> {
        match self.cache.fresh(room_id, user_id) {
            Some(Lookup::Standing(standing)) => return Ok(standing),
            Some(Lookup::Gone) => return Err(room_not_found()),
            None => {}
        }
        let access = self
            .rooms
            .access(AccessRequest {
                room_id: room_id.to_string(),
                user_id: user_id.to_string(),
            })
            .await
            .inspect_err(|e| {
                // Remembered like a standing, so that probing for rooms that do not exist costs
                // what probing a private room does.
                if e.code == ErrorCode::NotFound {
                    self.cache.missing(room_id, user_id);
                }
            })?;
        let standing = Standing {
            role: access.role,
            ..access.standing
        };
        self.cache
            .answer(
                room_id,
                user_id,
                standing,
                access.revision,
                access.room_revision,
            )
            .ok_or_else(room_not_found)
    }

    /// Decides `action` by the user in the room: the standing if allowed, else the contract's
    /// refusal (`not_found` for an outsider of a private room, `forbidden`, `conflict`).
    pub(crate) async fn decide(
        &self,
        room_id: &str,
        user_id: &str,
        action: Action,
    ) -> Result<Standing, CoreError> {
        let standing = self.standing(room_id, user_id).await?;
        policy::decide(&standing, action).map_err(CoreError::Denied)?;
        Ok(standing)
    }

    /// The decision for `action` from what is cached only, fresh or not (presence routing): no
    /// request, and `false` when nothing is known.
    pub(crate) fn allows_cached(&self, room_id: &str, user_id: &str, action: Action) -> bool {
        self.cache
            .known(room_id, user_id)
            .is_some_and(|s| policy::decide(&s, action).is_ok())
    }

    /// Joins (`joined`) or leaves the room through the rooms service (which decides it) and
    /// records the reply at once, so the caller's next send is not refused by a cache the event
    /// has not reached yet.
    pub(crate) async fn set(
        &self,
        room_id: &str,
        user: &User,
        joined: bool,
    ) -> Result<MembershipReply, CoreError> {
        let request = MembershipRequest {
            room_id: room_id.to_string(),
            user_id: user.user_id.clone(),
            username: user.username.clone(),
        };
        let reply = if joined {
            self.rooms.join(request).await?
        } else {
            self.rooms.leave(request).await?
        };
        self.cache.change(
            room_id,
            &user.user_id,
            Change::Joined(joined),
            reply.revision,
        );
        Ok(reply)
    }

    /// One page of the room's members, for whoever may read the room.
    pub(crate) async fn members(
        &self,
        user_id: &str,
        request: MembersRequest,
    ) -> Result<MemberList, CoreError> {
        self.decide(&request.room_id, user_id, Action::Read).await?;
        Ok(self.rooms.members(request).await?)
    }
}
