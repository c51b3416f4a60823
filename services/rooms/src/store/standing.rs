//! Invitations (`dyschat_invites`) and bans (`dyschat_bans`), one key per (room, user) like the
//! member records, so a user's standing in a room is a few point reads whatever the room's size,
//! and the standings of one user in a page of rooms are one batch per bucket.
//!
//! A write here is followed by a [`Store::touch`] of the (room, user) member key by the caller,
//! which orders it (see [`super::members`]).

use std::collections::{HashMap, HashSet};

use async_nats::jetstream::kv::Operation;
use dyschat_protocol::layout::{
    kv_stream, kv_subject, member_key, members_filter, parse_member_key, room_user_key,
    BANS_BUCKET, INVITES_BUCKET, MEMBERS_BUCKET,
};

use super::{delete, put, value, Store, StoreError};
use crate::paging::Cursor;
use crate::records::{decode, encode, BanRecord, InviteRecord};

/// What is known of one user in each of a page of rooms (see [`Store::standings_in`]).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Presence {
    pub member: bool,
    pub invited: bool,
    pub banned: bool,
}

impl Store {
    pub async fn invited(&self, room_id: &str, user_id: &str) -> Result<bool, StoreError> {
        let key = room_user_key(room_id, user_id);
        Ok(value::<InviteRecord>(&self.invites, INVITES_BUCKET, &key)
            .await?
            .is_some())
    }

    pub async fn ban(&self, room_id: &str, user_id: &str) -> Result<Option<BanRecord>, StoreError> {
        let key = room_user_key(room_id, user_id);
        Ok(value(&self.bans, BANS_BUCKET, &key).await?.map(|(b, _)| b))
    }

    pub async fn put_invite(
        &self,
        room_id: &str,
        user_id: &str,
        invite: &InviteRecord,
    ) -> Result<(), StoreError> {
        let key = room_user_key(room_id, user_id);
        put(&self.invites, INVITES_BUCKET, &key, encode(&key, invite)?).await?;
        Ok(())
    }

    pub async fn remove_invite(&self, room_id: &str, user_id: &str) -> Result<(), StoreError> {
        delete(
            &self.invites,
            INVITES_BUCKET,
            &room_user_key(room_id, user_id),
        )
        .await
    }

    pub async fn put_ban(&self, room_id: &str, ban: &BanRecord) -> Result<(), StoreError> {
        let key = room_user_key(room_id, &ban.user_id);
        put(&self.bans, BANS_BUCKET, &key, encode(&key, ban)?).await?;
        Ok(())
    }

    pub async fn remove_ban(&self, room_id: &str, user_id: &str) -> Result<(), StoreError> {
        delete(&self.bans, BANS_BUCKET, &room_user_key(room_id, user_id)).await
    }

    /// One page of the room's bans (in the order they were made), from `cursor` on.
    pub async fn ban_page(
        &self,
        room_id: &str,
        cursor: Cursor,
        limit: usize,
    ) -> Result<(Vec<BanRecord>, Option<Cursor>), StoreError> {
        let stream = kv_stream(BANS_BUCKET);
        let filter = kv_subject(BANS_BUCKET, &members_filter(room_id));
        self.page_by_subject(&stream, &filter, cursor, limit, |m| {
            decode(&m.subject, &m.payload).map(Some)
        })
        .await
    }

    /// Whether `user_id` is a member of, invited to and banned from each of `room_ids` (at most
    /// [`dyschat_runtime::direct::MAX_RESULTS`]): three batches, at once, whatever the rooms.
    pub async fn standings_in(
        &self,
        room_ids: &[String],
        user_id: &str,
    ) -> Result<HashMap<String, Presence>, StoreError> {
        let keys: Vec<String> = room_ids.iter().map(|r| member_key(r, user_id)).collect();
        let mut found: HashMap<String, Presence> = HashMap::with_capacity(keys.len());
        if keys.is_empty() {
            return Ok(found);
        }
        let (members, invites, bans) = tokio::try_join!(
            self.values_of(MEMBERS_BUCKET, &keys),
            self.values_of(INVITES_BUCKET, &keys),
            self.values_of(BANS_BUCKET, &keys),
        )?;
        for room_id in room_ids {
            found.insert(
                room_id.clone(),
                Presence {
                    member: members.contains(room_id),
                    invited: invites.contains(room_id),
                    banned: bans.contains(room_id),
                },
            );
        }
        Ok(found)
    }

    /// The rooms of `keys` (`<room_id>.<user_id>`) whose last entry in `bucket` is a value.
    async fn values_of(
        &self,
        bucket: &str,
        keys: &[String],
    ) -> Result<HashSet<String>, StoreError> {
        Ok(self
            .last_of(bucket, keys)
            .await?
            .into_iter()
            .filter(|(_, m)| m.operation == Operation::Put)
            .filter_map(|(key, _)| parse_member_key(&key).map(|(room, _)| room.to_string()))
            .collect())
    }
}
