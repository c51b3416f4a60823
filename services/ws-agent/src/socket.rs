//! The sending half of one WebSocket as the rest of the agent sees it.
//!
//! Every frame for a socket goes through one bounded queue. Fan-out never waits on a socket: when
//! the queue is full the socket is marked for closing with 1013 (try again later) and the client
//! recovers by rejoining with `since`, so one slow reader cannot slow a room down.

use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::time::Instant;

use axum::extract::ws::Utf8Bytes;
use dyschat_protocol::wire::ServerFrame;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Close code for a socket that did not keep up.
pub(crate) const CLOSE_SLOW: u16 = 1013;
/// Close code for a frame over the size limit.
pub(crate) const CLOSE_TOO_BIG: u16 = 1009;
/// Close code for authentication failures and expiry.
pub(crate) const CLOSE_POLICY: u16 = 1008;
/// Close code for agent shutdown, and for a peer that stopped answering pings.
pub(crate) const CLOSE_GOING_AWAY: u16 = 1001;

/// The agent's clock for "when was a socket last heard from": milliseconds since the first use
/// (tokio's clock, so tests can pause it).
fn now_ms() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    let start = *START.get_or_init(Instant::now);
    u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// A serialized server frame and its `type`, known when it was built (for the frames-out metric),
/// cheap to clone: fan-out shares one serialization among every socket of a room. `built` is
/// when it was made, so the writer can tell how long a frame waited for its socket (fan-out
/// queues a frame on every socket at once, so that is also when it was queued).
#[derive(Clone, Debug)]
pub(crate) struct OutFrame {
    pub(crate) kind: &'static str,
    pub(crate) text: Utf8Bytes,
    pub(crate) built: Instant,
}

impl OutFrame {
    pub(crate) fn new(frame: &ServerFrame) -> OutFrame {
        OutFrame {
            kind: frame.kind(),
            text: Utf8Bytes::from(frame.to_json()),
            built: Instant::now(),
        }
    }
}

impl From<&ServerFrame> for OutFrame {
    fn from(frame: &ServerFrame) -> OutFrame {
        OutFrame::new(frame)
    }
}

static NEXT_SOCKET_ID: AtomicU64 = AtomicU64::new(1);

/// A cheap, cloneable handle on a socket's outbound queue.
#[derive(Clone, Debug)]
pub(crate) struct SocketHandle {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    id: u64,
    user_id: String,
    tx: mpsc::Sender<OutFrame>,
    closing: CancellationToken,
    close_code: AtomicU16,
    /// When the peer last sent anything (any frame, pongs included), see [`now_ms`].
    last_heard: AtomicU64,
}

impl SocketHandle {
    /// A handle and the receiving end its writer task drains.
    pub(crate) fn new(user_id: String, capacity: usize) -> (Self, mpsc::Receiver<OutFrame>) {
        let (tx, rx) = mpsc::channel(capacity);
        let handle = SocketHandle {
            inner: Arc::new(Inner {
                id: NEXT_SOCKET_ID.fetch_add(1, Ordering::Relaxed),
                user_id,
                tx,
                closing: CancellationToken::new(),
                close_code: AtomicU16::new(0),
                last_heard: AtomicU64::new(now_ms()),
            }),
        };
        (handle, rx)
    }

    pub(crate) fn id(&self) -> u64 {
        self.inner.id
    }

    pub(crate) fn user_id(&self) -> &str {
        &self.inner.user_id
    }

    /// Queues a frame without waiting. Returns false if the socket is gone or was just closed
    /// for being too slow.
    pub(crate) fn push(&self, frame: OutFrame) -> bool {
        match self.inner.tx.try_send(frame) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                metrics::counter!(dyschat_runtime::metric::WS_SLOW_CONSUMER_CLOSED_TOTAL)
                    .increment(1);
                tracing::info!(socket = self.id(), "outbound queue full, closing with 1013");
                self.close(CLOSE_SLOW);
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }

    /// Waits for room in the queue (the caller then decides whether to use it); `None` if the
    /// socket closes meanwhile.
    pub(crate) async fn reserve(&self) -> Option<mpsc::Permit<'_, OutFrame>> {
        tokio::select! {
            permit = self.inner.tx.reserve() => permit.ok(),
            _ = self.inner.closing.cancelled() => None,
        }
    }

    /// The peer just sent something: it is alive.
    pub(crate) fn heard(&self) {
        self.inner.last_heard.store(now_ms(), Ordering::Relaxed);
    }

    /// How long the peer has been silent.
    pub(crate) fn silent_for(&self) -> Duration {
        Duration::from_millis(
            now_ms().saturating_sub(self.inner.last_heard.load(Ordering::Relaxed)),
        )
    }

    /// Asks the socket to close with `code`; the first code asked for wins.
    pub(crate) fn close(&self, code: u16) {
        let _ =
            self.inner
                .close_code
                .compare_exchange(0, code, Ordering::AcqRel, Ordering::Acquire);
        self.inner.closing.cancel();
    }

    pub(crate) fn closing(&self) -> &CancellationToken {
        &self.inner.closing
    }

    /// The code the socket should close with, once [`close`](Self::close) was called.
    pub(crate) fn close_code(&self) -> Option<u16> {
        match self.inner.close_code.load(Ordering::Acquire) {
            0 => None,
            code => Some(code),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_full_queue_closes_with_1013() {
        let (socket, mut rx) = SocketHandle::new("u".into(), 2);
        let frame = |r: &str| {
            OutFrame::new(&ServerFrame::Pong {
                reference: Some(r.into()),
            })
        };
        assert!(socket.push(frame("a")));
        assert!(socket.push(frame("b")));
        assert!(!socket.push(frame("c")));
        assert_eq!(socket.close_code(), Some(CLOSE_SLOW));
        assert!(socket.closing().is_cancelled());
        let first = rx.recv().await.unwrap();
        assert_eq!(
            (first.kind, first.text.as_str()),
            ("pong", r#"{"type":"pong","ref":"a"}"#)
        );
    }
}
