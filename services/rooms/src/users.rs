//! Who a user is, asked of the auth service (which owns the users): an invitation, a ban of
//! someone who is not a member, a direct room and a block name a user by id, and that user must
//! exist.

use std::time::Duration;

use dyschat_protocol::subjects::auth;
use dyschat_protocol::wire::{UserList, UserRequest, UserView, UsersByNameRequest};
use dyschat_protocol::{ApiError, ErrorCode};
use dyschat_runtime::rpc;

use crate::error::RoomsError;

/// How long a lookup may take.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Clone)]
pub(crate) struct Users {
    client: async_nats::Client,
}

impl Users {
    pub fn new(client: async_nats::Client) -> Self {
        Users { client }
    }

    /// The user `user_id` (validated by the caller); [`RoomsError::UserNotFound`] for an
    /// unknown one.
    pub async fn lookup(&self, user_id: &str) -> Result<UserView, RoomsError> {
        let request = UserRequest {
            user_id: user_id.to_string(),
        };
        let answer: Result<UserView, ApiError> = rpc::request(
            &self.client,
            auth::USER_SUBJECT.to_string(),
            &request,
            LOOKUP_TIMEOUT,
        )
        .await;
        match answer {
            Ok(user) => Ok(user),
            Err(e) if e.code == ErrorCode::NotFound => Err(RoomsError::UserNotFound),
            Err(e) => Err(RoomsError::Users(e)),
        }
    }

    /// The users with exactly these (lower-cased) usernames, in the order of `names`.
    pub async fn by_names(&self, names: &[String]) -> Result<Vec<UserView>, RoomsError> {
        let request = UsersByNameRequest {
            names: names.to_vec(),
        };
        let answer: Result<UserList, ApiError> = rpc::request(
            &self.client,
            auth::USERS_BY_NAME_SUBJECT.to_string(),
            &request,
            LOOKUP_TIMEOUT,
        )
        .await;
        answer.map(|list| list.users).map_err(RoomsError::Users)
    }
}
