//! The operations of the service, free of transport: each takes a decoded request and returns a
//! typed result; [`crate::service`] puts them in its table of endpoints.
//!
//! Each operation takes the [`Rooms`] handle by value (a clone is a few reference counts), so a
//! method is itself a `'static` handler: `Rooms::create` fits the endpoint table as it is.
//!
//! Every operation on a room first reads the asker's [`Standing`] ([`Rooms::standing_of`]) and
//! decides with the one policy ([`crate::rules::check`]); a private room is `not_found` to an
//! outsider exactly like a room that does not exist.
//!
//! * [`rooms`]: create, get, list, update, delete (and the clean-up after it, [`cleanup`]).
//! * [`membership`]: join, leave, members, access, and the quota of rooms joined.
//! * [`moderation`]: invitations, roles, ownership, kicks, bans.
//! * [`direct`]: direct rooms, blocks, and each user's own rooms.
//! * [`mentions`]: which of a body's `@names` are members of the room.
//! * [`events`] publishes what changed; [`evict`] has every live agent confirm an eviction.

mod cleanup;
mod direct;
mod events;
mod evict;
mod membership;
mod mentions;
mod moderation;
mod rooms;

use std::sync::Arc;
use std::time::Duration;

use dyschat_protocol::ids;
use dyschat_protocol::policy::{RoomKind, Standing};
use tokio_util::task::TaskTracker;

use crate::error::RoomsError;
use crate::feed::Feed;
use crate::files::Files;
use crate::records::RoomRecord;
use crate::rules;
use crate::store::{MemberState, Store};
use crate::users::Users;

/// The most rooms one list page may ask for.
pub(crate) const MAX_PAGE: usize = 100;

/// The quotas and bounds of the configuration.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub max_owned: u64,
    pub max_joined: u64,
    pub evict_timeout: Duration,
    /// Room index entries one list request reads at most.
    pub list_scan: usize,
}

/// The service state: the store, a client to publish events and evictions with, the auth
/// service for user lookups, the quotas, and the tracker of clean-ups that outlive a request
/// (drained at shutdown with the requests).
#[derive(Clone)]
pub(crate) struct Rooms {
    store: Arc<Store>,
    events: async_nats::Client,
    users: Users,
    limits: Limits,
    background: TaskTracker,
    feed: Feed,
    files: Files,
}

/// A user's standing in a room, and the revision of the (room, user) key it was read at.
#[derive(Debug, Clone)]
pub(crate) struct Known {
    pub standing: Standing,
    pub revision: u64,
    pub member: MemberState,
}

impl Rooms {
    pub fn new(
        store: Store,
        files: Files,
        client: async_nats::Client,
        limits: Limits,
        background: TaskTracker,
    ) -> Self {
        let store = Arc::new(store);
        Rooms {
            feed: Feed::new(store.clone(), client.clone()),
            store,
            users: Users::new(client.clone()),
            events: client,
            limits,
            background,
            files,
        }
    }

    /// The feed, whose consumer the service runs beside its endpoints.
    pub(crate) fn feed(&self) -> Feed {
        self.feed.clone()
    }

    /// The room's record and revision; `not_found` for a room that does not exist or is being
    /// deleted.
    async fn existing(&self, room_id: &str) -> Result<(RoomRecord, u64), RoomsError> {
        match self.store.room(room_id).await? {
            Some((record, revision)) if !record.deleted => Ok((record, revision)),
            _ => Err(RoomsError::NotFound),
        }
    }

    /// What `user_id` is in `room`: the member record first (its revision orders the rest),
    /// then, for a non-member, the invitation and the ban, and in a direct room whether the
    /// peer blocks them. Everything else about the pair is written before the key is touched,
    /// so what is read here is at least as new as the revision.
    async fn standing_of(&self, room: &RoomRecord, user_id: &str) -> Result<Known, RoomsError> {
        let member = self.store.member(&room.room_id, user_id).await?;
        self.standing_with(room, user_id, member).await
    }

    /// [`Rooms::standing_of`] with the member record already read.
    async fn standing_with(
        &self,
        room: &RoomRecord,
        user_id: &str,
        member: MemberState,
    ) -> Result<Known, RoomsError> {
        let (role, revision) = match &member {
            MemberState::Member { record, revision } => (Some(record.role), *revision),
            MemberState::Absent { revision } => (None, *revision),
        };
        let room_id = room.room_id.as_str();
        let outsider = async {
            if role.is_some() {
                return Ok((false, false));
            }
            let (invited, ban) = tokio::try_join!(
                self.store.invited(room_id, user_id),
                self.store.ban(room_id, user_id)
            )?;
            Ok::<_, RoomsError>((invited, ban.is_some()))
        };
        let blocked = async {
            match room.peer_of(user_id) {
                Some(peer) if room.kind == RoomKind::Direct => {
                    Ok(self.store.blocks(&peer.user_id, user_id).await?)
                }
                _ => Ok::<_, RoomsError>(false),
            }
        };
        let ((invited, banned), blocked) = tokio::try_join!(outsider, blocked)?;
        Ok(Known {
            standing: rules::standing(room, role, invited, banned, blocked),
            revision,
            member,
        })
    }

    /// The room and the asker's standing in it, for a request by `user_id`.
    async fn room_for(
        &self,
        room_id: &str,
        user_id: &str,
    ) -> Result<(RoomRecord, u64, Known), RoomsError> {
        ids::validate_id("room_id", room_id)?;
        ids::validate_id("user_id", user_id)?;
        // The room and the member record at once: a member's standing is then one round.
        let ((room, revision), member) = tokio::try_join!(self.existing(room_id), async {
            Ok(self.store.member(room_id, user_id).await?)
        })?;
        let known = self.standing_with(&room, user_id, member).await?;
        Ok((room, revision, known))
    }
}

/// The de-duplication id of one counter change: what it follows from (a member record
/// revision, a room), so a retried increment of the same change counts once.
fn change_id(kind: &str, room_id: &str, user_id: &str, revision: u64) -> String {
    format!("{kind}:{room_id}:{user_id}:{revision}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn change_ids_name_the_revision() {
        assert_eq!(change_id("join", "r", "u", 7), "join:r:u:7");
        assert_ne!(
            change_id("join", "r", "u", 7),
            change_id("leave", "r", "u", 7)
        );
    }
}
