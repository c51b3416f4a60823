//! Joining, leaving, the members listing and the membership check: each touches the records of
//! one (room, user), or the records of one page, never the whole member set.
//!
//! Every answer carries the member record's revision, and so does every membership event: a
//! consumer applies what it learns about (room, user) only when the revision is newer than what
//! it knows, so a late event never undoes a later change.

use dyschat_protocol::policy::Action;
use dyschat_protocol::subjects;
use dyschat_protocol::wire::{
    Access, AccessRequest, MemberList, MembersRequest, MembershipReply, MembershipRequest,
};
use dyschat_protocol::{ids, time};

use super::{change_id, Rooms};
use crate::error::{Quota, RoomsError};
use crate::paging::{self, Cursor};
use crate::records::{MemberRecord, MembershipEntry, RoomRecord};
use crate::rules::{self, check};
use crate::store::Change;

impl Rooms {
    /// Makes the user a member (the policy decides: a private room needs an invitation, which
    /// this uses up; a ban refuses; a direct room is joined only by its two users, who are
    /// members from its creation). Joining a room one is already in changes nothing.
    pub async fn join(self, req: MembershipRequest) -> Result<MembershipReply, RoomsError> {
        ids::validate_username(&req.username)?;
        let (room, _, known) = self.room_for(&req.room_id, &req.user_id).await?;
        check(&known.standing, Action::Join)?;
        if known.standing.role.is_some() {
            return Ok(MembershipReply {
                room_id: req.room_id,
                joined: true,
                changed: false,
                revision: known.revision,
            });
        }
        let member = MemberRecord {
            role: room.role_of(&req.user_id),
            user_id: req.user_id,
            username: req.username,
            joined_at: time::now(),
        };
        let change = self.add_member(&room, &member, true).await?;
        if change.changed {
            // A ban stored while this join was under way: the ban's removal of the member may
            // have looked before the record existed, so the join takes itself back.
            if self
                .store
                .ban(&room.room_id, &member.user_id)
                .await?
                .is_some()
            {
                self.remove_member(&room.room_id, &member.user_id).await?;
                let banned = rules::standing(&room, None, false, true, false);
                check(&banned, Action::Join)?;
            }
            if known.standing.invited {
                self.store
                    .remove_invite(&room.room_id, &member.user_id)
                    .await?;
            }
            let standing = rules::standing(&room, Some(member.role), false, false, false);
            self.announce_membership(
                &room.room_id,
                &member.user_id,
                &member.username,
                true,
                change.revision,
                standing,
            )
            .await;
        }
        Ok(MembershipReply {
            room_id: req.room_id,
            joined: true,
            changed: change.changed,
            revision: change.revision,
        })
    }

    /// Removes the user from the room (the owner cannot leave, nor anyone a direct room);
    /// leaving a room one is not in changes nothing.
    pub async fn leave(self, req: MembershipRequest) -> Result<MembershipReply, RoomsError> {
        let (room, _, known) = self.room_for(&req.room_id, &req.user_id).await?;
        check(&known.standing, Action::Leave)?;
        let change = self.remove_member(&room.room_id, &req.user_id).await?;
        if change.changed {
            let standing = rules::standing(&room, None, false, false, false);
            self.announce_membership(
                &room.room_id,
                &req.user_id,
                &req.username,
                false,
                change.revision,
                standing,
            )
            .await;
        }
        Ok(MembershipReply {
            room_id: req.room_id,
            joined: false,
            changed: change.changed,
            revision: change.revision,
        })
    }

    /// One page of members (in the order they joined), with each one's role and whether they
    /// are online; members only.
    pub async fn members(self, req: MembersRequest) -> Result<MemberList, RoomsError> {
        let limit = members_limit(req.limit)?;
        let cursor = Cursor::parse(req.cursor.as_deref())?;
        let (_, _, known) = self.room_for(&req.room_id, &req.user_id).await?;
        check(&known.standing, Action::Read)?;
        let count = self.store.member_count(&req.room_id).await?;
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

    /// The user's standing in the room with its revision, for an agent to cache and decide
    /// with. A room that does not exist is `not_found`; a hidden one answers a standing whose
    /// decisions are all `not_found`, which the agent treats the same way.
    pub async fn access(self, req: AccessRequest) -> Result<Access, RoomsError> {
        let (_, room_revision, known) = self.room_for(&req.room_id, &req.user_id).await?;
        Ok(Access {
            room_id: req.room_id,
            user_id: req.user_id,
            role: known.standing.role,
            revision: known.revision,
            standing: known.standing,
            room_revision,
        })
    }

    /// Makes `member` a member of `room` unless they are one: the user's index entry first,
    /// then the record, then (when it was created) the counts and the index entry again, which
    /// keeps a leave racing this join from removing the entry of a member. With `quota`, the
    /// user's count of rooms joined is taken first and refused past the quota.
    pub(super) async fn add_member(
        &self,
        room: &RoomRecord,
        member: &MemberRecord,
        quota: bool,
    ) -> Result<Change, RoomsError> {
        let room_id = room.room_id.as_str();
        let user_id = member.user_id.as_str();
        let taken = if quota {
            Some(self.take(Quota::Joined, user_id).await?)
        } else {
            None
        };
        let entry = MembershipEntry {
            joined_at: member.joined_at.clone(),
            kind: room.kind,
        };
        let added = async {
            self.store.index_join(user_id, room_id, &entry).await?;
            let change = self.store.create_member(room_id, member).await?;
            if change.changed {
                let id = |kind| change_id(kind, room_id, user_id, change.revision);
                let joined = async {
                    if taken.is_none() {
                        let subject = subjects::joined_count(user_id);
                        self.store.add(subject, 1, &id("joined")).await?;
                    }
                    Ok::<_, RoomsError>(())
                };
                let join_id = id("join");
                let (count, index, joined) = tokio::join!(
                    self.store.add_members(room_id, 1, &join_id),
                    self.store.index_join(user_id, room_id, &entry),
                    joined,
                );
                count?;
                index?;
                joined?;
            }
            Ok::<_, RoomsError>(change)
        }
        .await;
        match (&added, taken) {
            (Ok(change), Some(taken)) if !change.changed => self.give_back(taken).await,
            (Err(_), Some(taken)) => self.give_back(taken).await,
            _ => {}
        }
        added
    }

    /// Removes the user's member record if there is one; then the counts and the user's index
    /// entry (at the revision read before the record went, see `Store::index_leave`).
    pub(super) async fn remove_member(
        &self,
        room_id: &str,
        user_id: &str,
    ) -> Result<Change, RoomsError> {
        let index = self.store.index_revision(user_id, room_id).await?;
        let change = self.store.delete_member(room_id, user_id).await?;
        let counts = async {
            if change.changed {
                let id = |kind| change_id(kind, room_id, user_id, change.revision);
                let (leave_id, left_id) = (id("leave"), id("left"));
                let (members, joined) = tokio::join!(
                    self.store.add_members(room_id, -1, &leave_id),
                    self.store
                        .add(subjects::joined_count(user_id), -1, &left_id),
                );
                members?;
                joined?;
            }
            Ok::<_, RoomsError>(())
        };
        // Also when nothing changed: an entry left by a failed join is cleaned up here.
        let unindex = async {
            if let Some(revision) = index {
                self.store.index_leave(user_id, room_id, revision).await?;
            }
            Ok::<_, RoomsError>(())
        };
        let (counts, unindex) = tokio::join!(counts, unindex);
        counts?;
        unindex?;
        Ok(change)
    }

    /// Takes one of the user's `quota`: the counter first (its ack says the new total), given
    /// back at once past the maximum, so concurrent requests of one user never overshoot.
    pub(super) async fn take(&self, quota: Quota, user_id: &str) -> Result<Taken, RoomsError> {
        let (subject, max) = match quota {
            Quota::Owned => (subjects::owned_count(user_id), self.limits.max_owned),
            Quota::Joined => (subjects::joined_count(user_id), self.limits.max_joined),
        };
        let id = ids::new_id();
        let total = self
            .store
            .add(subject.clone(), 1, &format!("take:{id}"))
            .await?;
        let taken = Taken { subject, id };
        if total.is_some_and(|total| rules::over_quota(total, max)) {
            self.give_back(taken).await;
            return Err(RoomsError::Quota(quota));
        }
        Ok(taken)
    }

    /// Gives back what [`Rooms::take`] took, for something that did not happen. A failure is
    /// logged: the counter then overstates by one until an operator corrects it.
    pub(super) async fn give_back(&self, taken: Taken) {
        let id = format!("give:{}", taken.id);
        if let Err(e) = self.store.add(taken.subject.clone(), -1, &id).await {
            tracing::warn!(error = %e, subject = %taken.subject, "could not give a quota back");
        }
    }
}

/// One unit of a quota counter taken by [`Rooms::take`].
#[derive(Debug)]
pub(crate) struct Taken {
    subject: String,
    id: String,
}

/// `limit` of a members page: 0 (or missing) is the default page.
fn members_limit(asked: usize) -> Result<usize, RoomsError> {
    use dyschat_protocol::wire::MembersRequest as M;
    Ok(paging::limit(asked, M::DEFAULT_LIMIT, M::MAX_LIMIT)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_pages_default_to_a_thousand() {
        assert_eq!(members_limit(0).unwrap(), 1000);
        assert_eq!(members_limit(10).unwrap(), 10);
        assert!(members_limit(1001).is_err());
    }
}
