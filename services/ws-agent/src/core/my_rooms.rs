//! `GET /api/v1/me/rooms`: every room the user is a member of, as a RoomSummary, most recent
//! activity first (the newest of the room's last message and the user's joining).
//!
//! The rooms service knows the rooms, roles and peers; the agent adds each room's newest message
//! (a one-message history page, which never hides an acknowledged message behind a lagging
//! store), the user's read marker (all of them in one batched read) and the exact unread count:
//! messages of others with `seq > last_read_seq`. The store
//! part costs two O(log n) `ZCOUNT`s (the history and the user's own sent set, see
//! `layout::history::sent_key`); what the store may not be trusted with yet (above the writer's
//! ack floor, or all of it while Redis is rebuilt) is counted from the stream, at most
//! [`UNREAD_SCAN_LIMIT`] messages per room, past which the answer is 503: never a wrong count.

use std::collections::HashMap;

use dyschat_protocol::policy::RoomKind;
use dyschat_protocol::wire::{MyRoom, MyRoomList, PageRequest, Peer, RoomSummary, RoomSummaryList};
use futures::{StreamExt, TryStreamExt};

use super::{Core, CoreError, User};
use crate::ports::Entry;

/// The most pages of the user's rooms read (the quota of rooms joined is 1,000 by default: two
/// pages).
const MAX_PAGES: usize = 20;
/// The most rooms summarised at once.
const CONCURRENCY: usize = 16;
/// The most messages of one room counted from the stream for its unread count.
pub(crate) const UNREAD_SCAN_LIMIT: u64 = 5_000;

impl Core {
    pub(crate) async fn my_rooms(&self, user: &User) -> Result<RoomSummaryList, CoreError> {
        let mut rooms: Vec<MyRoom> = Vec::new();
        let mut cursor = None;
        for _ in 0..MAX_PAGES {
            let page: MyRoomList = self
                .rooms
                .my_rooms(PageRequest {
                    room_id: String::new(),
                    user_id: user.user_id.clone(),
                    limit: PageRequest::MAX_LIMIT,
                    cursor,
                })
                .await?;
            rooms.extend(page.rooms);
            cursor = page.next_cursor;
            if cursor.is_none() {
                break;
            }
        }
        // One batched read of the read markers for every room of the answer (the writer's
        // position is read per room's stream, cached for a moment by the adapter).
        let room_ids: Vec<String> = rooms.iter().map(|r| r.room.room_id.clone()).collect();
        let markers: HashMap<String, u64> = self
            .read_markers
            .markers(&user.user_id, &room_ids)
            .await
            .map_err(CoreError::unavailable("read markers"))?
            .into_iter()
            .collect();
        let mut summaries: Vec<(String, RoomSummary)> = futures::stream::iter(rooms)
            .map(|room| {
                let marker = markers.get(&room.room.room_id).copied().unwrap_or(0);
                self.summary(user, room, marker)
            })
            .buffer_unordered(CONCURRENCY)
            .try_collect()
            .await?;
        // RFC 3339 times with exactly three fractional digits compare as strings.
        summaries.sort_by(|(a, _), (b, _)| b.cmp(a));
        Ok(RoomSummaryList {
            rooms: summaries.into_iter().map(|(_, s)| s).collect(),
        })
    }

    /// One room's summary and its activity time.
    async fn summary(
        &self,
        user: &User,
        mine: MyRoom,
        last_read_seq: u64,
    ) -> Result<(String, RoomSummary), CoreError> {
        let room_id = mine.room.room_id.clone();
        let floor = self.writer_floor(&room_id).await?;
        let trusted = self.trusted_below(&room_id, floor).await?;
        let page = self.page_before(&room_id, None, 1, trusted).await?;
        let last_message = page.messages.into_iter().last();
        let last_seq = last_message.as_ref().map_or(0, |m| m.seq);
        let Unread { unread, mentions } = self
            .count_unread(&room_id, &user.user_id, last_read_seq, last_seq, trusted)
            .await?;
        let peer = match (&mine.peer, mine.room.kind) {
            (Some(peer), RoomKind::Direct) => Some(Peer {
                user_id: peer.user_id.clone(),
                username: peer.username.clone(),
                online: self.presence.online(&peer.user_id).await,
            }),
            _ => None,
        };
        let activity = match &last_message {
            Some(m) if m.sent_at > mine.joined_at => m.sent_at.clone(),
            _ => mine.joined_at.clone(),
        };
        let summary = RoomSummary {
            fields: mine.room.clone(),
            room: mine.room,
            role: mine.role,
            last_seq,
            last_read_seq,
            unread,
            mentions,
            last_message,
            peer,
        };
        Ok((activity, summary))
    }

    /// Messages of others with `marker < seq <= last_seq`, exactly (the tests' way in; the
    /// summaries share one look at the writer's position).
    #[cfg(test)]
    pub(crate) async fn unread(
        &self,
        room_id: &str,
        user_id: &str,
        marker: u64,
        last_seq: u64,
    ) -> Result<u64, CoreError> {
        if last_seq <= marker {
            return Ok(0);
        }
        let trusted = self.trusted_up_to(room_id).await?;
        Ok(self
            .count_unread(room_id, user_id, marker, last_seq, trusted)
            .await?
            .unread)
    }

    /// Messages of others with `marker < seq <= last_seq`, and those of them that mention the
    /// user, exactly, the store being trusted up to `trusted`.
    async fn count_unread(
        &self,
        room_id: &str,
        user_id: &str,
        marker: u64,
        last_seq: u64,
        trusted: u64,
    ) -> Result<Unread, CoreError> {
        let mut counted = Unread::default();
        if last_seq <= marker {
            return Ok(counted);
        }
        let trusted = trusted.min(last_seq);
        if trusted > marker {
            let (all, own, mentioned) = self
                .history
                .counts(room_id, user_id, marker, trusted)
                .await
                .map_err(CoreError::unavailable("unread count"))?;
            counted.unread += all.saturating_sub(own);
            counted.mentions += mentioned;
        }
        let from = trusted.max(marker);
        if last_seq > from {
            let above = self
                .stream
                .replay(room_id, from, last_seq, UNREAD_SCAN_LIMIT)
                .await
                .map_err(CoreError::unavailable("unread count"))?
                .ok_or(CoreError::Busy(
                    "the history store is too far behind to count unread messages, try again",
                ))?;
            for entry in &above {
                if let Entry::Message(m) = entry {
                    if m.stored.sender_id != user_id {
                        counted.unread += 1;
                    }
                    if m.stored.mentions.iter().any(|u| u == user_id) {
                        counted.mentions += 1;
                    }
                }
            }
        }
        Ok(counted)
    }
}

/// A room's unread messages for one user, and how many of them mention the user.
#[derive(Debug, Clone, Copy, Default)]
struct Unread {
    unread: u64,
    mentions: u64,
}
