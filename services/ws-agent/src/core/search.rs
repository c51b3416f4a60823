//! `GET /api/v1/search/messages`: the user's rooms at query time (or the one room asked for,
//! decided like history), the search service's hits, and a check of each hit against the
//! message's current state in the stream before it is shown.
//!
//! The index follows the stream a little behind (its commits come every few hundred
//! milliseconds), so a hit may name a message deleted or edited since. Each hit is read again
//! from the stream leader (the message's last change event, else the message as sent): a deleted
//! one is dropped, and so is one whose current text no longer holds every word of the query (the
//! same normaliser as the index). So a deletion or an edit is honoured from the moment it is
//! answered. Dropped hits do not shorten a page needlessly: the core asks for the next hits
//! (at most [`MAX_ROUNDS`] times) and the cursor always names the last hit looked at.

use dyschat_protocol::policy::Action;
use dyschat_protocol::search::{self, Cursor};
use dyschat_protocol::wire::{
    Message, MyRoomList, PageRequest, SearchHit, SearchReply, SearchRequest, SearchResult,
    SearchResults,
};
use dyschat_protocol::{ids, ApiError};
use futures::{StreamExt, TryStreamExt};

use super::{Core, CoreError, User};

/// The most rooms named in one request to the search service (a request stays well below the
/// services' 64 KiB whatever the room ids' length); more rooms are asked in parallel.
const ROOMS_PER_REQUEST: usize = 500;
/// The most pages of the user's rooms read (the quota of rooms joined is 1,000 by default).
const MAX_ROOM_PAGES: usize = 20;
/// How many times a page is topped up when hits were dropped.
pub(crate) const MAX_ROUNDS: usize = 4;
/// Hits checked against the stream at once.
const CHECKS: usize = 8;

/// A search as the HTTP route received it.
pub(crate) struct SearchQuery {
    pub q: Option<String>,
    pub room_id: Option<String>,
    pub limit: Option<i64>,
    pub before: Option<String>,
}

impl Core {
    pub(crate) async fn search_messages(
        &self,
        user: &User,
        query: SearchQuery,
    ) -> Result<SearchResults, CoreError> {
        let limit = match query.limit {
            None => search::DEFAULT_LIMIT,
            Some(n) if (1..=search::MAX_LIMIT as i64).contains(&n) => n as usize,
            Some(_) => return Err(CoreError::Invalid("limit must be 1 to 50")),
        };
        let q = query.q.unwrap_or_default();
        if q.trim().is_empty() {
            return Err(CoreError::Invalid("q is required"));
        }
        if q.chars().count() > search::MAX_QUERY_CHARS {
            return Err(CoreError::Invalid("q is too long (at most 256 characters)"));
        }
        let terms = search::search_terms(&q);
        if terms.is_empty() {
            return Err(CoreError::Invalid("q holds no word"));
        }
        if terms.len() > search::MAX_QUERY_TERMS {
            return Err(CoreError::Invalid("q holds too many words (at most 16)"));
        }
        let mut before = match query.before.filter(|b| !b.is_empty()) {
            None => None,
            Some(text) => Some(Cursor::decode(&text).ok_or(CoreError::Invalid("invalid cursor"))?),
        };
        let rooms = match query.room_id {
            Some(room_id) => {
                ids::validate_id("room_id", &room_id)
                    .map_err(|_| ApiError::not_found("room not found"))?;
                self.membership
                    .decide(&room_id, &user.user_id, Action::Read)
                    .await?;
                vec![room_id]
            }
            None => self.my_room_ids(user).await?,
        };
        let mut results = Vec::with_capacity(limit);
        if rooms.is_empty() {
            return Ok(SearchResults {
                results,
                next_cursor: None,
            });
        }
        for _ in 0..MAX_ROUNDS {
            let want = limit - results.len();
            let ask = (want + want / 4 + 2).min(search::MAX_LIMIT);
            let (hits, more) = self.hits(&rooms, &q, ask, before).await?;
            let Some(last) = hits.last() else {
                return Ok(SearchResults {
                    results,
                    next_cursor: None,
                });
            };
            let last_cursor = Cursor::of(&last.message.sent_at, last.seq);
            let count = hits.len();
            let checked: Vec<Option<Message>> = futures::stream::iter(hits)
                .map(|hit| self.search_check(hit, &terms))
                .buffered(CHECKS)
                .try_collect()
                .await?;
            for (i, message) in checked.into_iter().enumerate() {
                let Some(message) = message else { continue };
                let cursor = Cursor::of(&message.sent_at, message.seq);
                results.push(SearchResult {
                    room_id: message.room_id.clone(),
                    seq: message.seq,
                    message,
                });
                if results.len() == limit {
                    let at_end = i + 1 == count && !more;
                    return Ok(SearchResults {
                        results,
                        next_cursor: (!at_end).then(|| cursor.encode()),
                    });
                }
            }
            if !more {
                return Ok(SearchResults {
                    results,
                    next_cursor: None,
                });
            }
            before = Some(last_cursor);
        }
        // Many hits in a row were stale: a short page, from which the next one goes on.
        Ok(SearchResults {
            results,
            next_cursor: before.map(|c| c.encode()),
        })
    }

    /// The rooms the user is a member of now.
    async fn my_room_ids(&self, user: &User) -> Result<Vec<String>, CoreError> {
        let mut rooms = Vec::new();
        let mut cursor = None;
        for _ in 0..MAX_ROOM_PAGES {
            let page: MyRoomList = self
                .rooms
                .my_rooms(PageRequest {
                    room_id: String::new(),
                    user_id: user.user_id.clone(),
                    limit: PageRequest::MAX_LIMIT,
                    cursor,
                })
                .await?;
            rooms.extend(page.rooms.into_iter().map(|r| r.room.room_id));
            cursor = page.next_cursor;
            if cursor.is_none() {
                break;
            }
        }
        Ok(rooms)
    }

    /// The newest `limit` hits of `rooms` before `before`, newest first, and whether more
    /// follow: one request per [`ROOMS_PER_REQUEST`] rooms, merged.
    async fn hits(
        &self,
        rooms: &[String],
        q: &str,
        limit: usize,
        before: Option<Cursor>,
    ) -> Result<(Vec<SearchHit>, bool), CoreError> {
        let requests: Vec<SearchRequest> = rooms
            .chunks(ROOMS_PER_REQUEST)
            .map(|chunk| SearchRequest {
                room_ids: chunk.to_vec(),
                q: q.to_string(),
                limit,
                before: before.map(|c| c.encode()),
            })
            .collect();
        let replies: Vec<SearchReply> =
            futures::future::try_join_all(requests.into_iter().map(|r| self.search.search(r)))
                .await?;
        let mut more = replies.iter().any(|r| r.next_cursor.is_some());
        let mut hits: Vec<SearchHit> = replies.into_iter().flat_map(|r| r.hits).collect();
        hits.sort_by_key(|h| std::cmp::Reverse(Cursor::of(&h.message.sent_at, h.seq)));
        if hits.len() > limit {
            hits.truncate(limit);
            more = true;
        }
        Ok((hits, more))
    }

    /// The hit's message as the stream holds it now, if it still holds every word of the query.
    async fn search_check(
        &self,
        hit: SearchHit,
        terms: &[String],
    ) -> Result<Option<Message>, CoreError> {
        let (room_id, seq) = (hit.room_id.as_str(), hit.seq);
        let (state, prev_seq) = match self
            .changes
            .last_change_of(room_id, seq)
            .await
            .map_err(CoreError::unavailable("search check"))?
        {
            Some(entry) => (entry.change.message, entry.change.prev_seq),
            None => {
                let Some(state) = self
                    .changes
                    .message_at(room_id, seq)
                    .await
                    .map_err(CoreError::unavailable("search check"))?
                else {
                    return Ok(None);
                };
                let prev_seq = self
                    .stream
                    .newest_up_to(room_id, seq.saturating_sub(1))
                    .await
                    .map_err(CoreError::unavailable("search check"))?;
                (state, prev_seq)
            }
        };
        if state.deleted || state.room_id != room_id || !search::holds_all(&state.body, terms) {
            return Ok(None);
        }
        Ok(Some(Message::from_stored(state, seq, prev_seq)))
    }
}
