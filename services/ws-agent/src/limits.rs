//! What one agent lets a single user or client address do: sends per second, login and register
//! attempts per minute, open sockets. (How many requests to auth and rooms it has in flight is
//! bounded where they are made, in `adapters::services`.)
//!
//! Everything is in memory and per agent (no shared store to slow the hot path or to fail): with N
//! agents behind a balancer a user may get up to N times the configured rate, which is fine for
//! abuse control. The token buckets come from [`dyschat_runtime::ratelimit`]; their maps are
//! bounded, so a flood of user ids or addresses cannot grow memory without limit. Functions take
//! the current [`Instant`] so the rules are unit tested with an injected clock.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dyschat_protocol::{ApiError, ErrorCode};
use dyschat_runtime::ratelimit::{retry_after_ms, KeyedLimiter, Rate};

use crate::config::AgentSettings;

/// The most users (and, separately, client addresses) whose buckets one agent remembers.
pub(crate) const MAX_TRACKED_KEYS: usize = 100_000;

/// What a client refused for holding too many sockets is told to wait before trying again.
pub(crate) const SOCKET_RETRY_AFTER_MS: u64 = 1_000;

pub(crate) struct Limits {
    sends: KeyedLimiter<String>,
    logins: KeyedLimiter<IpAddr>,
    pub(crate) sockets: SocketCounter,
}

impl Limits {
    pub(crate) fn new(config: &AgentSettings) -> Limits {
        Limits {
            sends: KeyedLimiter::new(
                Rate::new(f64::from(config.send_burst), config.send_rate_per_sec),
                MAX_TRACKED_KEYS,
            ),
            logins: KeyedLimiter::new(
                Rate::per_minute(config.login_attempts_per_addr_per_min),
                MAX_TRACKED_KEYS,
            ),
            sockets: SocketCounter::new(config.max_sockets_per_user),
        }
    }

    /// One send (WebSocket or HTTP) by `user_id`, or `rate_limited` with the wait.
    pub(crate) fn check_send(&self, user_id: &str, now: Instant) -> Result<(), ApiError> {
        self.sends
            .try_acquire(user_id, now)
            .map_err(|wait| limited("send", wait))
    }

    /// One register or login attempt from `peer`. Without a known address (the router driven
    /// directly in a test, no `ConnectInfo`) there is nothing to key on and the attempt passes;
    /// auth still throttles failed logins per username.
    pub(crate) fn check_login(&self, peer: Option<IpAddr>, now: Instant) -> Result<(), ApiError> {
        match peer {
            Some(ip) => self
                .logins
                .try_acquire(&address_key(ip), now)
                .map_err(|wait| limited("login", wait)),
            None => Ok(()),
        }
    }
}

fn limited(kind: &'static str, wait: Duration) -> ApiError {
    metrics::counter!(dyschat_runtime::metric::RATE_LIMITED_TOTAL, "kind" => kind).increment(1);
    ApiError::rate_limited(retry_after_ms(wait))
}

/// The key a client address is limited under. An IPv6 host usually owns a whole /64, so all of
/// it counts as one client; an IPv4-mapped IPv6 address counts as its IPv4 address.
pub(crate) fn address_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let s = v6.segments();
            IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
        v4 => v4,
    }
}

/// Open sockets per user on this agent. A slot is taken atomically and given back when its
/// [`SocketSlot`] drops, so two sockets opening at once cannot both slip past the bound.
#[derive(Clone)]
pub(crate) struct SocketCounter {
    max: usize,
    open: Arc<Mutex<HashMap<String, usize>>>,
}

impl SocketCounter {
    pub(crate) fn new(max: usize) -> SocketCounter {
        SocketCounter {
            max,
            open: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, usize>> {
        self.open.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether `user_id` may open one more socket (checked before upgrading, to answer with a
    /// plain 429 while that is still possible; [`try_open`](Self::try_open) decides).
    pub(crate) fn has_room(&self, user_id: &str) -> Result<(), ApiError> {
        if self.lock().get(user_id).copied().unwrap_or(0) < self.max {
            Ok(())
        } else {
            Err(self.too_many())
        }
    }

    /// Takes a slot for a socket of `user_id`.
    pub(crate) fn try_open(&self, user_id: &str) -> Result<SocketSlot, ApiError> {
        let mut open = self.lock();
        let n = open.entry(user_id.to_string()).or_insert(0);
        if *n >= self.max {
            return Err(self.too_many());
        }
        *n += 1;
        Ok(SocketSlot {
            counter: self.clone(),
            user_id: user_id.to_string(),
        })
    }

    fn too_many(&self) -> ApiError {
        metrics::counter!(dyschat_runtime::metric::RATE_LIMITED_TOTAL, "kind" => "sockets")
            .increment(1);
        ApiError {
            code: ErrorCode::RateLimited,
            message: format!(
                "too many open sockets for this user on this server (at most {})",
                self.max
            ),
            retry_after_ms: Some(SOCKET_RETRY_AFTER_MS),
        }
    }

    /// Sockets `user_id` holds now.
    #[cfg(test)]
    pub(crate) fn count(&self, user_id: &str) -> usize {
        self.lock().get(user_id).copied().unwrap_or(0)
    }
}

/// One open socket's place in its user's count.
pub(crate) struct SocketSlot {
    counter: SocketCounter,
    user_id: String,
}

impl Drop for SocketSlot {
    fn drop(&mut self) {
        let mut open = self.counter.lock();
        if let Some(n) = open.get_mut(&self.user_id) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.remove(&self.user_id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(pairs: &[(&str, &str)]) -> Limits {
        let config =
            crate::Config::from_env(&dyschat_runtime::Env::from_pairs(pairs.iter().copied()))
                .expect("valid configuration");
        Limits::new(&config.agent)
    }

    #[test]
    fn sends_allow_the_burst_then_the_rate_per_user() {
        let l = limits(&[
            ("DYSCHAT_SEND_RATE_PER_SEC", "10"),
            ("DYSCHAT_SEND_BURST", "3"),
        ]);
        let t0 = Instant::now();
        for _ in 0..3 {
            l.check_send("alice", t0).unwrap();
        }
        let e = l.check_send("alice", t0).unwrap_err();
        assert_eq!(e.code, ErrorCode::RateLimited);
        assert_eq!(e.retry_after_ms, Some(100));
        // Another user is not affected, and alice gets one send per 100 ms.
        l.check_send("bob", t0).unwrap();
        assert!(l
            .check_send("alice", t0 + Duration::from_millis(99))
            .is_err());
        l.check_send("alice", t0 + Duration::from_millis(100))
            .unwrap();
    }

    #[test]
    fn logins_are_limited_per_address_and_pass_without_one() {
        let l = limits(&[("DYSCHAT_LOGIN_ATTEMPTS_PER_ADDR_PER_MIN", "2")]);
        let t0 = Instant::now();
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        l.check_login(Some(a), t0).unwrap();
        l.check_login(Some(a), t0).unwrap();
        let e = l.check_login(Some(a), t0).unwrap_err();
        assert_eq!(e.retry_after_ms, Some(30_000));
        l.check_login(Some("10.0.0.2".parse().unwrap()), t0)
            .unwrap();
        for _ in 0..10 {
            l.check_login(None, t0).unwrap();
        }
        l.check_login(Some(a), t0 + Duration::from_secs(30))
            .unwrap();
    }

    #[test]
    fn addresses_group_ipv6_by_slash_64_and_unmap_ipv4() {
        let k = |s: &str| address_key(s.parse().unwrap());
        assert_eq!(k("2001:db8:1:2:aaaa::1"), k("2001:db8:1:2:bbbb::2"));
        assert_ne!(k("2001:db8:1:2::1"), k("2001:db8:1:3::1"));
        assert_eq!(k("::ffff:10.0.0.1"), k("10.0.0.1"));
    }

    #[test]
    fn sockets_are_counted_and_released() {
        let counter = SocketCounter::new(2);
        let a = counter.try_open("u").unwrap();
        let _b = counter.try_open("u").unwrap();
        assert!(counter.has_room("u").is_err());
        let Err(e) = counter.try_open("u") else {
            panic!("a third socket was admitted");
        };
        assert_eq!(e.code, ErrorCode::RateLimited);
        assert_eq!(e.retry_after_ms, Some(SOCKET_RETRY_AFTER_MS));
        assert!(counter.try_open("v").is_ok());
        drop(a);
        assert_eq!(counter.count("u"), 1);
        assert!(counter.has_room("u").is_ok());
        drop(_b);
        assert_eq!(counter.count("u"), 0);
    }
}
