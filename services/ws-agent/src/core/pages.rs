//! A page of a room's history that never leaves out an acknowledged message, nor gives a wrong
//! `prev_seq`, because the history store is behind.
//!
//! Redis holds what msg-writer stored; the stream holds everything acknowledged. The store is
//! trusted for the room's messages up to the writer consumer's ack floor, and only while Redis
//! says it holds the whole history (marker complete, the room not being rebuilt) and its high
//! water reaches that floor (a Redis restored from an old snapshot does not). Above the trusted
//! sequence — the writer lagging, stopped, or Redis away or emptied — messages are read from the
//! stream, walking back message by message for a `before` page and forward for an `after` page,
//! at most a page (plus one) of them. In the usual case (the writer a few milliseconds behind)
//! that costs one position lookup and nothing else.
//!
//! The same holds for change events: the store shows each message as of the changes the writer
//! applied; the room's changes above the trusted sequence are read from the stream and folded
//! over the page ([`super::fold::overlay`]).

use dyschat_protocol::wire::{Message, MessagePage};
use dyschat_runtime::history::{PageQuery, StoreState};

use super::{fold, Core, CoreError};
use crate::ports::{Entry, Sequenced};

impl Core {
    /// The highest sequence up to which the store holds every message of every room.
    pub(super) async fn trusted_up_to(&self, room_id: &str) -> Result<u64, CoreError> {
        let floor = self.writer_floor(room_id).await?;
        self.trusted_below(room_id, floor).await
    }

    /// The writer's ack floor on the room's stream (see [`crate::ports::WriterPosition`]).
    pub(super) async fn writer_floor(&self, room_id: &str) -> Result<u64, CoreError> {
        Ok(self
            .stream
            .writer_position(room_id)
            .await
            .map_err(CoreError::unavailable("history"))?
            .floor)
    }

    /// What the store may be trusted with for the room, given the writer's ack `floor`.
    pub(super) async fn trusted_below(&self, room_id: &str, floor: u64) -> Result<u64, CoreError> {
        let state = match self.history.state(room_id).await {
            Ok(state) => state,
            Err(e) => {
                tracing::debug!(error = %e, "history store unavailable; reading the stream");
                StoreState::default()
            }
        };
        Ok(if state.complete && state.high_water >= floor {
            floor
        } else {
            0
        })
    }

    /// A page of the room's history (the caller has checked the user may read it).
    pub(crate) async fn history_page(
        &self,
        room_id: &str,
        query: PageQuery,
        limit: usize,
    ) -> Result<MessagePage, CoreError> {
        let trusted = self.trusted_up_to(room_id).await?;
        let mut page = match query {
            PageQuery::Before(before) => self.page_before(room_id, before, limit, trusted).await,
            PageQuery::After(after) => self.page_after(room_id, after, limit, trusted).await,
        }?;
        self.overlay_changes(room_id, &mut page, trusted).await?;
        Ok(page)
    }

    /// Applies the room's change events the store cannot vouch for (above `trusted`) to the
    /// page, read from the stream: a page shows messages in their current state while msg-writer
    /// lags. Nothing to read in the usual case (the writer has applied them all).
    async fn overlay_changes(
        &self,
        room_id: &str,
        page: &mut MessagePage,
        trusted: u64,
    ) -> Result<(), CoreError> {
        let unavailable = CoreError::unavailable("history");
        let Some(newest) = self
            .changes
            .last_change(room_id)
            .await
            .map_err(unavailable)?
        else {
            return Ok(());
        };
        if newest.event_seq <= trusted || page.messages.is_empty() {
            return Ok(());
        }
        let entries = self
            .stream
            .replay(room_id, trusted, newest.event_seq, self.recovery_limit)
            .await
            .map_err(CoreError::unavailable("history"))?
            .ok_or(CoreError::Busy(
                "the history store is too far behind to show this page, try again",
            ))?;
        let changes: Vec<Entry> = entries
            .into_iter()
            .filter(|e| matches!(e, Entry::Change(_)))
            .collect();
        fold::overlay(&mut page.messages, &changes);
        Ok(())
    }

    async fn store_page(
        &self,
        room_id: &str,
        query: PageQuery,
        limit: usize,
    ) -> Result<MessagePage, CoreError> {
        self.history
            .page(room_id, query, limit)
            .await
            .map_err(CoreError::unavailable("history"))
    }

    async fn newest_up_to(&self, room_id: &str, up_to: u64) -> Result<u64, CoreError> {
        self.stream
            .newest_up_to(room_id, up_to)
            .await
            .map_err(CoreError::unavailable("history"))
    }

    async fn stored_at(&self, room_id: &str, seq: u64) -> Result<Sequenced, CoreError> {
        let stored = self
            .stream
            .stored(room_id, seq)
            .await
            .map_err(CoreError::unavailable("history"))?;
        Ok(Sequenced { seq, stored })
    }

    /// The newest `limit` messages below `before` (all when `None`), oldest first.
    pub(super) async fn page_before(
        &self,
        room_id: &str,
        before: Option<u64>,
        limit: usize,
        trusted: u64,
    ) -> Result<MessagePage, CoreError> {
        let start = before.map_or(u64::MAX, |b| b.saturating_sub(1));
        // Walk back from the newest message below `before` while the store cannot vouch for
        // it: `tail` (newest first) is what the store may lack, `boundary` the first message at
        // or below the trusted sequence (0: the room's start).
        let mut tail: Vec<u64> = Vec::new();
        let mut cursor = start;
        let boundary = loop {
            if tail.len() > limit {
                // A page and one more: enough to know there is more, no boundary needed.
                break 0;
            }
            let seq = match cursor {
                0 => 0,
                u64::MAX => self
                    .stream
                    .last_seq(room_id)
                    .await
                    .map_err(CoreError::unavailable("history"))?,
                _ => self.newest_up_to(room_id, cursor).await?,
            };
            if seq == 0 || seq <= trusted {
                break seq;
            }
            tail.push(seq);
            cursor = seq - 1;
        };
        if tail.is_empty() {
            // Everything below `before` is at or below the trusted sequence: the store's page.
            return self
                .store_page(room_id, PageQuery::Before(before), limit)
                .await;
        }
        let has_more_in_tail = tail.len() > limit;
        // The message before the oldest one shown: the next one of the walk, or the boundary.
        let prev_of_oldest = if has_more_in_tail {
            tail[limit]
        } else {
            boundary
        };
        tail.truncate(limit);
        let mut newest = Vec::with_capacity(tail.len());
        for &seq in &tail {
            newest.push(self.stored_at(room_id, seq).await?);
        }
        newest.reverse();
        let mut from_stream = chain(room_id, newest, prev_of_oldest);
        if has_more_in_tail || boundary == 0 {
            return Ok(MessagePage {
                messages: from_stream,
                has_more: has_more_in_tail,
            });
        }
        // The rest from the store, which holds everything up to the boundary.
        let oldest = tail.last().copied().unwrap_or(start);
        let rest = limit - from_stream.len();
        let mut page = self
            .store_page(room_id, PageQuery::Before(Some(oldest)), rest)
            .await?;
        page.messages.append(&mut from_stream);
        Ok(page)
    }

    /// The oldest `limit` messages after `after`, oldest first.
    async fn page_after(
        &self,
        room_id: &str,
        after: u64,
        limit: usize,
        trusted: u64,
    ) -> Result<MessagePage, CoreError> {
        let mut messages: Vec<Message> = Vec::new();
        if trusted > after {
            let page = self
                .store_page(room_id, PageQuery::After(after), limit)
                .await?;
            let mut has_more = page.has_more;
            // The store is complete up to the trusted sequence; what it has above may have holes.
            let complete: Vec<Message> = page
                .messages
                .into_iter()
                .take_while(|m| m.seq <= trusted)
                .collect();
            if complete.len() == limit {
                if !has_more {
                    let last = complete.last().map_or(after, |m| m.seq);
                    has_more = !self.first_after(room_id, last, 1).await?.is_empty();
                }
                return Ok(MessagePage {
                    messages: complete,
                    has_more,
                });
            }
            messages = complete;
        }
        // The rest from the stream, after what the store vouched for.
        let from = messages
            .last()
            .map_or(after.max(trusted), |m| m.seq.max(trusted));
        let want = limit - messages.len();
        let mut read = self.first_after(room_id, from, want + 1).await?;
        let has_more = read.len() > want;
        read.truncate(want);
        let prev = match messages.last() {
            Some(m) => m.seq,
            None => self.newest_up_to(room_id, from).await?,
        };
        messages.append(&mut chain(room_id, read, prev));
        Ok(MessagePage { messages, has_more })
    }

    async fn first_after(
        &self,
        room_id: &str,
        after: u64,
        n: usize,
    ) -> Result<Vec<Sequenced>, CoreError> {
        self.stream
            .first_after(room_id, after, n)
            .await
            .map_err(CoreError::unavailable("history"))
    }
}

/// Messages read in order from the stream, each with the previous one's seq as `prev_seq`; one
/// read twice or out of order (a reader that started again) is left out, so a page holds each
/// message once, in `seq` order.
fn chain(room_id: &str, read: Vec<Sequenced>, mut prev: u64) -> Vec<Message> {
    let mut out = Vec::with_capacity(read.len());
    for s in read {
        if s.stored.room_id != room_id || s.seq <= prev {
            continue;
        }
        let seq = s.seq;
        out.push(Message::from_stored(s.stored, seq, prev));
        prev = seq;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(room_id: &str, seq: u64) -> Sequenced {
        let stored = crate::testing::stream_message(room_id, "x");
        Sequenced { seq, stored }
    }

    #[test]
    fn a_chain_holds_each_message_of_the_room_once_in_order() {
        let got = chain(
            "r",
            vec![
                read("r", 5),
                read("r", 7),
                read("x", 8),
                read("r", 7),
                read("r", 6),
                read("r", 9),
            ],
            3,
        );
        let seqs: Vec<(u64, u64)> = got.iter().map(|m| (m.seq, m.prev_seq)).collect();
        assert_eq!(seqs, vec![(5, 3), (7, 5), (9, 7)]);
    }
}
