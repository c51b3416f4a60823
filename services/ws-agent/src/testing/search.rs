//! The search service over a list of hits, as a (possibly stale) index would hold them.

use std::sync::Mutex;

use dyschat_protocol::search::{holds_all, search_terms, Cursor};
use dyschat_protocol::wire::{SearchHit, SearchReply, SearchRequest};
use dyschat_protocol::ApiError;
use futures::future::BoxFuture;

use super::lock;
use crate::ports::SearchService;

#[derive(Default)]
pub(crate) struct FakeSearch {
    hits: Mutex<Vec<SearchHit>>,
    pub requests: Mutex<Vec<SearchRequest>>,
}

impl FakeSearch {
    /// What the index holds for (room, seq) from now on.
    pub(crate) fn index(&self, hit: SearchHit) {
        let mut hits = lock(&self.hits);
        hits.retain(|h| (h.room_id.as_str(), h.seq) != (hit.room_id.as_str(), hit.seq));
        hits.push(hit);
    }
}

impl SearchService for FakeSearch {
    fn search(&self, req: SearchRequest) -> BoxFuture<'_, Result<SearchReply, ApiError>> {
        let terms = search_terms(&req.q);
        let before = req.before.as_deref().and_then(Cursor::decode);
        let mut found: Vec<SearchHit> = lock(&self.hits)
            .iter()
            .filter(|h| req.room_ids.contains(&h.room_id))
            .filter(|h| !h.message.deleted && holds_all(&h.message.body, &terms))
            .filter(|h| before.is_none_or(|b| Cursor::of(&h.message.sent_at, h.seq) < b))
            .cloned()
            .collect();
        found.sort_by_key(|h| std::cmp::Reverse(Cursor::of(&h.message.sent_at, h.seq)));
        let more = found.len() > req.limit;
        found.truncate(req.limit);
        let next_cursor = more
            .then(|| {
                found
                    .last()
                    .map(|h| Cursor::of(&h.message.sent_at, h.seq).encode())
            })
            .flatten();
        lock(&self.requests).push(req);
        Box::pin(futures::future::ready(Ok(SearchReply {
            hits: found,
            next_cursor,
        })))
    }
}
