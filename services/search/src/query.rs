//! Answering `dyschat.search.messages`: the request is checked against the bounds of the
//! contract (rooms, query length, words, page size, cursor), then run on a blocking thread,
//! a few at once and each within a deadline.

use std::sync::Arc;
use std::time::{Duration, Instant};

use dyschat_protocol::ids::is_valid_id;
use dyschat_protocol::search::{self, Cursor};
use dyschat_protocol::wire::{SearchReply, SearchRequest};
use dyschat_protocol::ApiError;
use dyschat_runtime::metric;
use tokio::sync::Semaphore;

use crate::index::SearchIndex;

/// Queries run at once; the others wait for a slot (within the deadline).
const CONCURRENT: usize = 4;
/// How long a query may take, waiting for its slot included.
const DEADLINE: Duration = Duration::from_secs(3);

pub(crate) struct Queries {
    index: SearchIndex,
    /// Held by the blocking search itself, so one that outlives its deadline still counts.
    slots: Arc<Semaphore>,
}

/// The request's normalised words and cursor, or why it is refused.
pub(crate) fn check(req: &SearchRequest) -> Result<(Vec<String>, Option<Cursor>), ApiError> {
    if req.room_ids.len() > search::MAX_ROOMS {
        return Err(ApiError::bad_request("too many rooms"));
    }
    if let Some(bad) = req.room_ids.iter().find(|r| !is_valid_id(r)) {
        return Err(ApiError::bad_request(format!("invalid room id {bad:?}")));
    }
    if !(1..=search::MAX_LIMIT).contains(&req.limit) {
        return Err(ApiError::bad_request("limit must be 1 to 50"));
    }
    if req.q.chars().count() > search::MAX_QUERY_CHARS {
        return Err(ApiError::bad_request("q is too long"));
    }
    let terms = search::search_terms(&req.q);
    if terms.is_empty() {
        return Err(ApiError::bad_request("q holds no word"));
    }
    if terms.len() > search::MAX_QUERY_TERMS {
        return Err(ApiError::bad_request("q holds too many words"));
    }
    let before = match req.before.as_deref() {
        None | Some("") => None,
        Some(text) => {
            Some(Cursor::decode(text).ok_or_else(|| ApiError::bad_request("invalid cursor"))?)
        }
    };
    Ok((terms, before))
}

impl Queries {
    pub(crate) fn new(index: SearchIndex) -> Queries {
        Queries {
            index,
            slots: Arc::new(Semaphore::new(CONCURRENT)),
        }
    }

    pub(crate) async fn answer(&self, req: SearchRequest) -> Result<SearchReply, ApiError> {
        let (terms, before) = check(&req)?;
        let started = Instant::now();
        let busy = || ApiError::unavailable("search is busy, try again shortly");
        let slot = tokio::time::timeout(DEADLINE, self.slots.clone().acquire_owned())
            .await
            .map_err(|_| busy())?
            .map_err(|_| busy())?;
        let index = self.index.clone();
        let limit = req.limit;
        let rooms = req.room_ids;
        let work = tokio::task::spawn_blocking(move || {
            let _slot = slot;
            index.search(&terms, &rooms, before, limit)
        });
        let left = DEADLINE.saturating_sub(started.elapsed());
        let (hits, more) = match tokio::time::timeout(left, work).await {
            Err(_) => return Err(ApiError::unavailable("search took too long")),
            Ok(Err(e)) => return Err(ApiError::internal(e.to_string())),
            Ok(Ok(Err(e))) => return Err(ApiError::internal(e.to_string())),
            Ok(Ok(Ok(found))) => found,
        };
        metrics::histogram!(metric::SEARCH_QUERY_SECONDS).record(started.elapsed().as_secs_f64());
        let next_cursor = if more {
            hits.last()
                .map(|h| Cursor::of(&h.message.sent_at, h.seq).encode())
        } else {
            None
        };
        Ok(SearchReply { hits, next_cursor })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(q: &str, limit: usize) -> SearchRequest {
        SearchRequest {
            room_ids: vec!["r".into()],
            q: q.into(),
            limit,
            before: None,
        }
    }

    #[test]
    fn requests_are_bounded() {
        assert!(check(&req("hello", 20)).is_ok());
        assert!(check(&req("  ,, ", 20)).is_err());
        assert!(check(&req("hello", 0)).is_err());
        assert!(check(&req("hello", 51)).is_err());
        assert!(check(&req(&"a".repeat(257), 20)).is_err());
        let many = (0..17)
            .map(|i| format!("w{i}"))
            .collect::<Vec<_>>()
            .join(" ");
        assert!(check(&req(&many, 20)).is_err());
        let mut bad_room = req("hello", 20);
        bad_room.room_ids = vec!["a.b".into()];
        assert!(check(&bad_room).is_err());
        let mut too_many = req("hello", 20);
        too_many.room_ids = (0..1001).map(|i| format!("r{i}")).collect();
        assert!(check(&too_many).is_err());
        let mut cursor = req("hello", 20);
        cursor.before = Some("nope".into());
        assert!(check(&cursor).is_err());
        cursor.before = Some("5.6".into());
        assert_eq!(
            check(&cursor).unwrap().1,
            Some(Cursor { sent_ms: 5, seq: 6 })
        );
    }
}
