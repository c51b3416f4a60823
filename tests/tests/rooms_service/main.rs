//! The rooms service against a real nats-server (the harness's [`NatsServer`]), exercised over
//! NATS like ws-agent does.
//!
//! One test target (`cargo test --test rooms_service`) split by theme; this file holds the
//! helpers. The auth service runs next to rooms: rooms asks it whether a user exists.

mod access;
mod direct;
mod eviction;
mod lifecycle;
mod listing;
mod matrix;
mod membership;
mod mentions;
mod moderation;
mod ops;
mod pages;
mod quotas;
mod rooms;

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;
use std::time::Duration;

use dyschat_protocol::policy::Visibility;
use dyschat_protocol::wire::{
    Access, AccessRequest, CreateRoomRequest, Credentials, ListRoomsRequest, MemberList,
    MembersRequest, MembershipEvent, MembershipReply, MembershipRequest, Room, RoomEvent, RoomList,
    RoomRequest, UserView,
};
use dyschat_protocol::{subjects, ApiError, ErrorCode};
use dyschat_runtime::{rpc, topology};
use dyschat_tests::{nats_only_env, service_endpoints, wait_for_service, NatsServer};
use futures::StreamExt;
use serde::{de::DeserializeOwned, Serialize};
use tokio_util::sync::CancellationToken;

const TIMEOUT: Duration = Duration::from_secs(30);

struct Harness {
    client: async_nats::Client,
    shutdown: CancellationToken,
    tasks: Vec<tokio::task::JoinHandle<Result<(), dyschat_rooms::Error>>>,
    auth: tokio::task::JoinHandle<Result<(), dyschat_auth::Error>>,
    /// The owner of each room this harness created: who reads its members by default.
    owners: Mutex<HashMap<String, String>>,
    nats: NatsServer,
}

/// Who asks when a test does not say: someone with no standing anywhere.
const OBSERVER: &str = "observer";

impl Harness {
    /// A nats-server, `instances` rooms services sharing it (requests are spread over them) and
    /// an auth service.
    async fn start(instances: usize) -> Harness {
        Harness::start_with(instances, &[]).await
    }

    /// [`Harness::start`] with extra `DYSCHAT_*` variables for the rooms services.
    async fn start_with(instances: usize, vars: &[(&str, &str)]) -> Harness {
        let nats = NatsServer::start().await.expect("start nats-server");
        let shutdown = CancellationToken::new();
        let mut env = nats_only_env(&nats);
        for (k, v) in vars {
            env = env.with(k, *v);
        }
        let tasks = (0..instances)
            .map(|_| {
                let config = dyschat_rooms::Config::from_env(&env).expect("valid");
                tokio::spawn(dyschat_rooms::run(config, shutdown.clone()))
            })
            .collect();
        let auth_config = dyschat_auth::Config::from_env(&nats_only_env(&nats)).expect("valid");
        let auth = tokio::spawn(dyschat_auth::run(auth_config, shutdown.clone()));
        let client = async_nats::connect(nats.url())
            .await
            .expect("connect to test nats");
        for service in [subjects::rooms::SERVICE, subjects::auth::SERVICE] {
            wait_for_service(&client, service)
                .await
                .expect("the service comes up");
        }
        Harness {
            client,
            shutdown,
            tasks,
            auth,
            owners: Mutex::new(HashMap::new()),
            nats,
        }
    }

    /// Every membership event from now on: subscribed and flushed, so none published after this
    /// returns is missed.
    async fn membership_events(&self) -> async_nats::Subscriber {
        let events = self
            .client
            .subscribe(subjects::MEMBERSHIP_WILDCARD)
            .await
            .unwrap();
        self.client.flush().await.unwrap();
        events
    }

    /// Registers `username` with auth: a user rooms can look up.
    async fn register(&self, username: &str) -> UserView {
        rpc::request(
            &self.client,
            subjects::auth::REGISTER_SUBJECT.to_string(),
            &Credentials {
                username: username.into(),
                password: "password-1".into(),
            },
            TIMEOUT,
        )
        .await
        .expect("register")
    }

    /// A registered user's id, by username.
    async fn user(&self, username: &str) -> String {
        self.register(username).await.user_id
    }

    async fn call<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        endpoint: &str,
        body: &Req,
    ) -> Result<Resp, ApiError> {
        rpc::request(
            &self.client,
            subjects::rooms::subject(endpoint),
            body,
            TIMEOUT,
        )
        .await
    }

    async fn create(&self, owner: &str, name: &str) -> Result<Room, ApiError> {
        self.create_with(owner, name, Visibility::Public).await
    }

    async fn create_private(&self, owner: &str, name: &str) -> Room {
        self.create_with(owner, name, Visibility::Private)
            .await
            .expect("create a private room")
    }

    async fn create_with(
        &self,
        owner: &str,
        name: &str,
        visibility: Visibility,
    ) -> Result<Room, ApiError> {
        let room: Room = self
            .call(
                subjects::rooms::CREATE,
                &CreateRoomRequest {
                    owner_id: owner.into(),
                    owner_name: format!("name-{owner}"),
                    name: name.into(),
                    topic: String::new(),
                    visibility,
                },
            )
            .await?;
        self.owners
            .lock()
            .unwrap()
            .insert(room.room_id.clone(), owner.to_string());
        Ok(room)
    }

    /// The room as someone with no standing in it sees it.
    async fn get(&self, room_id: &str) -> Result<Room, ApiError> {
        self.get_as(room_id, OBSERVER).await
    }

    async fn get_as(&self, room_id: &str, user: &str) -> Result<Room, ApiError> {
        self.call(subjects::rooms::GET, &room_as(room_id, user))
            .await
    }

    async fn list(&self, limit: usize, cursor: Option<&str>) -> Result<RoomList, ApiError> {
        self.list_as(OBSERVER, limit, cursor, None).await
    }

    async fn list_as(
        &self,
        user: &str,
        limit: usize,
        cursor: Option<&str>,
        q: Option<&str>,
    ) -> Result<RoomList, ApiError> {
        let req = ListRoomsRequest {
            limit,
            cursor: cursor.map(String::from),
            q: q.map(String::from),
            user_id: user.into(),
        };
        self.call(subjects::rooms::LIST, &req).await
    }

    /// Who reads a room's members when a test does not say: its creator.
    fn reader(&self, room_id: &str) -> String {
        self.owners
            .lock()
            .unwrap()
            .get(room_id)
            .cloned()
            .unwrap_or_else(|| OBSERVER.to_string())
    }

    async fn join(&self, room_id: &str, user: &str) -> Result<MembershipReply, ApiError> {
        self.call(subjects::rooms::JOIN, &membership(room_id, user))
            .await
    }

    async fn leave(&self, room_id: &str, user: &str) -> Result<MembershipReply, ApiError> {
        self.call(subjects::rooms::LEAVE, &membership(room_id, user))
            .await
    }

    /// The first page of members, asked for with only `{room_id, user_id}`.
    async fn members(&self, room_id: &str) -> Result<MemberList, ApiError> {
        let reader = self.reader(room_id);
        self.call(subjects::rooms::MEMBERS, &room_as(room_id, &reader))
            .await
    }

    /// One page of members, asked for the way a paging client does.
    async fn members_page(
        &self,
        room_id: &str,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<MemberList, ApiError> {
        let req = MembersRequest {
            room_id: room_id.into(),
            limit,
            cursor: cursor.map(String::from),
            user_id: self.reader(room_id),
        };
        self.call(subjects::rooms::MEMBERS, &req).await
    }

    async fn access(&self, room_id: &str, user: &str) -> Result<Access, ApiError> {
        let req = AccessRequest {
            room_id: room_id.into(),
            user_id: user.into(),
        };
        self.call(subjects::rooms::ACCESS, &req).await
    }

    /// `count` users `<prefix><i>` join `room_id`, 32 requests at a time.
    async fn join_many(&self, room_id: &str, prefix: &str, count: usize) {
        let users: Vec<String> = (0..count).map(|i| format!("{prefix}{i}")).collect();
        let joined: Vec<_> = futures::stream::iter(users.iter())
            .map(|user| self.join(room_id, user))
            .buffer_unordered(32)
            .collect()
            .await;
        for reply in joined {
            assert!(reply.unwrap().changed);
        }
    }

    async fn member_ids(&self, room_id: &str) -> BTreeSet<String> {
        let list = self.members(room_id).await.unwrap();
        list.members.into_iter().map(|m| m.user_id).collect()
    }

    async fn stop(self) {
        self.shutdown.cancel();
        let auth = tokio::time::timeout(Duration::from_secs(10), self.auth)
            .await
            .expect("auth returns after shutdown")
            .expect("auth did not panic");
        assert!(auth.is_ok(), "{auth:?}");
        for task in self.tasks {
            let result = tokio::time::timeout(Duration::from_secs(10), task)
                .await
                .expect("run returns after shutdown")
                .expect("run did not panic");
            assert!(result.is_ok(), "{result:?}");
        }
        drop(self.nats);
    }
}

fn room_as(room_id: &str, user: &str) -> RoomRequest {
    RoomRequest {
        room_id: room_id.into(),
        user_id: user.into(),
    }
}

fn membership(room_id: &str, user: &str) -> MembershipRequest {
    MembershipRequest {
        room_id: room_id.into(),
        user_id: user.into(),
        username: format!("name-{user}"),
    }
}

fn code<T: std::fmt::Debug>(r: Result<T, ApiError>) -> ErrorCode {
    r.expect_err("expected an error").code
}

async fn next_event(events: &mut async_nats::Subscriber) -> MembershipEvent {
    let message = tokio::time::timeout(Duration::from_secs(5), events.next())
        .await
        .expect("an event in time")
        .expect("subscription open");
    serde_json::from_slice(&message.payload).expect("a MembershipEvent")
}

/// The room events of `room_id` from now on.
async fn room_events(h: &Harness, room_id: &str) -> async_nats::Subscriber {
    let events = h
        .client
        .subscribe(subjects::room_events(room_id))
        .await
        .unwrap();
    h.client.flush().await.unwrap();
    events
}

async fn next_room_event(events: &mut async_nats::Subscriber) -> RoomEvent {
    let message = tokio::time::timeout(Duration::from_secs(5), events.next())
        .await
        .expect("an event in time")
        .expect("subscription open");
    serde_json::from_slice(&message.payload).expect("a RoomEvent")
}
