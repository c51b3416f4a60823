//! Rooms themselves: create, get, list, update (PATCH) and delete.

use dyschat_protocol::policy::{Action, RoomKind};
use dyschat_protocol::wire::{
    CreateRoomRequest, Eviction, EvictionCause, ListRoomsRequest, Role, Room, RoomDeleted,
    RoomEvent, RoomList, RoomRequest, UpdateRoomRequest,
};
use dyschat_protocol::{ids, subjects, time, ApiError};

use super::{Rooms, MAX_PAGE};
use crate::error::{Quota, RoomsError};
use crate::paging::Cursor;
use crate::records::{MemberRecord, RoomRecord};
use crate::rules::{self, check};
use crate::store::{Presence, StoreError, MAX_ATTEMPTS};

/// Index entries one list request reads per round after the first (which reads one page's
/// worth); a request reads at most `Limits::list_scan` entries in all (5,000 by default), then
/// answers what it found with a `next_cursor` that continues from there.
const SCAN_BATCH: usize = 256;

impl Rooms {
    /// Creates a room whose only member is its owner, within the owner's quotas (rooms owned,
    /// rooms joined). The owner's member record (and count) is written before the room record,
    /// so a room is never visible without its owner.
    pub async fn create(self, req: CreateRoomRequest) -> Result<Room, RoomsError> {
        ids::validate_id("owner_id", &req.owner_id)?;
        ids::validate_username(&req.owner_name)?;
        ids::validate_room_name(&req.name)?;
        ids::validate_topic(&req.topic)?;
        let owned = self.take(Quota::Owned, &req.owner_id).await?;
        let record = RoomRecord {
            room_id: ids::new_id(),
            name: req.name,
            topic: req.topic,
            owner_id: req.owner_id,
            created_at: time::now(),
            visibility: req.visibility,
            kind: RoomKind::Room,
            deleted: false,
            peers: Vec::new(),
        };
        let owner = MemberRecord {
            user_id: record.owner_id.clone(),
            username: req.owner_name,
            role: Role::Owner,
            joined_at: record.created_at.clone(),
        };
        let created = async {
            let change = self.add_member(&record, &owner, true).await?;
            if !self.store.create_room(&record).await? {
                return Err(StoreError::Exists(record.room_id.clone()).into());
            }
            Ok::<_, RoomsError>(change)
        }
        .await;
        let change = match created {
            Ok(change) => change,
            Err(e) => {
                self.give_back(owned).await;
                return Err(e);
            }
        };
        tracing::info!(room_id = %record.room_id, owner_id = %record.owner_id, "room created");
        let standing = rules::standing(&record, Some(Role::Owner), false, false, false);
        self.announce_membership(
            &record.room_id,
            &owner.user_id,
            &owner.username,
            true,
            change.revision,
            standing,
        )
        .await;
        Ok(record.view(1))
    }

    pub async fn get(self, req: RoomRequest) -> Result<Room, RoomsError> {
        let (room, _, known) = self.room_for(&req.room_id, &req.user_id).await?;
        check(&known.standing, Action::See)?;
        let count = self.store.member_count(&req.room_id).await?;
        Ok(room.view(count))
    }

    /// One page of the rooms the user may see, in creation order, whose name holds `q`.
    pub async fn list(self, req: ListRoomsRequest) -> Result<RoomList, RoomsError> {
        if !(1..=MAX_PAGE).contains(&req.limit) {
            return Err(ApiError::bad_request("limit must be 1 to 100").into());
        }
        ids::validate_id("user_id", &req.user_id)?;
        let query = rules::name_query(req.q.as_deref())?;
        let mut cursor = Cursor::parse(req.cursor.as_deref())?;
        let mut shown: Vec<RoomRecord> = Vec::with_capacity(req.limit);
        let mut next = None;
        // At least a page's worth, so a list without `q` always fills its pages.
        let mut budget = self.limits.list_scan.max(req.limit);
        let mut batch = req.limit;
        while budget > 0 {
            let stretch = self.store.index_stretch(cursor, batch.min(budget)).await?;
            budget = budget.saturating_sub(batch.min(budget));
            batch = SCAN_BATCH;
            let ids: Vec<String> = stretch
                .entries
                .iter()
                .filter(|(_, _, kind)| *kind != RoomKind::Direct)
                .map(|(_, id, _)| id.clone())
                .collect();
            let records = self.store.rooms_by_id(&ids).await?;
            let hidden: Vec<String> = records
                .values()
                .filter(|(r, _)| r.visibility != dyschat_protocol::policy::Visibility::Public)
                .map(|(r, _)| r.room_id.clone())
                .collect();
            let presence = self.store.standings_in(&hidden, &req.user_id).await?;
            let mut full_at = None;
            for (seq, id, _) in &stretch.entries {
                if shown.len() == req.limit {
                    full_at = Some(Cursor(*seq));
                    break;
                }
                let Some((record, _)) = records.get(id) else {
                    continue;
                };
                let presence = presence.get(id).copied().unwrap_or(Presence::default());
                if rules::listed(record, presence, query.as_deref()) {
                    shown.push(record.clone());
                }
            }
            next = full_at.or(stretch.next);
            if full_at.is_some() || stretch.next.is_none() || shown.len() == req.limit {
                break;
            }
            if let Some(c) = stretch.next {
                cursor = c;
            }
        }
        let ids: Vec<&str> = shown.iter().map(|r| r.room_id.as_str()).collect();
        let counts = self.store.member_counts(&ids).await?;
        let rooms = shown
            .into_iter()
            .map(|r| {
                let count = counts.get(&r.room_id).copied().unwrap_or(0);
                r.view(count)
            })
            .collect();
        Ok(RoomList {
            rooms,
            next_cursor: next.map(Cursor::encode),
        })
    }

    /// PATCH: name, topic, visibility (owner, moderator). Subscribed sockets learn the new Room
    /// from the `room_updated` event.
    pub async fn update(self, req: UpdateRoomRequest) -> Result<Room, RoomsError> {
        for attempt in 0..MAX_ATTEMPTS {
            let (mut room, revision, known) = self.room_for(&req.room_id, &req.user_id).await?;
            check(&known.standing, Action::Update)?;
            if !rules::apply_update(&mut room, &req.changes)? {
                let count = self.store.member_count(&room.room_id).await?;
                return Ok(room.view(count));
            }
            let Some(room_revision) = self.store.update_room(&room, revision).await? else {
                tracing::debug!(room_id = %room.room_id, attempt, "room changed meanwhile, again");
                continue;
            };
            let count = self.store.member_count(&room.room_id).await?;
            let view = room.view(count);
            self.announce(RoomEvent::RoomUpdated {
                room: view.clone(),
                room_revision,
            })
            .await;
            return Ok(view);
        }
        Err(StoreError::Contended {
            key: req.room_id,
            attempts: MAX_ATTEMPTS,
        }
        .into())
    }

    /// Deletes the room (owner). Before the answer: the record is marked deleted (`not_found`
    /// everywhere from then on), the room leaves the list, every agent confirms its sockets
    /// left the room, its messages are purged from the stream and a `room_deleted` event tells
    /// msg-writer to drop its history. After the answer, a clean-up removes its members,
    /// invitations, bans, index entries and counts ([`super::cleanup`]).
    pub async fn delete(self, req: RoomRequest) -> Result<RoomDeleted, RoomsError> {
        let mut deleted = None;
        for _ in 0..MAX_ATTEMPTS {
            let (mut room, revision, known) = self.room_for(&req.room_id, &req.user_id).await?;
            check(&known.standing, Action::Delete)?;
            room.deleted = true;
            if self.store.update_room(&room, revision).await?.is_some() {
                deleted = Some(room);
                break;
            }
        }
        let room = deleted.ok_or_else(|| StoreError::Contended {
            key: req.room_id.clone(),
            attempts: MAX_ATTEMPTS,
        })?;
        self.store.remove_index_entry(&room.room_id).await?;
        let confirmed = self
            .evict(Eviction {
                eviction_id: String::new(),
                room_id: room.room_id.clone(),
                user_id: None,
                cause: EvictionCause::Deleted,
                by: req.user_id.clone(),
                reason: String::new(),
                revision: 0,
                standing: None,
            })
            .await;
        let purged = self.store.purge_messages(&room.room_id).await?;
        let unown = format!("unown:{}", room.room_id);
        self.store
            .add(subjects::owned_count(&room.owner_id), -1, &unown)
            .await?;
        self.announce(RoomEvent::RoomDeleted {
            room_id: room.room_id.clone(),
        })
        .await;
        tracing::info!(room_id = %room.room_id, purged, agents = confirmed.agents, "room deleted");
        self.clean_up_later(room.room_id.clone());
        Ok(RoomDeleted {
            room_id: room.room_id,
            deleted: true,
        })
    }
}
