//! The six operations of the service, free of transport: each takes a decoded request and
//! returns a typed result; [`crate::service`] wires them to NATS endpoints.

use std::collections::HashSet;

use dyschat_protocol::wire::{
    Access, AccessRequest, CreateRoomRequest, ListRoomsRequest, MemberList, MembershipEvent,
    MembershipReply, MembershipRequest, Role, Room, RoomList, RoomRequest,
};
use dyschat_protocol::{ids, subjects, time, ApiError};
use futures::{StreamExt, TryStreamExt};

use crate::error::RoomsError;
use crate::records::{online_users, page, Change, MemberSet, RoomRecord};
use crate::store::RoomStore;

/// The most rooms one list page may ask for.
pub const MAX_PAGE: usize = 100;
/// How many rooms of a page are fetched at once.
const FETCH_CONCURRENCY: usize = 16;

/// The service state: the buckets, and a client to publish membership events with.
#[derive(Clone)]
pub struct Rooms {
    store: RoomStore,
    events: async_nats::Client,
}

impl Rooms {
    pub fn new(store: RoomStore, events: async_nats::Client) -> Self {
        Rooms { store, events }
    }

    /// Creates a room whose only member is its owner.
    pub async fn create(&self, req: CreateRoomRequest) -> Result<Room, RoomsError> {
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
        let members = MemberSet::with(&record.owner_id, &req.owner_name);
        self.store.create_room(&record, &members).await?;
        tracing::info!(room_id = %record.room_id, owner_id = %record.owner_id, "room created");
        self.publish(MembershipEvent {
            room_id: record.room_id.clone(),
            user_id: record.owner_id.clone(),
            username: req.owner_name,
            joined: true,
            revision: 0,
        })
        .await;
        Ok(record.view(members.len()))
    }

    pub async fn get(&self, req: RoomRequest) -> Result<Room, RoomsError> {
        ids::validate_id("room_id", &req.room_id)?;
        let record = self.existing(&req.room_id).await?;
        let count = self.store.members(&req.room_id).await?.len();
        Ok(record.view(count))
    }

    /// One page of all rooms in creation order (room ids are ULIDs).
    pub async fn list(&self, req: ListRoomsRequest) -> Result<RoomList, RoomsError> {
        if !(1..=MAX_PAGE).contains(&req.limit) {
            return Err(ApiError::bad_request("limit must be 1 to 100").into());
        }
        if let Some(cursor) = &req.cursor {
            ids::validate_id("cursor", cursor)?;
        }
        let ids = self.store.room_ids().await?;
        let (ids, next_cursor) = page(ids, req.cursor.as_deref(), req.limit);
        let rooms: Vec<Option<Room>> = futures::stream::iter(ids)
            .map(|room_id| async move {
                let Some(record) = self.store.room(&room_id).await? else {
                    return Ok(None);
                };
                let count = self.store.members(&room_id).await?.len();
                Ok::<_, RoomsError>(Some(record.view(count)))
            })
            .buffered(FETCH_CONCURRENCY)
            .try_collect()
            .await?;
        Ok(RoomList {
            rooms: rooms.into_iter().flatten().collect(),
            next_cursor,
        })
    }

    /// Makes the user a member; joining a room one is already in changes nothing.
    pub async fn join(&self, req: MembershipRequest) -> Result<MembershipReply, RoomsError> {
        ids::validate_username(&req.username)?;
        let change = Change::Join {
            user_id: req.user_id.clone(),
            username: req.username.clone(),
        };
        self.change(req, change).await
    }

    /// Removes the user from the room; leaving a room one is not in changes nothing.
    pub async fn leave(&self, req: MembershipRequest) -> Result<MembershipReply, RoomsError> {
        let change = Change::Leave {
            user_id: req.user_id.clone(),
        };
        self.change(req, change).await
    }

    /// The members with whether each is online. Only members may see this; ws-agent checks that.
    pub async fn members(&self, req: RoomRequest) -> Result<MemberList, RoomsError> {
        ids::validate_id("room_id", &req.room_id)?;
        self.existing(&req.room_id).await?;
        let set = self.store.members(&req.room_id).await?;
        let online: HashSet<String> = if set.is_empty() {
            HashSet::new()
        } else {
            online_users(self.store.presence_keys().await?)
        };
        Ok(MemberList {
            members: set.members(&online),
            next_cursor: None,
        })
    }

    /// Whether the user is a member, and as what (a stop-gap over the whole member set until
    /// members are stored one record each).
    pub async fn access(&self, req: AccessRequest) -> Result<Access, RoomsError> {
        ids::validate_id("room_id", &req.room_id)?;
        ids::validate_id("user_id", &req.user_id)?;
        let record = self.existing(&req.room_id).await?;
        let set = self.store.members(&req.room_id).await?;
        let role = set.contains(&req.user_id).then(|| {
            if record.owner_id == req.user_id {
                Role::Owner
            } else {
                Role::Member
            }
        });
        Ok(Access {
            room_id: req.room_id,
            user_id: req.user_id,
            role,
            revision: 0,
        })
    }

    async fn change(
        &self,
        req: MembershipRequest,
        change: Change,
    ) -> Result<MembershipReply, RoomsError> {
        ids::validate_id("room_id", &req.room_id)?;
        ids::validate_id("user_id", &req.user_id)?;
        self.existing(&req.room_id).await?;
        let changed = self.store.change_members(&req.room_id, &change).await?;
        let joined = change.joined();
        if changed {
            tracing::debug!(room_id = %req.room_id, user_id = %req.user_id, joined, "membership changed");
            self.publish(MembershipEvent {
                room_id: req.room_id.clone(),
                user_id: req.user_id,
                username: req.username,
                joined,
                revision: 0,
            })
            .await;
        }
        Ok(MembershipReply {
            room_id: req.room_id,
            joined,
            changed,
            revision: 0,
        })
    }

    async fn existing(&self, room_id: &str) -> Result<RoomRecord, RoomsError> {
        self.store.room(room_id).await?.ok_or(RoomsError::NotFound)
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
