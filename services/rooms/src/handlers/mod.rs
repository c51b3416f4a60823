//! The operations of the service, free of transport: each takes a decoded request and returns a
//! typed result; [`crate::service`] puts them in its table of endpoints.
//!
//! Each operation takes the [`Rooms`] handle by value (a clone is two reference counts), so a
//! method is itself a `'static` handler: `Rooms::create` fits the endpoint table as it is.
//!
//! Rooms here (create, get, list); memberships in [`membership`] (join, leave, members, access).

mod membership;

use std::sync::Arc;

use dyschat_protocol::wire::{
    CreateRoomRequest, ListRoomsRequest, MembershipEvent, Role, Room, RoomList, RoomRequest,
};
use dyschat_protocol::{ids, subjects, time};

use crate::error::RoomsError;
use crate::paging::{self, Cursor};
use crate::records::{MemberRecord, MembershipEntry, RoomRecord};
use crate::store::Store;

/// The most rooms one list page may ask for.
pub(crate) const MAX_PAGE: usize = 100;

/// The service state: the store, and a client to publish membership events with.
#[derive(Clone)]
pub(crate) struct Rooms {
    store: Arc<Store>,
    events: async_nats::Client,
}

impl Rooms {
    pub fn new(store: Store, events: async_nats::Client) -> Self {
        Rooms {
            store: Arc::new(store),
            events,
        }
    }

    /// Creates a room whose only member is its owner. The owner's member record (and count) is
    /// written before the room record, so a room is never visible without its owner.
    pub async fn create(self, req: CreateRoomRequest) -> Result<Room, RoomsError> {
        ids::validate_id("owner_id", &req.owner_id)?;
        ids::validate_username(&req.owner_name)?;
        ids::validate_room_name(&req.name)?;
        ids::validate_topic(&req.topic)?;
        let record = RoomRecord {
            room_id: ids::new_id(),
            name: req.name,
            topic: req.topic,
            owner_id: req.owner_id,
            created_at: time::now(),
        };
        let owner = MemberRecord {
            user_id: record.owner_id.clone(),
            username: req.owner_name,
            role: Role::Owner,
            joined_at: record.created_at.clone(),
        };
        let change = self.add_member(&record.room_id, &owner).await?;
        self.store.create_room(&record).await?;
        tracing::info!(room_id = %record.room_id, owner_id = %record.owner_id, "room created");
        self.publish(MembershipEvent {
            room_id: record.room_id.clone(),
            user_id: owner.user_id,
            username: owner.username,
            joined: true,
            revision: change.revision,
        })
        .await;
        Ok(record.view(1))
    }

    pub async fn get(self, req: RoomRequest) -> Result<Room, RoomsError> {
        ids::validate_id("room_id", &req.room_id)?;
        let record = self.existing(&req.room_id).await?;
        let count = self.store.member_count(&req.room_id).await?;
        Ok(record.view(count))
    }

    /// One page of all rooms in creation order.
    pub async fn list(self, req: ListRoomsRequest) -> Result<RoomList, RoomsError> {
        if !(1..=MAX_PAGE).contains(&req.limit) {
            return Err(dyschat_protocol::ApiError::bad_request("limit must be 1 to 100").into());
        }
        let cursor = Cursor::parse(req.cursor.as_deref())?;
        let (records, next) = self.store.room_page(cursor, req.limit).await?;
        let ids: Vec<&str> = records.iter().map(|r| r.room_id.as_str()).collect();
        let counts = self.store.member_counts(&ids).await?;
        let rooms = records
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

    async fn existing(&self, room_id: &str) -> Result<RoomRecord, RoomsError> {
        self.store.room(room_id).await?.ok_or(RoomsError::NotFound)
    }

    /// Makes `member` a member of `room_id` unless they are one: the user's index entry first,
    /// then the record, then (when it was created) the count and the index entry again, which
    /// keeps a leave racing this join from removing the entry of a member.
    async fn add_member(
        &self,
        room_id: &str,
        member: &MemberRecord,
    ) -> Result<crate::store::Change, RoomsError> {
        let entry = MembershipEntry {
            joined_at: member.joined_at.clone(),
        };
        self.store
            .index_join(&member.user_id, room_id, &entry)
            .await?;
        let change = self.store.create_member(room_id, member).await?;
        if change.changed {
            let id = change_id("join", room_id, &member.user_id, change.revision);
            let (count, index) = tokio::join!(
                self.store.add_members(room_id, 1, &id),
                self.store.index_join(&member.user_id, room_id, &entry),
            );
            count?;
            index?;
        }
        Ok(change)
    }

    /// Announces a membership change to the ws-agents. The change is already stored, so a failed
    /// publish is logged rather than failing the request.
    async fn publish(&self, event: MembershipEvent) {
        let subject = subjects::membership(&event.room_id);
        let payload = match serde_json::to_vec(&event) {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(error = %e, "could not encode a membership event");
                return;
            }
        };
        // The event carries the request's trace context, so the agents' reaction joins its trace.
        let headers = dyschat_runtime::telemetry::headers_with_context().unwrap_or_default();
        if let Err(e) = self
            .events
            .publish_with_headers(subject, headers, payload.into())
            .await
        {
            tracing::warn!(error = %e, room_id = %event.room_id, "could not publish a membership event");
        }
    }
}

/// The de-duplication id of one member-count change: the member record revision it follows from,
/// so a retried increment of the same change counts once.
fn change_id(kind: &str, room_id: &str, user_id: &str, revision: u64) -> String {
    format!("{kind}:{room_id}:{user_id}:{revision}")
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
    fn change_ids_name_the_revision() {
        assert_eq!(change_id("join", "r", "u", 7), "join:r:u:7");
        assert_ne!(
            change_id("join", "r", "u", 7),
            change_id("leave", "r", "u", 7)
        );
    }

    #[test]
    fn members_pages_default_to_a_thousand() {
        assert_eq!(members_limit(0).unwrap(), 1000);
        assert_eq!(members_limit(10).unwrap(), 10);
        assert!(members_limit(1001).is_err());
    }
}
