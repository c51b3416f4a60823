//! Running a room's people: invitations, roles, ownership, kicks and bans.
//!
//! Each decides with the policy over the actor's standing (`Manage`, `Appoint`, and for acting
//! on a member `Moderate { target }`, which needs a higher role), stores the change, moves the
//! (room, user) revision, and announces it. A kick or a ban of a member is answered only after
//! the agents confirmed the user's sockets left the room ([`super::evict`]).

use dyschat_protocol::policy::Action;
use dyschat_protocol::subjects;
use dyschat_protocol::wire::{
    BanList, BanState, Eviction, EvictionCause, InviteState, MemberState as Kicked,
    ModerateRequest, PageRequest, Role, RoleState, Room, RoomEvent, SetRoleRequest, TargetRequest,
    UserView,
};
use dyschat_protocol::{ids, time};

use super::{change_id, Known, Rooms};
use crate::error::{Quota, RoomsError};
use crate::paging::{self, Cursor};
use crate::records::{BanRecord, InviteRecord, RoomRecord};
use crate::rules::{self, check};
use crate::store::{MemberState, StoreError, MAX_ATTEMPTS};

impl Rooms {
    /// The room, the actor's standing and the target's, for `actor_id` acting on `user_id`.
    async fn both(
        &self,
        room_id: &str,
        actor_id: &str,
        user_id: &str,
    ) -> Result<(RoomRecord, u64, Known, Known), RoomsError> {
        ids::validate_id("user_id", user_id)?;
        let (room, revision, actor) = self.room_for(room_id, actor_id).await?;
        let target = self.standing_of(&room, user_id).await?;
        Ok((room, revision, actor, target))
    }

    /// Invites a user (owner, moderator), who must exist; inviting a member changes nothing.
    pub async fn invite(self, req: TargetRequest) -> Result<InviteState, RoomsError> {
        let (room, _, actor) = self.room_for(&req.room_id, &req.actor_id).await?;
        ids::validate_id("user_id", &req.user_id)?;
        check(&actor.standing, Action::Manage)?;
        self.users.lookup(&req.user_id).await?;
        let target = self.standing_of(&room, &req.user_id).await?;
        if target.standing.role.is_none() && !target.standing.invited {
            let invite = InviteRecord {
                by: req.actor_id.clone(),
                at: time::now(),
            };
            self.store
                .put_invite(&room.room_id, &req.user_id, &invite)
                .await?;
            let standing = rules::standing(&room, None, true, target.standing.banned, false);
            self.restand(&room.room_id, &req.user_id, standing).await?;
            if let MemberState::Member { record, .. } = &actor.member {
                let by = UserView {
                    user_id: record.user_id.clone(),
                    username: record.username.clone(),
                };
                // The invitation stands; a lost notification does not undo it.
                if let Err(e) = self
                    .feed
                    .invite(&room.room_id, &room.name, by, &req.user_id, &invite.at)
                    .await
                {
                    tracing::warn!(error = %e, "invite notification failed");
                }
            }
        }
        Ok(InviteState {
            room_id: req.room_id,
            user_id: req.user_id,
            invited: true,
        })
    }

    /// Takes an invitation back (owner, moderator); idempotent.
    pub async fn uninvite(self, req: TargetRequest) -> Result<InviteState, RoomsError> {
        let (room, _, actor, target) = self.both(&req.room_id, &req.actor_id, &req.user_id).await?;
        check(&actor.standing, Action::Manage)?;
        if target.standing.invited {
            self.store
                .remove_invite(&room.room_id, &req.user_id)
                .await?;
            let standing = rules::standing(&room, None, false, target.standing.banned, false);
            self.restand(&room.room_id, &req.user_id, standing).await?;
        }
        Ok(InviteState {
            room_id: req.room_id,
            user_id: req.user_id,
            invited: false,
        })
    }

    /// Sets a member's role to `moderator` or `member` (owner; not on oneself).
    pub async fn set_role(self, req: SetRoleRequest) -> Result<RoleState, RoomsError> {
        let role = rules::appointable(req.role)?;
        let (room, _, actor, target) = self.both(&req.room_id, &req.actor_id, &req.user_id).await?;
        check(&actor.standing, Action::Appoint)?;
        let Some(current) = target.standing.role else {
            return Err(RoomsError::NotAMember);
        };
        check(
            &actor.standing,
            Action::Moderate {
                target: Some(current),
            },
        )?;
        if current != role {
            self.give_role(&room, &req.user_id, role).await?;
        }
        Ok(RoleState {
            room_id: req.room_id,
            user_id: req.user_id,
            role,
        })
    }

    /// Passes ownership to a member (owner); the old owner becomes a moderator. The new owner's
    /// quota of rooms owned applies.
    pub async fn transfer_owner(self, req: TargetRequest) -> Result<Room, RoomsError> {
        let (room, _, actor, target) = self.both(&req.room_id, &req.actor_id, &req.user_id).await?;
        check(&actor.standing, Action::Appoint)?;
        if target.standing.role.is_none() {
            return Err(RoomsError::NotAMember);
        }
        if req.user_id == req.actor_id {
            let count = self.store.member_count(&room.room_id).await?;
            return Ok(room.view(count));
        }
        let taken = self.take(Quota::Owned, &req.user_id).await?;
        let moved = async {
            self.give_role(&room, &req.user_id, Role::Owner).await?;
            let (room, room_revision) = self.set_owner(&room.room_id, &req.user_id).await?;
            let revision = self
                .give_role(&room, &req.actor_id, Role::Moderator)
                .await?;
            let id = change_id("unown", &room.room_id, &req.actor_id, revision);
            self.store
                .add(subjects::owned_count(&req.actor_id), -1, &id)
                .await?;
            Ok::<_, RoomsError>((room, room_revision))
        }
        .await;
        let (room, room_revision) = match moved {
            Ok(room) => room,
            Err(e) => {
                self.give_back(taken).await;
                return Err(e);
            }
        };
        let count = self.store.member_count(&room.room_id).await?;
        let view = room.view(count);
        self.announce(RoomEvent::RoomUpdated {
            room: view.clone(),
            room_revision,
        })
        .await;
        Ok(view)
    }

    /// Removes a member whose role is lower than the actor's; kicking a non-member changes
    /// nothing. Answered once the agents confirmed the user's sockets left the room.
    pub async fn kick(self, req: ModerateRequest) -> Result<Kicked, RoomsError> {
        let reason = rules::reason(&req.reason)?;
        let (room, _, actor, target) = self.both(&req.room_id, &req.actor_id, &req.user_id).await?;
        check(
            &actor.standing,
            Action::Moderate {
                target: target.standing.role,
            },
        )?;
        if let MemberState::Member { record, .. } = &target.member {
            let standing = rules::standing(&room, None, false, false, false);
            self.remove_and_evict(
                &room,
                record.username.clone(),
                EvictionCause::Kicked,
                &req,
                reason,
                standing,
            )
            .await?;
        }
        Ok(Kicked {
            room_id: req.room_id,
            user_id: req.user_id,
            joined: false,
        })
    }

    /// Bans a user whose role is lower than the actor's (a non-member too, who must exist): a
    /// member is kicked, an invitation taken back; until unbanned, joining is refused.
    pub async fn ban(self, req: ModerateRequest) -> Result<BanState, RoomsError> {
        let reason = rules::reason(&req.reason)?;
        let (room, _, actor, target) = self.both(&req.room_id, &req.actor_id, &req.user_id).await?;
        check(
            &actor.standing,
            Action::Moderate {
                target: target.standing.role,
            },
        )?;
        let username = match &target.member {
            MemberState::Member { record, .. } => record.username.clone(),
            MemberState::Absent { .. } => self.users.lookup(&req.user_id).await?.username,
        };
        let ban = BanRecord {
            user_id: req.user_id.clone(),
            username: username.clone(),
            by: req.actor_id.clone(),
            reason: reason.clone(),
            at: time::now(),
        };
        self.store.put_ban(&room.room_id, &ban).await?;
        if target.standing.invited {
            self.store
                .remove_invite(&room.room_id, &req.user_id)
                .await?;
        }
        let standing = rules::standing(&room, None, false, true, false);
        if target.standing.role.is_some() {
            self.remove_and_evict(
                &room,
                username,
                EvictionCause::Banned,
                &req,
                reason,
                standing,
            )
            .await?;
        } else {
            self.restand(&room.room_id, &req.user_id, standing).await?;
        }
        Ok(BanState {
            room_id: req.room_id,
            user_id: req.user_id,
            banned: true,
        })
    }

    /// Lifts a ban (owner, moderator); idempotent. The user may join again (a private room
    /// needs a new invitation).
    pub async fn unban(self, req: TargetRequest) -> Result<BanState, RoomsError> {
        let (room, _, actor, target) = self.both(&req.room_id, &req.actor_id, &req.user_id).await?;
        check(&actor.standing, Action::Manage)?;
        if target.standing.banned {
            self.store.remove_ban(&room.room_id, &req.user_id).await?;
            let standing = rules::standing(&room, None, target.standing.invited, false, false);
            self.restand(&room.room_id, &req.user_id, standing).await?;
        }
        Ok(BanState {
            room_id: req.room_id,
            user_id: req.user_id,
            banned: false,
        })
    }

    /// One page of the room's bans (owner, moderator).
    pub async fn bans(self, req: PageRequest) -> Result<BanList, RoomsError> {
        let limit = paging::limit(
            req.limit,
            PageRequest::DEFAULT_LIMIT,
            PageRequest::MAX_LIMIT,
        )?;
        let cursor = Cursor::parse(req.cursor.as_deref())?;
        let (room, _, actor) = self.room_for(&req.room_id, &req.user_id).await?;
        check(&actor.standing, Action::Manage)?;
        let (bans, next) = self.store.ban_page(&room.room_id, cursor, limit).await?;
        Ok(BanList {
            bans: bans.into_iter().map(BanRecord::view).collect(),
            next_cursor: next.map(Cursor::encode),
        })
    }

    /// Removes the member `req.user_id`, has the agents evict their sockets, then announces it.
    async fn remove_and_evict(
        &self,
        room: &RoomRecord,
        username: String,
        cause: EvictionCause,
        req: &ModerateRequest,
        reason: String,
        standing: dyschat_protocol::policy::Standing,
    ) -> Result<(), RoomsError> {
        let change = self.remove_member(&room.room_id, &req.user_id).await?;
        if !change.changed {
            return Ok(());
        }
        let confirmed = self
            .evict(Eviction {
                eviction_id: String::new(),
                room_id: room.room_id.clone(),
                user_id: Some(req.user_id.clone()),
                cause,
                by: req.actor_id.clone(),
                reason,
                revision: change.revision,
                standing: Some(standing),
            })
            .await;
        tracing::info!(room_id = %room.room_id, user_id = %req.user_id, ?cause, agents = confirmed.agents, "member removed");
        self.announce_membership(
            &room.room_id,
            &req.user_id,
            &username,
            false,
            change.revision,
            standing,
        )
        .await;
        Ok(())
    }

    /// Gives a member `role` and announces it; the member's new revision.
    async fn give_role(
        &self,
        room: &RoomRecord,
        user_id: &str,
        role: Role,
    ) -> Result<u64, RoomsError> {
        let Some((record, revision)) = self.store.set_role(&room.room_id, user_id, role).await?
        else {
            return Err(RoomsError::NotAMember);
        };
        self.announce(RoomEvent::MemberRole {
            room_id: room.room_id.clone(),
            user_id: user_id.to_string(),
            username: record.username,
            role,
            revision,
            standing: rules::standing(room, Some(role), false, false, false),
        })
        .await;
        Ok(revision)
    }

    /// Makes `owner_id` the room's owner in its record: the record and its new revision.
    async fn set_owner(
        &self,
        room_id: &str,
        owner_id: &str,
    ) -> Result<(RoomRecord, u64), RoomsError> {
        for _ in 0..MAX_ATTEMPTS {
            let (mut room, revision) = self.existing(room_id).await?;
            room.owner_id = owner_id.to_string();
            if let Some(revision) = self.store.update_room(&room, revision).await? {
                return Ok((room, revision));
            }
        }
        Err(StoreError::Contended {
            key: room_id.to_string(),
            attempts: MAX_ATTEMPTS,
        }
        .into())
    }
}
