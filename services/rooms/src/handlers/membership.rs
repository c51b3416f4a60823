//! Joining, leaving, the members listing and the membership check: each touches the one record of
//! (room, user), or the records of one page, never the whole member set.
//!
//! Every answer carries the member record's revision, and so does every membership event: a
//! consumer applies what it learns about (room, user) only when the revision is newer than what
//! it knows, so a late event never undoes a later change.

use dyschat_protocol::wire::{
    Access, AccessRequest, MemberList, MembersRequest, MembershipEvent, MembershipReply,
    MembershipRequest,
};
use dyschat_protocol::{ids, time};

use super::{change_id, members_limit, Rooms};
use crate::error::RoomsError;
use crate::paging::Cursor;
use crate::records::MemberRecord;
use crate::store::{Change, MemberState};

impl Rooms {
    /// Makes the user a member; joining a room one is already in changes nothing.
    pub async fn join(self, req: MembershipRequest) -> Result<MembershipReply, RoomsError> {
        ids::validate_id("room_id", &req.room_id)?;
        ids::validate_id("user_id", &req.user_id)?;
        ids::validate_username(&req.username)?;
        let room = self.existing(&req.room_id).await?;
        let member = MemberRecord {
            role: room.role_of(&req.user_id),
            user_id: req.user_id,
            username: req.username,
            joined_at: time::now(),
        };
        let change = self.add_member(&req.room_id, &member).await?;
        if change.changed {
            self.announce(&req.room_id, member.user_id, member.username, true, change)
                .await;
        }
        Ok(MembershipReply {
            room_id: req.room_id,
            joined: true,
            changed: change.changed,
            revision: change.revision,
        })
    }

    /// Removes the user from the room; leaving a room one is not in changes nothing. The record
    /// goes first, then the count and the user's index entry (at the revision read before the
    /// record went, see `Store::index_leave`).
    pub async fn leave(self, req: MembershipRequest) -> Result<MembershipReply, RoomsError> {
        ids::validate_id("room_id", &req.room_id)?;
        ids::validate_id("user_id", &req.user_id)?;
        let (_, index) = tokio::try_join!(self.existing(&req.room_id), async {
            Ok(self
                .store
                .index_revision(&req.user_id, &req.room_id)
                .await?)
        })?;
        let change = self.store.delete_member(&req.room_id, &req.user_id).await?;
        let count = async {
            if change.changed {
                let id = change_id("leave", &req.room_id, &req.user_id, change.revision);
                self.store.add_members(&req.room_id, -1, &id).await?;
            }
            Ok::<_, RoomsError>(())
        };
        // Also when nothing changed: an entry left by a failed join is cleaned up here.
        let unindex = async {
            if let Some(revision) = index {
                self.store
                    .index_leave(&req.user_id, &req.room_id, revision)
                    .await?;
            }
            Ok::<_, RoomsError>(())
        };
        let (count, unindex) = tokio::join!(count, unindex);
        count?;
        unindex?;
        if change.changed {
            self.announce(&req.room_id, req.user_id, req.username, false, change)
                .await;
        }
        Ok(MembershipReply {
            room_id: req.room_id,
            joined: false,
            changed: change.changed,
            revision: change.revision,
        })
    }

    /// One page of members (in the order they joined) with whether each is online. Only members
    /// may see this; ws-agent checks that.
    pub async fn members(self, req: MembersRequest) -> Result<MemberList, RoomsError> {
        ids::validate_id("room_id", &req.room_id)?;
        let limit = members_limit(req.limit)?;
        let cursor = Cursor::parse(req.cursor.as_deref())?;
        let (_, count) = tokio::try_join!(self.existing(&req.room_id), async {
            Ok(self.store.member_count(&req.room_id).await?)
        })?;
        let (records, next) = self
            .store
            .member_page(&req.room_id, cursor, limit, count)
            .await?;
        let users: Vec<&str> = records.iter().map(|r| r.user_id.as_str()).collect();
        let online = self.store.online(&users).await?;
        let members = records
            .into_iter()
            .map(|r| {
                let is_online = online.contains(&r.user_id);
                r.view(is_online)
            })
            .collect();
        Ok(MemberList {
            members,
            next_cursor: next.map(Cursor::encode),
        })
    }

    /// Whether the user is a member, and as what: one read of the member record (a second, of
    /// the room, only for a non-member, to tell an unknown room).
    pub async fn access(self, req: AccessRequest) -> Result<Access, RoomsError> {
        ids::validate_id("room_id", &req.room_id)?;
        ids::validate_id("user_id", &req.user_id)?;
        let (role, revision) = match self.store.member(&req.room_id, &req.user_id).await? {
            MemberState::Member { record, revision } => (Some(record.role), revision),
            MemberState::Absent { revision } => {
                self.existing(&req.room_id).await?;
                (None, revision)
            }
        };
        Ok(Access {
            room_id: req.room_id,
            user_id: req.user_id,
            role,
            revision,
        })
    }

    async fn announce(
        &self,
        room_id: &str,
        user_id: String,
        username: String,
        joined: bool,
        change: Change,
    ) {
        tracing::debug!(%room_id, %user_id, joined, revision = change.revision, "membership changed");
        self.publish(MembershipEvent {
            room_id: room_id.to_string(),
            user_id,
            username,
            joined,
            revision: change.revision,
        })
        .await;
    }
}
