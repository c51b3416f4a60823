//! Direct rooms, blocks, and each user's own rooms.
//!
//! A direct room is the one room of two users: its id is recorded under their sorted pair with
//! a KV `create` before anything else, so both orders and any race agree on one room; then both
//! member records, then the room record (a present record means both members exist).

use dyschat_protocol::policy::{Action, RoomKind, Standing, Visibility};
use dyschat_protocol::wire::{
    BlockRequest, BlockState, MyRoom, MyRoomList, OpenDmRequest, PageRequest, Role, Room, UserList,
    UserView,
};
use dyschat_protocol::{ids, time, ApiError};

use super::Rooms;
use crate::error::RoomsError;
use crate::paging::{self, Cursor};
use crate::records::{BlockRecord, MemberRecord, RoomRecord};
use crate::rules::{self, check};

impl Rooms {
    /// The direct room of the asker and `peer_id`, created on first use (the asker's quota of
    /// rooms joined applies; the peer's does not, since they did not ask). 400 for oneself, 404
    /// for an unknown user, 403 while the peer blocks the asker.
    pub async fn open_dm(self, req: OpenDmRequest) -> Result<Room, RoomsError> {
        ids::validate_id("user_id", &req.user_id)?;
        ids::validate_username(&req.username)?;
        ids::validate_id("peer_id", &req.peer_id)?;
        if req.user_id == req.peer_id {
            return Err(ApiError::bad_request("a direct room is with someone else").into());
        }
        let peer = self.users.lookup(&req.peer_id).await?;
        let blocked = self.store.blocks(&req.peer_id, &req.user_id).await?;
        // Opening is the first step of posting: the same rule refuses both.
        let prospect = Standing {
            visibility: Visibility::Private,
            kind: RoomKind::Direct,
            role: Some(Role::Member),
            blocked,
            ..Standing::default()
        };
        check(&prospect, Action::Post)?;
        if let Some(room) = self.existing_dm(&req.user_id, &req.peer_id).await? {
            let count = self.store.member_count(&room.room_id).await?;
            return Ok(room.view(count));
        }
        let room_id = self
            .store
            .claim_dm(&req.user_id, &req.peer_id, &ids::new_id())
            .await?;
        let me = UserView {
            user_id: req.user_id.clone(),
            username: req.username.clone(),
        };
        let now = time::now();
        let record = rules::direct_room(room_id, me.clone(), peer.clone(), now.clone());
        for (user, quota) in [(me, true), (peer, false)] {
            let member = MemberRecord {
                user_id: user.user_id,
                username: user.username,
                role: Role::Member,
                joined_at: now.clone(),
            };
            let change = self.add_member(&record, &member, quota).await?;
            if change.changed {
                let standing = rules::standing(&record, Some(Role::Member), false, false, false);
                self.announce_membership(
                    &record.room_id,
                    &member.user_id,
                    &member.username,
                    true,
                    change.revision,
                    standing,
                )
                .await;
            }
        }
        if self.store.create_room(&record).await? {
            tracing::info!(room_id = %record.room_id, "direct room opened");
        }
        let count = self.store.member_count(&record.room_id).await?;
        Ok(record.view(count))
    }

    /// The direct room of `a` and `b` when it exists whole (record written).
    async fn existing_dm(&self, a: &str, b: &str) -> Result<Option<RoomRecord>, RoomsError> {
        let Some(room_id) = self.store.dm(a, b).await? else {
            return Ok(None);
        };
        Ok(self
            .store
            .room(&room_id)
            .await?
            .map(|(record, _)| record)
            .filter(|r| !r.deleted))
    }

    /// The asker blocks `user_id` (who must exist): while it lasts, that user cannot open a
    /// direct room with the asker nor post into it.
    pub async fn block(self, req: BlockRequest) -> Result<BlockState, RoomsError> {
        self.validate_block(&req)?;
        let target = self.users.lookup(&req.user_id).await?;
        let record = BlockRecord {
            username: target.username,
            at: time::now(),
        };
        self.store
            .put_block(&req.actor_id, &req.user_id, &record)
            .await?;
        self.restand_in_dm(&req.actor_id, &req.user_id).await?;
        Ok(BlockState {
            user_id: req.user_id,
            blocked: true,
        })
    }

    /// Lifts a block; idempotent.
    pub async fn unblock(self, req: BlockRequest) -> Result<BlockState, RoomsError> {
        self.validate_block(&req)?;
        if self.store.blocks(&req.actor_id, &req.user_id).await? {
            self.store.remove_block(&req.actor_id, &req.user_id).await?;
            self.restand_in_dm(&req.actor_id, &req.user_id).await?;
        }
        Ok(BlockState {
            user_id: req.user_id,
            blocked: false,
        })
    }

    /// One page of the users the asker blocks.
    pub async fn blocks(self, req: PageRequest) -> Result<UserList, RoomsError> {
        ids::validate_id("user_id", &req.user_id)?;
        let limit = paging::limit(
            req.limit,
            PageRequest::DEFAULT_LIMIT,
            PageRequest::MAX_LIMIT,
        )?;
        let cursor = Cursor::parse(req.cursor.as_deref())?;
        let (users, next) = self.store.block_page(&req.user_id, cursor, limit).await?;
        Ok(UserList {
            users,
            next_cursor: next.map(Cursor::encode),
        })
    }

    /// One page of the rooms the user is a member of (in the order joined): each Room with the
    /// user's role, when they joined, and a direct room's peer. Index entries whose member
    /// record is gone (a failed join, a deleted room) are left out.
    pub async fn my_rooms(self, req: PageRequest) -> Result<MyRoomList, RoomsError> {
        ids::validate_id("user_id", &req.user_id)?;
        let limit = paging::limit(
            req.limit,
            PageRequest::DEFAULT_LIMIT,
            PageRequest::MAX_LIMIT,
        )?;
        let cursor = Cursor::parse(req.cursor.as_deref())?;
        let (entries, next) = self.store.index_page(&req.user_id, cursor, limit).await?;
        let room_ids: Vec<String> = entries.into_iter().map(|(room_id, _)| room_id).collect();
        let (members, records) = tokio::try_join!(
            self.store.member_of_each(&room_ids, &req.user_id),
            self.store.rooms_by_id(&room_ids),
        )?;
        let shown: Vec<&str> = room_ids
            .iter()
            .map(String::as_str)
            .filter(|id| members.contains_key(*id))
            .collect();
        let counts = self.store.member_counts(&shown).await?;
        let mut rooms = Vec::with_capacity(shown.len());
        for room_id in shown {
            let (Some(member), Some((record, _))) = (members.get(room_id), records.get(room_id))
            else {
                continue;
            };
            if record.deleted {
                continue;
            }
            let count = counts.get(room_id).copied().unwrap_or(0);
            rooms.push(MyRoom {
                peer: record.peer_of(&req.user_id).cloned(),
                room: record.clone().view(count),
                role: member.role,
                joined_at: member.joined_at.clone(),
            });
        }
        Ok(MyRoomList {
            rooms,
            next_cursor: next.map(Cursor::encode),
        })
    }

    fn validate_block(&self, req: &BlockRequest) -> Result<(), RoomsError> {
        ids::validate_id("actor_id", &req.actor_id)?;
        ids::validate_id("user_id", &req.user_id)?;
        if req.actor_id == req.user_id {
            return Err(ApiError::bad_request("one cannot block oneself").into());
        }
        Ok(())
    }

    /// After `blocker` (un)blocked `blocked`: the blocked user's standing in their direct room,
    /// if they have one, moves to a new revision and is announced.
    async fn restand_in_dm(&self, blocker: &str, blocked: &str) -> Result<(), RoomsError> {
        let Some(room) = self.existing_dm(blocker, blocked).await? else {
            return Ok(());
        };
        self.store.touch(&room.room_id, blocked).await?;
        let known = self.standing_of(&room, blocked).await?;
        self.announce_standing(&room.room_id, blocked, known.revision, known.standing)
            .await;
        Ok(())
    }
}
