//! The fake history store: what the fake stream holds up to a settable point, as msg-writer
//! would have stored it, with a store state a test can make incomplete or failing.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use dyschat_protocol::wire::MessagePage;
use dyschat_runtime::history::PageQuery;
use futures::future::BoxFuture;
use futures::FutureExt;

use crate::ports::{HistoryStore, PortResult};

/// History is not what these tests are about: always an empty page.
pub(crate) struct FakeHistory {
    stream: std::sync::Arc<super::FakeStream>,
    /// The store holds the messages with `seq <= stored_up_to`.
    pub stored_up_to: AtomicU64,
    /// What the store says of itself (`high_water` defaults to what it holds).
    pub complete: std::sync::atomic::AtomicBool,
    pub high_water: AtomicU64,
    pub failing: std::sync::atomic::AtomicBool,
    pub pages: AtomicUsize,
}

impl FakeHistory {
    /// A store that keeps up with the stream.
    pub(crate) fn new(stream: std::sync::Arc<super::FakeStream>) -> Self {
        FakeHistory {
            stream,
            stored_up_to: AtomicU64::new(u64::MAX),
            complete: std::sync::atomic::AtomicBool::new(true),
            high_water: AtomicU64::new(u64::MAX),
            failing: std::sync::atomic::AtomicBool::new(false),
            pages: AtomicUsize::new(0),
        }
    }

    fn fail(&self) -> PortResult<()> {
        if self.failing.load(Ordering::SeqCst) {
            Err(crate::ports::PortError::Failed("history store down".into()))
        } else {
            Ok(())
        }
    }
}

impl HistoryStore for FakeHistory {
    fn sent<'a>(
        &'a self,
        room_id: &'a str,
        field: &'a str,
        _days: &'a [u64],
    ) -> BoxFuture<'a, PortResult<(Option<u64>, dyschat_runtime::history::StoreState)>> {
        let found = self.fail().map(|()| {
            self.stream
                .room_messages(room_id, self.stored_up_to.load(Ordering::SeqCst))
                .into_iter()
                .find(|(_, m)| {
                    dyschat_protocol::layout::history::dedupe_field(&m.sender_id, &m.client_msg_id)
                        == field
                })
                .map(|(seq, _)| seq)
        });
        let state = self.state(room_id);
        async move { Ok((found?, state.await?)) }.boxed()
    }

    fn state<'a>(
        &'a self,
        _room_id: &'a str,
    ) -> BoxFuture<'a, PortResult<dyschat_runtime::history::StoreState>> {
        let state = self.fail().map(|()| dyschat_runtime::history::StoreState {
            complete: self.complete.load(Ordering::SeqCst),
            high_water: self
                .high_water
                .load(Ordering::SeqCst)
                .min(self.stored_up_to.load(Ordering::SeqCst))
                .min(self.stream.last_seq_any()),
        });
        futures::future::ready(state).boxed()
    }

    fn page<'a>(
        &'a self,
        room_id: &'a str,
        query: PageQuery,
        limit: usize,
    ) -> BoxFuture<'a, PortResult<MessagePage>> {
        self.pages.fetch_add(1, Ordering::SeqCst);
        let page = self.fail().map(|()| {
            let held = self
                .stream
                .room_messages(room_id, self.stored_up_to.load(Ordering::SeqCst));
            page_of(&held, query, limit)
        });
        futures::future::ready(page).boxed()
    }

    fn counts<'a>(
        &'a self,
        room_id: &'a str,
        sender_id: &'a str,
        after: u64,
        up_to: u64,
    ) -> BoxFuture<'a, PortResult<(u64, u64, u64)>> {
        let counts = self
            .fail()
            .map(|()| self.count_sent(room_id, sender_id, after, up_to));
        futures::future::ready(counts).boxed()
    }
}

impl FakeHistory {
    fn count_sent(
        &self,
        room_id: &str,
        sender_id: &str,
        after: u64,
        up_to: u64,
    ) -> (u64, u64, u64) {
        let held = self
            .stream
            .room_messages(room_id, self.stored_up_to.load(Ordering::SeqCst));
        let range: Vec<_> = held
            .iter()
            .filter(|(seq, _)| *seq > after && *seq <= up_to)
            .collect();
        let mine = range
            .iter()
            .filter(|(_, m)| m.sender_id == sender_id)
            .count();
        let mentioned = range
            .iter()
            .filter(|(_, m)| m.mentions.iter().any(|u| u == sender_id))
            .count();
        (range.len() as u64, mine as u64, mentioned as u64)
    }
}

/// The page Redis would answer from `held` (the room's stored messages, in order).
fn page_of(
    held: &[(u64, dyschat_protocol::wire::StoredMessage)],
    query: PageQuery,
    limit: usize,
) -> MessagePage {
    let prev_of = |i: usize| if i == 0 { 0 } else { held[i - 1].0 };
    let message = |i: usize| {
        dyschat_protocol::wire::Message::from_stored(held[i].1.clone(), held[i].0, prev_of(i))
    };
    match query {
        PageQuery::Before(before) => {
            let below: Vec<usize> = (0..held.len())
                .filter(|&i| before.is_none_or(|b| held[i].0 < b))
                .collect();
            let start = below.len().saturating_sub(limit);
            MessagePage {
                messages: below[start..].iter().map(|&i| message(i)).collect(),
                has_more: start > 0,
            }
        }
        PageQuery::After(after) => {
            let above: Vec<usize> = (0..held.len()).filter(|&i| held[i].0 > after).collect();
            MessagePage {
                messages: above.iter().take(limit).map(|&i| message(i)).collect(),
                has_more: above.len() > limit,
            }
        }
    }
}
