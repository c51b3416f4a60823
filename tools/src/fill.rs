//! Rooms set up through the rooms service itself (NATS requests, no agent involved): create a
//! room, fill it with members many joins at a time, check its count. Shared by the scenarios
//! that need a big room quickly (`members`, `reactions`), so both fill rooms the same way.

use std::time::Duration;

use anyhow::{ensure, Context};
use dyschat_protocol::subjects::rooms as api;
use dyschat_protocol::wire::{
    Access, AccessRequest, CreateRoomRequest, MembershipReply, MembershipRequest, Room, RoomRequest,
};
use futures::StreamExt;
use serde::Serialize;

/// Joins in flight while filling a room.
pub const FILL_CONCURRENCY: usize = 256;
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// The user id of member `i` of the room marked `r` (member 0 is the owner's slot).
pub fn member_id(tag: &str, room: char, i: usize) -> String {
    format!("{tag}{room}{i}")
}

/// A client of the rooms service over NATS.
pub struct Rooms {
    nats: async_nats::Client,
}

impl Rooms {
    pub async fn connect(nats_url: &str) -> anyhow::Result<Rooms> {
        Ok(Rooms {
            nats: async_nats::connect(nats_url).await?,
        })
    }

    pub async fn call<Req: Serialize, Resp: serde::de::DeserializeOwned>(
        &self,
        endpoint: &str,
        body: &Req,
    ) -> anyhow::Result<Resp> {
        dyschat_runtime::rpc::request(&self.nats, api::subject(endpoint), body, REQUEST_TIMEOUT)
            .await
            .map_err(|e| anyhow::anyhow!("{endpoint}: {e}"))
    }

    /// A public room owned by `owner`; answers its id.
    pub async fn create(&self, owner: &str, name: &str) -> anyhow::Result<String> {
        let room: Room = self
            .call(
                api::CREATE,
                &CreateRoomRequest {
                    owner_id: owner.into(),
                    owner_name: owner.into(),
                    name: name.into(),
                    topic: String::new(),
                    visibility: Default::default(),
                },
            )
            .await?;
        Ok(room.room_id)
    }

    /// Joins or leaves (`endpoint`) `user` (its id is its name); answers whether it changed.
    pub async fn membership(&self, endpoint: &str, room: &str, user: &str) -> anyhow::Result<bool> {
        let req = MembershipRequest {
            room_id: room.into(),
            user_id: user.into(),
            username: user.into(),
        };
        let reply: MembershipReply = self.call(endpoint, &req).await?;
        Ok(reply.changed)
    }

    pub async fn count(&self, room: &str) -> anyhow::Result<u64> {
        let room: Room = self
            .call(
                api::GET,
                &RoomRequest {
                    room_id: room.into(),
                    // The rooms are public: anyone may read their count.
                    user_id: "bench-observer".into(),
                },
            )
            .await?;
        Ok(room.member_count)
    }

    pub async fn access(&self, room: &str, user: &str) -> anyhow::Result<Access> {
        let req = AccessRequest {
            room_id: room.into(),
            user_id: user.into(),
        };
        self.call(api::ACCESS, &req).await
    }

    /// Joins members 1..n of a room ([`member_id`]; the owner is member 0), many at once.
    pub async fn fill(
        &self,
        room: &str,
        tag: &str,
        r: char,
        n: usize,
        say: &mut dyn FnMut(&str),
    ) -> anyhow::Result<()> {
        let mut joined = futures::stream::iter(1..n)
            .map(|i| async move {
                self.membership(api::JOIN, room, &member_id(tag, r, i))
                    .await
            })
            .buffer_unordered(FILL_CONCURRENCY);
        let (mut done, step) = (0usize, (n / 10).max(1));
        while let Some(result) = joined.next().await {
            ensure!(result.context("filling")?, "a fill join changed nothing");
            done += 1;
            if n > 10_000 && done % step == 0 {
                say(&format!("  {done} of {} joined", n - 1));
            }
        }
        Ok(())
    }

    /// Fails unless the room counts exactly `expected` members.
    pub async fn ensure_count(&self, room: &str, expected: usize) -> anyhow::Result<()> {
        let count = self.count(room).await?;
        ensure!(
            count == expected as u64,
            "member count of {room} is {count}, expected {expected}"
        );
        Ok(())
    }
}
