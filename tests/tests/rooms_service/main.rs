//! The rooms service against a real nats-server (the harness's [`NatsServer`]), exercised over
//! NATS like ws-agent does.
//!
//! One test target (`cargo test --test rooms_service`) split by theme; this file holds the
//! helpers.

mod access;
mod membership;
mod pages;
mod rooms;

use std::collections::BTreeSet;
use std::time::Duration;

use dyschat_protocol::wire::{
    Access, AccessRequest, CreateRoomRequest, ListRoomsRequest, MemberList, MembersRequest,
    MembershipEvent, MembershipReply, MembershipRequest, Room, RoomList, RoomRequest,
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
    nats: NatsServer,
}

impl Harness {
    /// A nats-server and `instances` rooms services sharing it (requests are spread over them).
    async fn start(instances: usize) -> Harness {
        let nats = NatsServer::start().await.expect("start nats-server");
        let shutdown = CancellationToken::new();
        let tasks = (0..instances)
            .map(|_| {
                let config = dyschat_rooms::Config::from_env(&nats_only_env(&nats)).expect("valid");
                tokio::spawn(dyschat_rooms::run(config, shutdown.clone()))
            })
            .collect();
        let client = async_nats::connect(nats.url())
            .await
            .expect("connect to test nats");
        wait_for_service(&client, subjects::rooms::SERVICE)
            .await
            .expect("the service comes up");
        Harness {
            client,
            shutdown,
            tasks,
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
        self.call(
            subjects::rooms::CREATE,
            &CreateRoomRequest {
                owner_id: owner.into(),
                owner_name: format!("name-{owner}"),
                name: name.into(),
                topic: String::new(),
            },
        )
        .await
    }

    async fn get(&self, room_id: &str) -> Result<Room, ApiError> {
        self.call(subjects::rooms::GET, &room(room_id)).await
    }

    async fn list(&self, limit: usize, cursor: Option<&str>) -> Result<RoomList, ApiError> {
        let req = ListRoomsRequest {
            limit,
            cursor: cursor.map(String::from),
        };
        self.call(subjects::rooms::LIST, &req).await
    }

    async fn join(&self, room_id: &str, user: &str) -> Result<MembershipReply, ApiError> {
        self.call(subjects::rooms::JOIN, &membership(room_id, user))
            .await
    }

    async fn leave(&self, room_id: &str, user: &str) -> Result<MembershipReply, ApiError> {
        self.call(subjects::rooms::LEAVE, &membership(room_id, user))
            .await
    }

    async fn members(&self, room_id: &str) -> Result<MemberList, ApiError> {
        self.call(subjects::rooms::MEMBERS, &room(room_id)).await
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

fn room(room_id: &str) -> RoomRequest {
    RoomRequest {
        room_id: room_id.into(),
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
