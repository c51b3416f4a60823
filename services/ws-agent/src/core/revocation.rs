//! Revoked tokens (logout), as this agent knows them, and the sockets each token opened.
//!
//! Tokens are verified locally (a signature check, no request), so a logout has to reach every
//! agent: auth writes the token's id to the revoked bucket, and each agent watches that bucket
//! into a [`RevokedSet`] held in memory (the watch replays the bucket at start, so a revocation
//! survives an agent's restart). [`Core::authenticate`](super::Core::authenticate), the one place
//! where every route and socket is authenticated, asks [`Revocations::check`]; a revocation that
//! arrives closes every local socket authenticated with that token at once.
//!
//! The set is bounded ([`MAX_HELD`]): a revocation only matters until its token expires, so the
//! set holds what logouts made within one token lifetime, expired entries leave first, and past
//! the bound the revocation that expires soonest is let go. The set then fails closed: until the
//! last revocation it let go has expired, or while its watch has not caught up with the bucket,
//! a token it does not hold is looked up in the bucket itself (one KV get), and a bucket that
//! cannot be asked refuses the request as `unavailable` rather than letting the token through.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use dyschat_protocol::{wire::ServerFrame, ApiError};

use super::CoreError;
use crate::ports::RevocationStore;
use crate::socket::{OutFrame, SocketHandle, CLOSE_POLICY};

/// The most revocations held in memory: about 16 MB at most, far more than the logouts of a
/// token lifetime (a day by default) of a large deployment; past it, see the module doc.
pub(crate) const MAX_HELD: usize = 100_000;

/// What the set alone says of a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    Revoked,
    Valid,
    /// The set cannot vouch for the token: ask the bucket.
    Unknown,
}

/// The revocations held: token id -> expiry (unix seconds), bounded, soonest expiry first out.
#[derive(Debug)]
pub(crate) struct RevokedSet {
    by_id: HashMap<String, i64>,
    by_expiry: BTreeSet<(i64, String)>,
    cap: usize,
    /// Until then (unix seconds) a revocation may be missing: one was let go at the cap.
    unheld_until: i64,
    /// The watch has replayed the bucket and follows it: everything in it is here (or let go).
    current: bool,
}

impl RevokedSet {
    pub(crate) fn new(cap: usize) -> RevokedSet {
        RevokedSet {
            by_id: HashMap::new(),
            by_expiry: BTreeSet::new(),
            cap: cap.max(1),
            unheld_until: 0,
            current: false,
        }
    }

    pub(crate) fn verdict(&self, token_id: &str, now: i64) -> Verdict {
        if self.by_id.contains_key(token_id) {
            Verdict::Revoked
        } else if !self.current || now < self.unheld_until {
            Verdict::Unknown
        } else {
            Verdict::Valid
        }
    }

    /// Holds the revocation of `token_id`, which expires at `expires`, unless it has expired.
    pub(crate) fn insert(&mut self, token_id: &str, expires: i64, now: i64) {
        self.prune(now);
        if expires <= now || self.by_id.contains_key(token_id) {
            return;
        }
        if self.by_id.len() >= self.cap {
            match self.by_expiry.first().cloned() {
                Some((soonest, id)) if soonest < expires => {
                    self.by_expiry.remove(&(soonest, id.clone()));
                    self.by_id.remove(&id);
                    self.unheld_until = self.unheld_until.max(soonest);
                }
                _ => {
                    self.unheld_until = self.unheld_until.max(expires);
                    return;
                }
            }
        }
        self.by_id.insert(token_id.to_string(), expires);
        self.by_expiry.insert((expires, token_id.to_string()));
    }

    /// Whether the set follows the bucket (see [`Revocations::set_current`]).
    pub(crate) fn set_current(&mut self, current: bool) {
        self.current = current;
    }

    pub(crate) fn len(&self) -> usize {
        self.by_id.len()
    }

    /// Drops the revocations of tokens that have expired (they are refused as expired anyway).
    fn prune(&mut self, now: i64) {
        while let Some((expires, _)) = self.by_expiry.first() {
            if *expires > now {
                break;
            }
            if let Some((_, id)) = self.by_expiry.pop_first() {
                self.by_id.remove(&id);
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The agent's revocations and, per token id, the local sockets authenticated with it (one entry
/// per open socket, so the map is bounded by the sockets the agent holds).
pub(crate) struct Revocations {
    set: Mutex<RevokedSet>,
    sockets: Mutex<HashMap<String, Vec<SocketHandle>>>,
    store: Arc<dyn RevocationStore>,
}

impl Revocations {
    pub(crate) fn new(store: Arc<dyn RevocationStore>, cap: usize) -> Arc<Revocations> {
        Arc::new(Revocations {
            set: Mutex::new(RevokedSet::new(cap)),
            sockets: Mutex::new(HashMap::new()),
            store,
        })
    }

    /// Whether token `token_id` (expiring at `expires`) is revoked: the set's answer, or the
    /// bucket's when the set cannot vouch. Fails closed: `unavailable` when the bucket cannot be
    /// asked.
    pub(crate) async fn check(
        &self,
        token_id: &str,
        expires: i64,
        now: i64,
    ) -> Result<bool, CoreError> {
        let verdict = lock(&self.set).verdict(token_id, now);
        match verdict {
            Verdict::Revoked => Ok(true),
            Verdict::Valid => Ok(false),
            Verdict::Unknown => {
                let revoked = self
                    .store
                    .is_revoked(token_id)
                    .await
                    .map_err(CoreError::unavailable("checking revoked tokens"))?;
                if revoked {
                    self.revoked(token_id, expires, now);
                }
                Ok(revoked)
            }
        }
    }

    /// A revocation learned (from the bucket's watch, or this agent's own logout): held until the
    /// token expires, and every local socket authenticated with the token is closed now.
    pub(crate) fn revoked(&self, token_id: &str, expires: i64, now: i64) {
        lock(&self.set).insert(token_id, expires, now);
        let sockets = lock(&self.sockets).get(token_id).cloned();
        for socket in sockets.into_iter().flatten() {
            close_revoked(&socket);
        }
    }

    /// Whether the set holds every revocation of the bucket: the watch replayed the bucket and
    /// follows it. Until it does (and again while the watch is re-established), tokens the set
    /// does not hold are looked up in the bucket.
    pub(crate) fn set_current(&self, current: bool) {
        lock(&self.set).set_current(current);
    }

    /// How many revocations are held.
    pub(crate) fn held(&self) -> usize {
        lock(&self.set).len()
    }

    /// Records that `socket` is authenticated with token `token_id` until the returned
    /// [`Attachment`] is dropped. A token revoked between its check and this call is caught
    /// here: the socket is closed at once.
    pub(crate) fn attach(self: &Arc<Self>, token_id: &str, socket: SocketHandle) -> Attachment {
        lock(&self.sockets)
            .entry(token_id.to_string())
            .or_default()
            .push(socket.clone());
        // After the socket is listed: a revocation inserted before this check is seen here, one
        // inserted after finds the socket in the list.
        if lock(&self.set).by_id.contains_key(token_id) {
            close_revoked(&socket);
        }
        Attachment {
            revocations: self.clone(),
            token_id: token_id.to_string(),
            socket_id: socket.id(),
        }
    }

    fn detach(&self, token_id: &str, socket_id: u64) {
        let mut sockets = lock(&self.sockets);
        if let Some(list) = sockets.get_mut(token_id) {
            list.retain(|s| s.id() != socket_id);
            if list.is_empty() {
                sockets.remove(token_id);
            }
        }
    }

    #[cfg(test)]
    pub(crate) fn attached(&self) -> usize {
        lock(&self.sockets).values().map(Vec::len).sum()
    }
}

/// Tells the socket why and closes it, like an expired token (1008).
fn close_revoked(socket: &SocketHandle) {
    socket.push(OutFrame::new(&ServerFrame::error(
        ApiError::unauthorized("token revoked"),
        None,
    )));
    socket.close(CLOSE_POLICY);
}

/// A socket's listing under the token it authenticated with; dropping it unlists the socket.
pub(crate) struct Attachment {
    revocations: Arc<Revocations>,
    token_id: String,
    socket_id: u64,
}

impl Drop for Attachment {
    fn drop(&mut self) {
        self.revocations.detach(&self.token_id, self.socket_id);
    }
}
