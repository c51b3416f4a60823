//! Message search: the request the agent sends the search service, its reply, and the page the
//! HTTP route answers (contract section 9, `GET /api/v1/search/messages`).

use serde::{Deserialize, Serialize};

use crate::wire::{Message, StoredMessage};

/// `dyschat.search.messages`: the messages of `room_ids` holding every word of `q`, newest first,
/// at most `limit`, before the cursor `before` (see [`crate::search::Cursor`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SearchRequest {
    pub room_ids: Vec<String>,
    pub q: String,
    pub limit: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<String>,
}

/// One hit: the message's state as the index holds it (the agent checks it against the stream).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SearchHit {
    pub room_id: String,
    pub seq: u64,
    pub message: StoredMessage,
}

/// The search service's answer; `next_cursor` is set when more hits may follow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SearchReply {
    pub hits: Vec<SearchHit>,
    pub next_cursor: Option<String>,
}

/// One result of `GET /api/v1/search/messages`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SearchResult {
    pub room_id: String,
    pub seq: u64,
    pub message: Message,
}

/// A page of search results, newest first by `sent_at`; `next_cursor` is the `before` of the next
/// page, null at the end.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SearchResults {
    pub results: Vec<SearchResult>,
    pub next_cursor: Option<String>,
}
