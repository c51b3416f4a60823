//! The message search service as the core sees it: one request, the index's hits (which the
//! core checks against the stream before showing any).

use dyschat_protocol::wire::{SearchReply, SearchRequest};
use dyschat_protocol::ApiError;
use futures::future::BoxFuture;

/// `dyschat.search.messages`; a search service that does not answer in time is `unavailable`.
pub(crate) trait SearchService: Send + Sync {
    fn search(&self, req: SearchRequest) -> BoxFuture<'_, Result<SearchReply, ApiError>>;
}
