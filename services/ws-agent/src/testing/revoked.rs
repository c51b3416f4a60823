//! A fake of the revoked bucket: what the core asks when its set cannot vouch for a token.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

use futures::future::BoxFuture;
use futures::FutureExt;

use super::lock;
use crate::ports::{PortError, PortResult, RevocationStore};

#[derive(Default)]
pub(crate) struct FakeRevoked {
    revoked: Mutex<HashSet<String>>,
    calls: AtomicUsize,
    failing: AtomicBool,
}

impl FakeRevoked {
    /// Puts `token_id` in the bucket (as auth's logout would).
    pub(crate) fn revoke(&self, token_id: &str) {
        lock(&self.revoked).insert(token_id.to_string());
    }

    /// How many times the bucket was asked.
    pub(crate) fn calls(&self) -> usize {
        self.calls.load(Ordering::Relaxed)
    }

    /// Makes every lookup fail (the bucket unreachable) or work again.
    pub(crate) fn fail(&self, failing: bool) {
        self.failing.store(failing, Ordering::Relaxed);
    }
}

impl RevocationStore for FakeRevoked {
    fn is_revoked<'a>(&'a self, token_id: &'a str) -> BoxFuture<'a, PortResult<bool>> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        let answer = if self.failing.load(Ordering::Relaxed) {
            Err(PortError::Timeout)
        } else {
            Ok(lock(&self.revoked).contains(token_id))
        };
        futures::future::ready(answer).boxed()
    }
}
