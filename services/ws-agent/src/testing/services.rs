//! Fakes of the rooms service, presence and the shared rate limits (history: [`super::history`]).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;

use dyschat_protocol::wire::{
    Access, AccessRequest, Member, MemberList, MembersRequest, MembershipReply, MembershipRequest,
    MyRoom, MyRoomList, PageRequest, PresenceEvent, Role, Room,
};
use dyschat_protocol::ApiError;
use futures::future::BoxFuture;
use futures::FutureExt;

use super::lock;
use crate::core::User;
use crate::ports::{PortResult, PresenceStore, RoomsService};

/// A fake room's members: user id -> (username, role).
type FakeMembers = HashMap<String, (String, Role)>;

/// The fake rooms service: rooms and their members, revision 0 like today's rooms service.
#[derive(Default)]
pub(crate) struct FakeRooms {
    rooms: Mutex<HashMap<String, FakeMembers>>,
    pub access_calls: AtomicUsize,
    pub revision: AtomicU64,
}

impl FakeRooms {
    pub(crate) fn create(&self, room_id: &str, owner: &User) {
        let mut members = HashMap::new();
        members.insert(owner.user_id.clone(), (owner.username.clone(), Role::Owner));
        lock(&self.rooms).insert(room_id.to_string(), members);
    }

    pub(crate) fn add(&self, room_id: &str, user: &User) {
        if let Some(members) = lock(&self.rooms).get_mut(room_id) {
            members.insert(user.user_id.clone(), (user.username.clone(), Role::Member));
        }
    }

    fn change(&self, req: MembershipRequest, joined: bool) -> Result<MembershipReply, ApiError> {
        let mut rooms = lock(&self.rooms);
        let members = rooms
            .get_mut(&req.room_id)
            .ok_or_else(|| ApiError::not_found("room not found"))?;
        let changed = if joined {
            members
                .insert(req.user_id.clone(), (req.username, Role::Member))
                .is_none()
        } else {
            members.remove(&req.user_id).is_some()
        };
        Ok(MembershipReply {
            room_id: req.room_id,
            joined,
            changed,
            revision: self.revision.load(Ordering::SeqCst),
        })
    }
}

impl RoomsService for FakeRooms {
    fn access(&self, req: AccessRequest) -> BoxFuture<'_, Result<Access, ApiError>> {
        self.access_calls.fetch_add(1, Ordering::SeqCst);
        let rooms = lock(&self.rooms);
        let result = rooms
            .get(&req.room_id)
            .map(|members| {
                let role = members.get(&req.user_id).map(|(_, role)| *role);
                Access {
                    role,
                    room_id: req.room_id.clone(),
                    user_id: req.user_id.clone(),
                    revision: self.revision.load(Ordering::SeqCst),
                    standing: dyschat_protocol::policy::Standing {
                        role,
                        ..Default::default()
                    },
                    room_revision: 0,
                }
            })
            .ok_or_else(|| ApiError::not_found("room not found"));
        futures::future::ready(result).boxed()
    }

    fn join(&self, req: MembershipRequest) -> BoxFuture<'_, Result<MembershipReply, ApiError>> {
        futures::future::ready(self.change(req, true)).boxed()
    }

    fn leave(&self, req: MembershipRequest) -> BoxFuture<'_, Result<MembershipReply, ApiError>> {
        futures::future::ready(self.change(req, false)).boxed()
    }

    fn mentions(
        &self,
        room_id: &str,
        names: Vec<String>,
    ) -> BoxFuture<'_, Result<Vec<String>, ApiError>> {
        let rooms = lock(&self.rooms);
        let result = match rooms.get(room_id) {
            None => Err(ApiError::not_found("room not found")),
            Some(members) => {
                let mut ids: Vec<String> = Vec::new();
                for name in &names {
                    let found = members
                        .iter()
                        .find(|(_, (username, _))| username.to_ascii_lowercase() == *name);
                    if let Some((id, _)) = found {
                        if !ids.contains(id) {
                            ids.push(id.clone());
                        }
                    }
                }
                Ok(ids)
            }
        };
        futures::future::ready(result).boxed()
    }

    fn my_rooms(&self, req: PageRequest) -> BoxFuture<'_, Result<MyRoomList, ApiError>> {
        let rooms = lock(&self.rooms);
        let mut mine: Vec<MyRoom> = rooms
            .iter()
            .filter_map(|(room_id, members)| {
                let (_, role) = members.get(&req.user_id)?;
                Some(MyRoom {
                    room: Room {
                        room_id: room_id.clone(),
                        name: room_id.clone(),
                        topic: String::new(),
                        owner_id: String::new(),
                        created_at: "2026-01-01T00:00:00.000Z".into(),
                        member_count: members.len() as u64,
                        visibility: Default::default(),
                        kind: Default::default(),
                    },
                    role: *role,
                    joined_at: "2026-01-01T00:00:00.000Z".into(),
                    peer: None,
                })
            })
            .collect();
        mine.sort_by(|a, b| a.room.room_id.cmp(&b.room.room_id));
        futures::future::ready(Ok(MyRoomList {
            rooms: mine,
            next_cursor: None,
        }))
        .boxed()
    }

    fn members(&self, req: MembersRequest) -> BoxFuture<'_, Result<MemberList, ApiError>> {
        let rooms = lock(&self.rooms);
        let result = rooms
            .get(&req.room_id)
            .map(|members| {
                let mut members: Vec<Member> = members
                    .iter()
                    .map(|(user_id, (username, role))| Member {
                        user_id: user_id.clone(),
                        username: username.clone(),
                        online: false,
                        role: *role,
                    })
                    .collect();
                members.sort_by(|a, b| a.user_id.cmp(&b.user_id));
                members.truncate(req.limit);
                MemberList {
                    members,
                    next_cursor: None,
                }
            })
            .ok_or_else(|| ApiError::not_found("room not found"));
        futures::future::ready(result).boxed()
    }
}

/// Presence that remembers what it was told.
#[derive(Default)]
pub(crate) struct FakePresence {
    pub local: Mutex<HashSet<String>>,
    pub announced: Mutex<Vec<PresenceEvent>>,
}

impl PresenceStore for FakePresence {
    fn set_local<'a>(&'a self, user_id: &'a str, online: bool) -> BoxFuture<'a, PortResult<()>> {
        let mut local = lock(&self.local);
        if online {
            local.insert(user_id.to_string());
        } else {
            local.remove(user_id);
        }
        futures::future::ready(Ok(())).boxed()
    }

    fn online_elsewhere<'a>(&'a self, _user_id: &'a str) -> BoxFuture<'a, PortResult<bool>> {
        futures::future::ready(Ok(false)).boxed()
    }

    fn announce<'a>(&'a self, event: &'a PresenceEvent) -> BoxFuture<'a, PortResult<()>> {
        lock(&self.announced).push(event.clone());
        futures::future::ready(Ok(())).boxed()
    }
}

/// Shared token buckets in memory, with a switch to make the store fail.
#[derive(Default)]
pub(crate) struct FakeRates {
    buckets: Mutex<HashMap<String, (f64, std::time::Instant)>>,
    calls: AtomicUsize,
    failing: std::sync::atomic::AtomicBool,
}

impl FakeRates {
    pub(crate) fn calls(&self) -> usize {
        self.calls.load(Ordering::Relaxed)
    }

    pub(crate) fn fail(&self, failing: bool) {
        self.failing.store(failing, Ordering::Relaxed);
    }
}

impl crate::ports::RateStore for FakeRates {
    fn take<'a>(
        &'a self,
        bucket: &'a str,
        per_sec: f64,
        burst: f64,
        want: u32,
    ) -> BoxFuture<'a, PortResult<crate::ports::Grant>> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        let failing = self.failing.load(Ordering::Relaxed);
        let now = std::time::Instant::now();
        let grant = {
            let mut buckets = lock(&self.buckets);
            let (tokens, at) = buckets.entry(bucket.to_string()).or_insert((burst, now));
            *tokens = (*tokens + now.duration_since(*at).as_secs_f64() * per_sec).min(burst);
            *at = now;
            let granted = (want as f64).min(tokens.floor()) as u32;
            *tokens -= f64::from(granted);
            let wait_ms = if granted == 0 {
                ((1.0 - *tokens) * 1000.0 / per_sec).ceil() as u64
            } else {
                0
            };
            crate::ports::Grant { granted, wait_ms }
        };
        async move {
            if failing {
                Err(crate::ports::PortError::Timeout)
            } else {
                Ok(grant)
            }
        }
        .boxed()
    }
}
