//! An in-memory feed: each user's notifications with ids from one sequence (like the stream's),
//! and their markers with revisions.

use std::collections::HashMap;
use std::sync::Mutex;

use dyschat_protocol::wire::StoredNotification;
use futures::future::BoxFuture;
use futures::FutureExt;

use super::lock;
use crate::ports::{FeedPage, FeedStore, PortResult, StoredMarker};

#[derive(Default)]
pub(crate) struct FakeFeed {
    entries: Mutex<Vec<(String, u64, StoredNotification)>>,
    markers: Mutex<HashMap<String, StoredMarker>>,
    seq: Mutex<u64>,
}

impl FakeFeed {
    /// Stores a notification for `user_id`; returns its id.
    pub(crate) fn add(&self, user_id: &str, n: StoredNotification) -> u64 {
        let mut seq = lock(&self.seq);
        *seq += 1;
        lock(&self.entries).push((user_id.to_string(), *seq, n));
        *seq
    }

    fn of(&self, user_id: &str) -> Vec<(u64, StoredNotification)> {
        lock(&self.entries)
            .iter()
            .filter(|(u, _, _)| u == user_id)
            .map(|(_, id, n)| (*id, n.clone()))
            .collect()
    }
}

impl FeedStore for FakeFeed {
    fn page<'a>(
        &'a self,
        user_id: &'a str,
        before: Option<u64>,
        limit: usize,
    ) -> BoxFuture<'a, PortResult<FeedPage>> {
        let mut all: Vec<_> = self
            .of(user_id)
            .into_iter()
            .filter(|(id, _)| before.is_none_or(|b| *id < b))
            .collect();
        all.reverse();
        let more = all.len() > limit;
        all.truncate(limit);
        futures::future::ready(Ok((all, more))).boxed()
    }

    fn count_after<'a>(&'a self, user_id: &'a str, after: u64) -> BoxFuture<'a, PortResult<u64>> {
        let n = self
            .of(user_id)
            .iter()
            .filter(|(id, _)| *id > after)
            .count() as u64;
        futures::future::ready(Ok(n)).boxed()
    }

    fn newest<'a>(&'a self, user_id: &'a str) -> BoxFuture<'a, PortResult<u64>> {
        let n = self.of(user_id).last().map_or(0, |(id, _)| *id);
        futures::future::ready(Ok(n)).boxed()
    }

    fn marker<'a>(&'a self, user_id: &'a str) -> BoxFuture<'a, PortResult<Option<StoredMarker>>> {
        let m = lock(&self.markers).get(user_id).copied();
        futures::future::ready(Ok(m)).boxed()
    }

    fn put_marker_if<'a>(
        &'a self,
        user_id: &'a str,
        up_to: u64,
        expected: Option<u64>,
    ) -> BoxFuture<'a, PortResult<bool>> {
        let mut markers = lock(&self.markers);
        let current = markers.get(user_id).map(|m| m.revision);
        let written = current == expected;
        if written {
            let revision = current.unwrap_or(0) + 1;
            markers.insert(
                user_id.to_string(),
                StoredMarker {
                    seq: up_to,
                    revision,
                },
            );
        }
        futures::future::ready(Ok(written)).boxed()
    }
}
