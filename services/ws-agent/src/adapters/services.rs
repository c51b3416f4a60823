//! Requests to auth and rooms, and [`RoomsService`] over them.
//!
//! Every request takes one of the agent's bounded request slots first, so a flood of clients
//! queues here instead of piling onto NATS; a request that waits too long for a slot is shed as
//! `unavailable` (counted in `dyschat_requests_shed_total`).

use std::time::Duration;

use dyschat_protocol::subjects;
use dyschat_protocol::wire::{
    Access, AccessRequest, MemberList, MembersRequest, MembershipReply, MembershipRequest,
    MentionsReply, MentionsRequest, MyRoomList, PageRequest, SearchReply, SearchRequest,
};
use dyschat_protocol::ApiError;
use dyschat_runtime::{metric, rpc};
use futures::future::BoxFuture;
use futures::FutureExt;
use serde::{de::DeserializeOwned, Serialize};
use tokio::sync::{Semaphore, SemaphorePermit};

use crate::ports::{RoomsService, SearchService};

pub(crate) struct Services {
    client: async_nats::Client,
    slots: Semaphore,
    timeout: Duration,
}

impl Services {
    pub(crate) fn new(client: async_nats::Client, max_inflight: usize, timeout: Duration) -> Self {
        Services {
            client,
            slots: Semaphore::new(max_inflight),
            timeout,
        }
    }

    /// A request slot, waiting at most the request timeout for one to free up.
    async fn slot(&self) -> Result<SemaphorePermit<'_>, ApiError> {
        request_slot(&self.slots, self.timeout).await
    }

    /// A request to `subject` (an auth subject, or [`subjects::rooms::subject`] of an endpoint).
    pub(crate) async fn request<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        subject: String,
        body: &Req,
    ) -> Result<Resp, ApiError> {
        let _slot = self.slot().await?;
        rpc::request(&self.client, subject, body, self.timeout).await
    }

    pub(crate) async fn rooms<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        endpoint: &str,
        body: &Req,
    ) -> Result<Resp, ApiError> {
        self.request(subjects::rooms::subject(endpoint), body).await
    }
}

/// A permit of `slots`, or `unavailable` after `wait`.
async fn request_slot(slots: &Semaphore, wait: Duration) -> Result<SemaphorePermit<'_>, ApiError> {
    match tokio::time::timeout(wait, slots.acquire()).await {
        Ok(Ok(permit)) => Ok(permit),
        Ok(Err(_)) | Err(_) => {
            metrics::counter!(metric::REQUESTS_SHED_TOTAL).increment(1);
            Err(ApiError::unavailable(
                "the agent is overloaded, try again shortly",
            ))
        }
    }
}

impl RoomsService for Services {
    fn access(&self, req: AccessRequest) -> BoxFuture<'_, Result<Access, ApiError>> {
        async move { self.rooms(subjects::rooms::ACCESS, &req).await }.boxed()
    }

    fn join(&self, req: MembershipRequest) -> BoxFuture<'_, Result<MembershipReply, ApiError>> {
        async move { self.rooms(subjects::rooms::JOIN, &req).await }.boxed()
    }

    fn leave(&self, req: MembershipRequest) -> BoxFuture<'_, Result<MembershipReply, ApiError>> {
        async move { self.rooms(subjects::rooms::LEAVE, &req).await }.boxed()
    }

    fn members(&self, req: MembersRequest) -> BoxFuture<'_, Result<MemberList, ApiError>> {
        async move { self.rooms(subjects::rooms::MEMBERS, &req).await }.boxed()
    }

    fn my_rooms(&self, req: PageRequest) -> BoxFuture<'_, Result<MyRoomList, ApiError>> {
        async move { self.rooms(subjects::rooms::MY_ROOMS, &req).await }.boxed()
    }

    fn mentions(
        &self,
        room_id: &str,
        names: Vec<String>,
    ) -> BoxFuture<'_, Result<Vec<String>, ApiError>> {
        let req = MentionsRequest {
            room_id: room_id.to_string(),
            names,
        };
        async move {
            let reply: MentionsReply = self.rooms(subjects::rooms::MENTIONS, &req).await?;
            Ok(reply.user_ids)
        }
        .boxed()
    }
}

impl SearchService for Services {
    fn search(&self, req: SearchRequest) -> BoxFuture<'_, Result<SearchReply, ApiError>> {
        async move {
            self.request(subjects::search::MESSAGES_SUBJECT.to_string(), &req)
                .await
        }
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dyschat_protocol::ErrorCode;

    #[tokio::test]
    async fn requests_wait_for_a_slot_then_give_up_as_unavailable() {
        let slots = Semaphore::new(1);
        let held = request_slot(&slots, Duration::from_millis(10))
            .await
            .unwrap();
        let Err(e) = request_slot(&slots, Duration::from_millis(20)).await else {
            panic!("a slot was given while the only one is held");
        };
        assert_eq!(e.code, ErrorCode::Unavailable);
        drop(held);
        assert!(request_slot(&slots, Duration::from_millis(10))
            .await
            .is_ok());
    }
}
