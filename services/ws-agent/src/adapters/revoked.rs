//! The revoked bucket ([`layout::REVOKED_BUCKET`], written by auth's `logout`): the watch that
//! feeds the core's [`Revocations`], and the one KV get the core asks for a token its set cannot
//! vouch for.
//!
//! The watch delivers the last entry of every key first (the whole bucket: what was revoked
//! before this agent started, so a revocation survives a restart), then every new one. The set is
//! told it is current once the watch has delivered everything the bucket held: an entry with
//! nothing pending after it, or the stream's last sequence reached (checked while catching up,
//! which also covers an empty bucket, where no entry ever comes). A watch that fails is made
//! again, with a growing pause, and the set is not current meanwhile.
//!
//! After every reconnection to NATS the watch is made afresh, replaying the whole bucket again,
//! rather than left to its ordered consumer, which resumes after the last stream sequence it saw:
//! on a nats-server replaced by an empty one the new bucket's sequences start over, and the
//! revocations written there before they pass the old sequence would never be delivered. Until
//! the fresh watch has caught up the set is not current, so tokens it does not hold are looked up.

use std::time::Duration;

use async_nats::jetstream::kv;
use dyschat_protocol::{ids, layout};
use dyschat_runtime::connect::Reconnects;
use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt};
use tokio_util::sync::CancellationToken;

use super::bounded;
use crate::core::Revocations;
use crate::ports::{PortError, PortResult, RevocationStore};

/// While catching up, how often the stream's last sequence is compared with what was seen.
const CATCH_UP_CHECK: Duration = Duration::from_millis(250);
/// The pause before the first retry of a failed watch, and the longest one.
const RETRY_MIN: Duration = Duration::from_millis(250);
const RETRY_MAX: Duration = Duration::from_secs(5);
/// A watch that lived this long starts its next retry at [`RETRY_MIN`] again.
const HEALTHY_FOR: Duration = Duration::from_secs(30);

pub(crate) struct KvRevocations {
    kv: kv::Store,
}

/// Why a watch stopped without failing.
enum Stopped {
    Shutdown,
    /// The client reconnected: the watch is made afresh (see the module doc).
    Reconnected,
}

impl KvRevocations {
    pub(crate) fn new(kv: kv::Store) -> Self {
        KvRevocations { kv }
    }

    /// Feeds `revocations` from the bucket until `shutdown`, watching afresh after each of
    /// `reconnects`.
    pub(crate) async fn follow(
        &self,
        revocations: &Revocations,
        mut reconnects: Reconnects,
        shutdown: CancellationToken,
    ) {
        let mut pause = RETRY_MIN;
        loop {
            revocations.set_current(false);
            let started = tokio::time::Instant::now();
            match self.watch(revocations, &mut reconnects, &shutdown).await {
                Ok(Stopped::Shutdown) => return,
                Ok(Stopped::Reconnected) => {
                    tracing::info!("NATS reconnected; watching revoked tokens afresh");
                    pause = RETRY_MIN;
                }
                Err(e) => tracing::warn!(error = %e, "revoked tokens watch failed; watching again"),
            }
            if started.elapsed() >= HEALTHY_FOR {
                pause = RETRY_MIN;
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(pause) => {}
            }
            pause = (pause * 2).min(RETRY_MAX);
        }
    }

    /// One watch, until `shutdown` or a reconnection (`Ok`), or until it fails.
    async fn watch(
        &self,
        revocations: &Revocations,
        reconnects: &mut Reconnects,
        shutdown: &CancellationToken,
    ) -> PortResult<Stopped> {
        let mut watch = bounded(self.kv.watch_with_history(">")).await?;
        let mut seen = 0u64;
        let mut current = false;
        let mut check = tokio::time::interval(CATCH_UP_CHECK);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return Ok(Stopped::Shutdown),
                // `None` (the client is gone) disables this branch; the watch then ends itself.
                Some(_) = reconnects.next() => return Ok(Stopped::Reconnected),
                _ = check.tick(), if !current => {
                    if self.caught_up(seen).await {
                        current = true;
                        revocations.set_current(true);
                        tracing::debug!(held = revocations.held(), "revoked tokens replayed");
                    }
                }
                next = watch.next() => {
                    let entry = match next {
                        Some(Ok(entry)) => entry,
                        Some(Err(e)) => return Err(PortError::failed(e)),
                        None => return Err(PortError::Failed("the watch ended".into())),
                    };
                    seen = seen.max(entry.revision);
                    apply(revocations, &entry);
                    if !current && entry.delta == 0 {
                        current = true;
                        revocations.set_current(true);
                    }
                }
            }
        }
    }

    /// Whether everything the bucket holds has been seen (`seen` is the highest revision), from
    /// the stream's fresh state (the store's own status is what it was at open).
    async fn caught_up(&self, seen: u64) -> bool {
        match bounded(self.kv.stream.get_info()).await {
            Ok(info) => info.state.messages == 0 || info.state.last_sequence <= seen,
            Err(e) => {
                tracing::debug!(error = %e, "revoked bucket state unavailable");
                false
            }
        }
    }
}

/// A put is a revocation; the marker the server leaves when one's TTL ends only says that its
/// token expired, which the set knows by itself.
fn apply(revocations: &Revocations, entry: &kv::Entry) {
    if entry.operation != kv::Operation::Put {
        return;
    }
    match layout::parse_revoked_value(&entry.value) {
        Some(expires) if ids::is_valid_id(&entry.key) => {
            revocations.revoked(&entry.key, expires, chrono::Utc::now().timestamp());
        }
        _ => tracing::debug!(key = %entry.key, "unreadable revocation ignored"),
    }
}

impl RevocationStore for KvRevocations {
    fn is_revoked<'a>(&'a self, token_id: &'a str) -> BoxFuture<'a, PortResult<bool>> {
        async move {
            let value = bounded(self.kv.get(layout::revoked_key(token_id))).await?;
            Ok(value.is_some())
        }
        .boxed()
    }
}
