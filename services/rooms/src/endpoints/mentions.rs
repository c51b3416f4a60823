//! `mentions`: which of the names a message body mentions are members of the room, so that a
//! send (ws-agent) stores the mentioned members' ids with the message. The names are resolved by
//! auth in one request (its username index), the member records read in one batch: the cost is
//! the number of names (at most [`MAX_CANDIDATES`]), never the size of the room.
//!
//! The caller is the agent's send path, which has decided the sender may post; the answer says
//! no more than a members page would tell that sender.

use dyschat_protocol::ids;
use dyschat_protocol::mentions::MAX_CANDIDATES;
use dyschat_protocol::wire::{MentionsReply, MentionsRequest};
use dyschat_protocol::ApiError;

use super::Rooms;
use crate::error::RoomsError;

impl Rooms {
    pub async fn mentions(self, req: MentionsRequest) -> Result<MentionsReply, RoomsError> {
        ids::validate_id("room_id", &req.room_id)?;
        if req.names.len() > MAX_CANDIDATES {
            return Err(ApiError::bad_request("at most 100 names").into());
        }
        if req.names.is_empty() {
            return Ok(MentionsReply {
                user_ids: Vec::new(),
            });
        }
        self.existing(&req.room_id).await?;
        let users = self.users.by_names(&req.names).await?;
        let ids: Vec<String> = users.into_iter().map(|u| u.user_id).collect();
        let members = self.store.members_among(&req.room_id, &ids).await?;
        let mut user_ids: Vec<String> = Vec::with_capacity(members.len());
        for id in ids {
            if members.contains(&id) && !user_ids.contains(&id) {
                user_ids.push(id);
            }
        }
        Ok(MentionsReply { user_ids })
    }
}
