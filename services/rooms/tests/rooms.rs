//! The rooms service against a real nats-server, exercised over NATS like ws-agent does.

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use dyschat_shared::wire::{
    CreateRoomRequest, ListRoomsRequest, MemberList, MembershipEvent, MembershipReply,
    MembershipRequest, Room, RoomList, RoomRequest,
};
use dyschat_shared::{rpc, subjects, topology, ApiError, ErrorCode};
use futures::StreamExt;
use serde::{de::DeserializeOwned, Serialize};
use support::{wait_for_service, NatsServer};
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
        let nats = NatsServer::start();
        let shutdown = CancellationToken::new();
        let tasks = (0..instances)
            .map(|_| tokio::spawn(dyschat_rooms::run(nats.config(), shutdown.clone())))
            .collect();
        let client = nats.client().await;
        wait_for_service(&client, subjects::rooms::SERVICE).await;
        Harness {
            client,
            shutdown,
            tasks,
            nats,
        }
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_get_and_list_in_pages() {
    let h = Harness::start(1).await;
    let mut events = h
        .client
        .subscribe(subjects::MEMBERSHIP_WILDCARD)
        .await
        .unwrap();
    h.client.flush().await.unwrap();

    let first = h.create("owner1", "General").await.unwrap();
    assert_eq!(first.name, "General");
    assert_eq!(first.topic, "");
    assert_eq!(first.owner_id, "owner1");
    assert_eq!(first.member_count, 1);
    assert_eq!(first.created_at.len(), "2026-11-23T00:43:41.165Z".len());
    assert_eq!(h.get(&first.room_id).await.unwrap(), first);
    assert_eq!(
        next_event(&mut events).await,
        MembershipEvent {
            room_id: first.room_id.clone(),
            user_id: "owner1".into(),
            username: "name-owner1".into(),
            joined: true,
        }
    );

    let with_topic: Room = h
        .call(
            subjects::rooms::CREATE,
            &CreateRoomRequest {
                owner_id: "owner2".into(),
                owner_name: "Owner2".into(),
                name: "Random".into(),
                topic: "anything goes".into(),
            },
        )
        .await
        .unwrap();
    assert_eq!(with_topic.topic, "anything goes");

    let mut created = vec![first.room_id, with_topic.room_id];
    for i in 0..5 {
        created.push(
            h.create("owner1", &format!("room {i}"))
                .await
                .unwrap()
                .room_id,
        );
    }

    // Pages of 3 walk all 7 rooms in creation order, each once.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let page = h.list(3, cursor.as_deref()).await.unwrap();
        pages += 1;
        assert!(page.rooms.len() <= 3);
        assert!(page.rooms.iter().all(|r| r.member_count == 1));
        seen.extend(page.rooms.into_iter().map(|r| r.room_id));
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, created);

    let all = h.list(100, None).await.unwrap();
    assert_eq!(all.rooms.len(), 7);
    assert_eq!(all.next_cursor, None);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_and_unknown_rooms() {
    let h = Harness::start(1).await;
    let room_id = h.create("owner", "General").await.unwrap().room_id;

    assert_eq!(code(h.list(0, None).await), ErrorCode::BadRequest);
    assert_eq!(code(h.list(101, None).await), ErrorCode::BadRequest);
    assert_eq!(code(h.list(10, Some("a.b")).await), ErrorCode::BadRequest);
    assert_eq!(code(h.create("owner", "").await), ErrorCode::BadRequest);
    assert_eq!(code(h.create("owner", "   ").await), ErrorCode::BadRequest);
    assert_eq!(
        code(h.create("owner", &"n".repeat(101)).await),
        ErrorCode::BadRequest
    );
    assert_eq!(
        code(h.create("bad id", "Room").await),
        ErrorCode::BadRequest
    );
    let long_topic: Result<Room, _> = h
        .call(
            subjects::rooms::CREATE,
            &CreateRoomRequest {
                owner_id: "owner".into(),
                owner_name: "Owner".into(),
                name: "Room".into(),
                topic: "t".repeat(501),
            },
        )
        .await;
    assert_eq!(code(long_topic), ErrorCode::BadRequest);
    assert_eq!(code(h.get("a.b").await), ErrorCode::BadRequest);
    assert_eq!(code(h.get("*").await), ErrorCode::BadRequest);
    assert_eq!(
        code(h.join(&room_id, "bad.user").await),
        ErrorCode::BadRequest
    );
    assert_eq!(code(h.join("a>b", "user").await), ErrorCode::BadRequest);

    let missing = dyschat_shared::ids::new_id();
    let err = h.get(&missing).await.unwrap_err();
    assert_eq!(
        (err.code, err.message.as_str()),
        (ErrorCode::NotFound, "room not found")
    );
    assert_eq!(code(h.join(&missing, "user").await), ErrorCode::NotFound);
    assert_eq!(code(h.leave(&missing, "user").await), ErrorCode::NotFound);
    assert_eq!(code(h.members(&missing).await), ErrorCode::NotFound);
    // A body that is not a request at all.
    let raw = h
        .client
        .request(subjects::rooms::subject(subjects::rooms::GET), "[]".into())
        .await
        .unwrap();
    let raw: dyschat_shared::wire::Reply<Room> = serde_json::from_slice(&raw.payload).unwrap();
    assert_eq!(code(Result::from(raw)), ErrorCode::BadRequest);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn join_and_leave_are_idempotent_and_announced() {
    let h = Harness::start(1).await;
    let room_id = h.create("owner", "General").await.unwrap().room_id;
    let mut events = h
        .client
        .subscribe(subjects::membership(&room_id))
        .await
        .unwrap();
    h.client.flush().await.unwrap();

    let reply = h.join(&room_id, "u2").await.unwrap();
    assert_eq!(
        (reply.room_id.as_str(), reply.joined, reply.changed),
        (room_id.as_str(), true, true)
    );
    let reply = h.join(&room_id, "u2").await.unwrap();
    assert_eq!((reply.joined, reply.changed), (true, false));
    assert_eq!(h.get(&room_id).await.unwrap().member_count, 2);

    let reply = h.leave(&room_id, "u2").await.unwrap();
    assert_eq!((reply.joined, reply.changed), (false, true));
    let reply = h.leave(&room_id, "u2").await.unwrap();
    assert_eq!((reply.joined, reply.changed), (false, false));
    let reply = h.leave(&room_id, "never-joined").await.unwrap();
    assert_eq!((reply.joined, reply.changed), (false, false));
    assert_eq!(h.get(&room_id).await.unwrap().member_count, 1);

    // Exactly one event per actual change.
    let joined = next_event(&mut events).await;
    assert_eq!((joined.user_id.as_str(), joined.joined), ("u2", true));
    assert_eq!(joined.username, "name-u2");
    let left = next_event(&mut events).await;
    assert_eq!((left.user_id.as_str(), left.joined), ("u2", false));
    let extra = tokio::time::timeout(Duration::from_millis(300), events.next()).await;
    assert!(extra.is_err(), "unexpected event: {extra:?}");

    // The owner may leave too; the room stays.
    assert!(h.leave(&room_id, "owner").await.unwrap().changed);
    assert_eq!(h.get(&room_id).await.unwrap().member_count, 0);
    assert!(h.members(&room_id).await.unwrap().members.is_empty());
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_show_who_is_online() {
    let h = Harness::start(1).await;
    let room_id = h.create("alice", "General").await.unwrap().room_id;
    h.join(&room_id, "bob").await.unwrap();
    h.join(&room_id, "carol").await.unwrap();

    // What a ws-agent does when a socket opens: one key per user and agent.
    let js = async_nats::jetstream::new(h.client.clone());
    let presence = topology::ensure_bucket(&js, topology::presence_bucket(&h.nats.config()))
        .await
        .unwrap();
    presence.put("alice.agent1", "".into()).await.unwrap();
    presence.put("carol.agent2", "".into()).await.unwrap();
    presence.put("carol.agent3", "".into()).await.unwrap();
    presence.put("dave.agent1", "".into()).await.unwrap();

    let list = h.members(&room_id).await.unwrap();
    let view: Vec<(&str, &str, bool)> = list
        .members
        .iter()
        .map(|m| (m.user_id.as_str(), m.username.as_str(), m.online))
        .collect();
    assert_eq!(
        view,
        [
            ("alice", "name-alice", true),
            ("bob", "name-bob", false),
            ("carol", "name-carol", true)
        ]
    );

    // The last socket of carol closes.
    presence.delete("carol.agent2").await.unwrap();
    presence.purge("carol.agent3").await.unwrap();
    let list = h.members(&room_id).await.unwrap();
    assert!(!list
        .members
        .iter()
        .any(|m| m.user_id == "carol" && m.online));
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thirty_concurrent_joins_all_count() {
    let h = Harness::start(1).await;
    let room_id = h.create("owner", "Busy").await.unwrap().room_id;
    let users: Vec<String> = (0..30).map(|i| format!("user{i}")).collect();
    let joins = users.iter().map(|user| h.join(&room_id, user));
    for reply in futures::future::join_all(joins).await {
        let reply = reply.unwrap();
        assert!(reply.joined && reply.changed);
    }
    assert_eq!(h.get(&room_id).await.unwrap().member_count, 31);
    assert_eq!(h.member_ids(&room_id).await.len(), 31);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_joins_and_leaves_across_instances_lose_nothing() {
    // Two service instances, so the races are between processes' worth of writers too.
    let h = Harness::start(2).await;
    let room_id = h.create("owner", "Churn").await.unwrap().room_id;
    for i in 0..20 {
        h.join(&room_id, &format!("old{i}")).await.unwrap();
    }

    // All at once: every old member leaves, 20 new ones join, and 10 more join, leave and
    // join again (each of their own steps in order).
    let mut ops = Vec::new();
    for i in 0..20 {
        let (room_id, old, new) = (room_id.clone(), format!("old{i}"), format!("new{i}"));
        let h = &h;
        ops.push(futures::future::Either::Left(async move {
            let (left, joined) = tokio::join!(h.leave(&room_id, &old), h.join(&room_id, &new));
            assert!(left.unwrap().changed);
            assert!(joined.unwrap().changed);
        }));
    }
    for i in 0..10 {
        let (room_id, user) = (room_id.clone(), format!("flip{i}"));
        let h = &h;
        ops.push(futures::future::Either::Right(async move {
            assert!(h.join(&room_id, &user).await.unwrap().changed);
            assert!(h.leave(&room_id, &user).await.unwrap().changed);
            assert!(h.join(&room_id, &user).await.unwrap().changed);
        }));
    }
    futures::future::join_all(ops).await;

    let expected: BTreeSet<String> = std::iter::once("owner".to_string())
        .chain((0..20).map(|i| format!("new{i}")))
        .chain((0..10).map(|i| format!("flip{i}")))
        .collect();
    assert_eq!(h.member_ids(&room_id).await, expected);
    assert_eq!(h.get(&room_id).await.unwrap().member_count, 31);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_service_is_discoverable() {
    let h = Harness::start(1).await;
    let info = h
        .client
        .request(format!("$SRV.INFO.{}", subjects::rooms::SERVICE), "".into())
        .await
        .unwrap();
    let info: serde_json::Value = serde_json::from_slice(&info.payload).unwrap();
    let seen: BTreeSet<&str> = info["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["subject"].as_str())
        .collect();
    let expected: BTreeSet<String> = [
        subjects::rooms::CREATE,
        subjects::rooms::GET,
        subjects::rooms::LIST,
        subjects::rooms::JOIN,
        subjects::rooms::LEAVE,
        subjects::rooms::MEMBERS,
    ]
    .into_iter()
    .map(subjects::rooms::subject)
    .collect();
    assert_eq!(seen, expected.iter().map(String::as_str).collect());
    h.stop().await;
}
