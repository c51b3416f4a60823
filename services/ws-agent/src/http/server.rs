//! The accept loop of the HTTP edge, with the bounds `axum::serve` does not have.
//!
//! - At most `max_connections` connections at once (beyond it the loop stops accepting, and the
//!   kernel's backlog holds the rest), and at most `max_connections_per_addr` from one client
//!   address (an IPv6 /64 counts as one; beyond it a connection is closed at once), so no single
//!   client can take every descriptor.
//! - A request head must arrive within `head_timeout` (30 s), and a kept-alive connection that sends
//!   no new request within it is closed (hyper's header-read timer also runs between requests).
//! - Every accepted socket gets TCP_NODELAY: a frame is one small write, and with Nagle a frame
//!   written while the previous one is unacknowledged waits for the peer's delayed ACK (up to
//!   40 ms), which dyschat-bench saw as a 20 ms median ack latency at light load.
//! - The peer address reaches the handlers as axum's `ConnectInfo` (login throttling keys on it).
//!
//! On shutdown the loop stops accepting and every connection is asked to finish gracefully;
//! WebSockets end through their own shutdown path.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use crate::limits::address_key;

#[derive(Debug, Clone, Copy)]
pub(crate) struct ServerLimits {
    pub max_connections: usize,
    pub max_connections_per_addr: usize,
    /// How long a request head (or, on a kept-alive connection, the next request) may take.
    pub head_timeout: Duration,
}

/// Open connections per client address; a slot is given back when its guard drops.
#[derive(Clone, Default)]
struct PerAddress(Arc<Mutex<HashMap<IpAddr, usize>>>);

struct AddressSlot {
    counts: PerAddress,
    addr: IpAddr,
}

impl PerAddress {
    fn try_take(&self, addr: IpAddr, max: usize) -> Option<AddressSlot> {
        let mut counts = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let n = counts.entry(addr).or_insert(0);
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(AddressSlot {
            counts: self.clone(),
            addr,
        })
    }
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        let mut counts = self.counts.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = counts.get_mut(&self.addr) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                counts.remove(&self.addr);
            }
        }
    }
}

/// Serves `router` on `listener` until `shutdown`, then lets open connections finish for at most
/// `drain`.
pub(crate) async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ServerLimits,
    shutdown: CancellationToken,
    drain: Duration,
) -> std::io::Result<()> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.head_timeout)
        .keep_alive(true);
    builder.http2().timer(TokioTimer::new());
    let builder = Arc::new(builder);
    let graceful = GracefulShutdown::new();
    let connections = Arc::new(Semaphore::new(limits.max_connections));
    let per_address = PerAddress::default();
    loop {
        let permit = tokio::select! {
            _ = shutdown.cancelled() => break,
            permit = connections.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
        };
        let (tcp, peer) = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Some(address_slot) =
            per_address.try_take(address_key(peer.ip()), limits.max_connections_per_addr)
        else {
            metrics::counter!(dyschat_runtime::metric::CONNECTIONS_REFUSED_TOTAL).increment(1);
            drop(tcp);
            continue;
        };
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "TCP_NODELAY not set");
        }
        let service = connection_service(router.clone(), peer);
        let connection = builder
            .serve_connection_with_upgrades(TokioIo::new(tcp), service)
            .into_owned();
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
            drop((permit, address_slot));
        });
    }
    if tokio::time::timeout(drain, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("connections still open after the drain timeout");
    }
    Ok(())
}

/// The router as a hyper service for one connection, with the peer address in every request.
fn connection_service(
    router: Router,
    peer: SocketAddr,
) -> TowerToHyperService<
    impl tower::Service<
            axum::http::Request<Incoming>,
            Response = axum::response::Response,
            Error = std::convert::Infallible,
            Future = impl Send,
        > + Clone,
> {
    let service = router.map_request(move |mut request: axum::http::Request<Incoming>| {
        request.extensions_mut().insert(ConnectInfo(peer));
        request
    });
    TowerToHyperService::new(service)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_slots_are_bounded_and_given_back() {
        let counts = PerAddress::default();
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let first = counts.try_take(a, 2).unwrap();
        let _second = counts.try_take(a, 2).unwrap();
        assert!(counts.try_take(a, 2).is_none());
        assert!(counts.try_take("10.0.0.2".parse().unwrap(), 2).is_some());
        drop(first);
        assert!(counts.try_take(a, 2).is_some());
    }
}
