//! What a single user or client address may do: requests of every kind per second (across all
//! agents together, see [`shared`]), register and login attempts per address, open sockets per
//! user (per agent: a socket is a local resource), and how often typing is passed on.
//!
//! The classes of requests, each a budget of its own per user:
//! - `send`: WebSocket `send` and HTTP posts (`DYSCHAT_SEND_RATE_PER_SEC`, `DYSCHAT_SEND_BURST`);
//! - `request`: every other frame and every authenticated route (`DYSCHAT_REQUEST_RATE_PER_SEC`,
//!   `DYSCHAT_REQUEST_BURST`), so no frame type and no route is unlimited;
//! - `login`: register and login per client address (`DYSCHAT_LOGIN_ATTEMPTS_PER_ADDR_PER_MIN`).
//!
//! `typing` is also forwarded at most once per [`TYPING_EVERY`] per user and room; the rest are
//! accepted and dropped. The maps are bounded, so a flood of user ids or addresses cannot grow
//! memory without limit.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dyschat_protocol::{ApiError, ErrorCode};
use dyschat_runtime::ratelimit::{retry_after_ms, Rate};

use crate::config::AgentSettings;
use crate::ports::RateStore;

pub(crate) mod shared;

use shared::SharedLimit;

/// The most users (and, separately, client addresses) whose buckets one agent remembers.
pub(crate) const MAX_TRACKED_KEYS: usize = 100_000;

/// What a client refused for holding too many sockets is told to wait before trying again.
pub(crate) const SOCKET_RETRY_AFTER_MS: u64 = 1_000;

/// Typing is passed on at most this often per user and room.
pub(crate) const TYPING_EVERY: Duration = Duration::from_secs(2);

/// A class of requests with a budget of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Class {
    Send,
    Request,
}

pub(crate) struct Limits {
    sends: SharedLimit,
    /// Bytes of message bodies a user may store per day (a bucket as big as a day's quota,
    /// refilled over the day): one account cannot fill the stream's store for everyone.
    stored_bytes: SharedLimit,
    requests: SharedLimit,
    logins: SharedLimit,
    /// Typing this agent passed on to the mesh, and typing it showed to its sockets: a user with
    /// sockets on several agents still types at most once per 2 s per room for everyone.
    pub(crate) typing_sent: Debounce,
    pub(crate) typing_shown: Debounce,
    pub(crate) sockets: SocketCounter,
    /// Live agents (kept by the agent registry), for the share each allows on its own.
    pub(crate) agents: Arc<AtomicUsize>,
}

impl Limits {
    pub(crate) fn new(config: &AgentSettings, store: Arc<dyn RateStore>) -> Limits {
        let agents = Arc::new(AtomicUsize::new(1));
        let shared = |name, rate| {
            SharedLimit::new(name, rate, store.clone(), agents.clone(), MAX_TRACKED_KEYS)
        };
        Limits {
            sends: shared(
                "send",
                Rate::new(f64::from(config.send_burst), config.send_rate_per_sec),
            ),
            stored_bytes: shared(
                "bytes",
                Rate::new(
                    config.max_bytes_per_user_per_day as f64,
                    config.max_bytes_per_user_per_day as f64 / 86_400.0,
                ),
            ),
            requests: shared(
                "request",
                Rate::new(f64::from(config.request_burst), config.request_rate_per_sec),
            ),
            logins: shared(
                "login",
                Rate::per_minute(config.login_attempts_per_addr_per_min),
            ),
            typing_sent: Debounce::new(TYPING_EVERY),
            typing_shown: Debounce::new(TYPING_EVERY),
            sockets: SocketCounter::new(config.max_sockets_per_user),
            agents,
        }
    }

    /// One request of `class` by `user_id`, or `rate_limited` with the wait.
    pub(crate) async fn check(&self, class: Class, user_id: &str) -> Result<(), ApiError> {
        let (limit, name) = match class {
            Class::Send => (&self.sends, "send"),
            Class::Request => (&self.requests, "request"),
        };
        limit
            .check(user_id)
            .await
            .map_err(|wait| limited(name, wait))
    }

    /// `bytes` more stored by `user_id` today, or `rate_limited` (429) until the quota allows.
    pub(crate) async fn check_stored_bytes(
        &self,
        user_id: &str,
        bytes: usize,
    ) -> Result<(), ApiError> {
        let bytes = u32::try_from(bytes).unwrap_or(u32::MAX);
        self.stored_bytes
            .check_cost(user_id, bytes)
            .await
            .map_err(|wait| limited("bytes", wait))
    }

    /// One register or login attempt from `peer`. Without a known address (the router driven
    /// directly in a test, no `ConnectInfo`) there is nothing to key on and the attempt passes;
    /// auth still throttles failed logins per username.
    pub(crate) async fn check_login(&self, peer: Option<IpAddr>) -> Result<(), ApiError> {
        match peer {
            Some(ip) => self
                .logins
                .check(&address_key(ip).to_string())
                .await
                .map_err(|wait| limited("login", wait)),
            None => Ok(()),
        }
    }
}

/// At most one event per `every` per (user, room); the map is bounded.
pub(crate) struct Debounce {
    every: Duration,
    last: Mutex<HashMap<(String, String), Instant>>,
}

impl Debounce {
    pub(crate) fn new(every: Duration) -> Debounce {
        Debounce {
            every,
            last: Mutex::new(HashMap::new()),
        }
    }

    /// Whether `user_id`'s event in `room_id` goes through now (and if so, counts it).
    pub(crate) fn due(&self, user_id: &str, room_id: &str, now: Instant) -> bool {
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        let key = (user_id.to_string(), room_id.to_string());
        if last
            .get(&key)
            .is_some_and(|at| now.saturating_duration_since(*at) < self.every)
        {
            return false;
        }
        if last.len() >= MAX_TRACKED_KEYS {
            let every = self.every;
            last.retain(|_, at| now.saturating_duration_since(*at) < every);
            if last.len() >= MAX_TRACKED_KEYS {
                last.clear();
            }
        }
        last.insert(key, now);
        true
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
        Limits::new(
            &config.agent,
            Arc::new(crate::testing::FakeRates::default()),
        )
    }

    #[tokio::test]
    async fn sends_allow_the_burst_then_wait_per_user() {
        let l = limits(&[
            ("DYSCHAT_SEND_RATE_PER_SEC", "0.01"),
            ("DYSCHAT_SEND_BURST", "3"),
        ]);
        for _ in 0..3 {
            l.check(Class::Send, "alice").await.unwrap();
        }
        let e = l.check(Class::Send, "alice").await.unwrap_err();
        assert_eq!(e.code, ErrorCode::RateLimited);
        assert!(e
            .retry_after_ms
            .is_some_and(|ms| ms > 90_000 && ms <= 100_000));
        // Another user, and another class of the same user, are not affected.
        l.check(Class::Send, "bob").await.unwrap();
        l.check(Class::Request, "alice").await.unwrap();
    }

    #[tokio::test]
    async fn logins_are_limited_per_address_and_pass_without_one() {
        let l = limits(&[("DYSCHAT_LOGIN_ATTEMPTS_PER_ADDR_PER_MIN", "2")]);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        l.check_login(Some(a)).await.unwrap();
        l.check_login(Some(a)).await.unwrap();
        let e = l.check_login(Some(a)).await.unwrap_err();
        assert!(e
            .retry_after_ms
            .is_some_and(|ms| ms > 29_000 && ms <= 30_000));
        l.check_login(Some("10.0.0.2".parse().unwrap()))
            .await
            .unwrap();
        for _ in 0..10 {
            l.check_login(None).await.unwrap();
        }
    }

    #[test]
    fn typing_is_passed_on_once_per_two_seconds_per_user_and_room() {
        let typing = Debounce::new(TYPING_EVERY);
        let t0 = Instant::now();
        assert!(typing.due("alice", "r1", t0));
        assert!(!typing.due("alice", "r1", t0 + Duration::from_millis(1999)));
        assert!(typing.due("alice", "r2", t0), "another room");
        assert!(typing.due("bob", "r1", t0), "another user");
        assert!(typing.due("alice", "r1", t0 + Duration::from_secs(2)));
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
