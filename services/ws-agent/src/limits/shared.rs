//! Rate limits that hold across every agent: a user (or a client address) gets the configured
//! rate in total, however many agents their sockets and requests are spread over.
//!
//! The count lives in Redis ([`RateStore`]: a token bucket per key, refilled by Redis's own
//! clock, so agents' clocks do not matter). Asking Redis for every frame would put a round trip
//! on every send, so an agent *leases* a few tokens at a time (about [`LEASE`] worth of the rate)
//! and spends them locally; unused ones lapse after [`LEASE_LIFETIME`]. Tokens are only ever taken
//! from the shared bucket, so N agents never allow more than the rate together.
//!
//! When Redis does not answer (down, slow, refusing), each agent falls back to a local bucket at
//! a cost of N tokens per request, N being the number of live agents: the total stays at the
//! rate. After a failure the store is not asked again for [`STORE_BACKOFF`], so an outage costs
//! no latency per frame.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dyschat_runtime::ratelimit::{KeyedLimiter, Rate};

use crate::ports::RateStore;

/// How much of the rate one lease covers.
pub(crate) const LEASE: Duration = Duration::from_millis(250);
/// How long leased tokens may be spent. Long, so that a user who sends every few seconds (most
/// users) spends a lease over several sends instead of asking Redis on every one: that round
/// trip was on the path of every such send, behind whatever Redis was doing (an `appendfsync
/// always` fsync). Holding tokens longer cannot raise the rate: they were taken from the shared
/// bucket, and what an agent holds unspent is at most one lease ([`LEASE`] of the rate) per user,
/// which the user's other agents miss until it lapses.
pub(crate) const LEASE_LIFETIME: Duration = Duration::from_secs(30);
/// How long the store is left alone after it failed.
pub(crate) const STORE_BACKOFF: Duration = Duration::from_secs(1);
/// The most keys holding a lease at once.
const MAX_LEASES: usize = 100_000;

struct Lease {
    tokens: u32,
    expires: Instant,
}

/// One limit (sends, requests, logins...) shared by every agent.
pub(crate) struct SharedLimit {
    name: &'static str,
    rate: Rate,
    store: Arc<dyn RateStore>,
    leases: Mutex<HashMap<String, Lease>>,
    fallback: KeyedLimiter<String>,
    /// Live agents, for the fallback's share (at least 1).
    agents: Arc<AtomicUsize>,
    store_down_until: Mutex<Option<Instant>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl SharedLimit {
    pub(crate) fn new(
        name: &'static str,
        rate: Rate,
        store: Arc<dyn RateStore>,
        agents: Arc<AtomicUsize>,
        max_keys: usize,
    ) -> SharedLimit {
        SharedLimit {
            name,
            rate,
            store,
            leases: Mutex::new(HashMap::new()),
            fallback: KeyedLimiter::new(rate, max_keys),
            agents,
            store_down_until: Mutex::new(None),
        }
    }

    /// Tokens asked for at once: a quarter second of the rate, at least 1, at most the burst.
    fn lease_size(&self) -> u32 {
        let size = (self.rate.per_sec * LEASE.as_secs_f64()).ceil();
        size.clamp(1.0, self.rate.capacity.max(1.0)) as u32
    }

    /// Spends `cost` leased tokens of `key`, if that many are there.
    fn spend_leased(&self, key: &str, cost: u32, now: Instant) -> bool {
        let mut leases = lock(&self.leases);
        match leases.get_mut(key) {
            Some(lease) if lease.tokens >= cost && lease.expires > now => {
                lease.tokens -= cost;
                true
            }
            _ => false,
        }
    }

    fn keep_lease(&self, key: &str, tokens: u32, now: Instant) {
        let mut leases = lock(&self.leases);
        if leases.len() >= MAX_LEASES {
            leases.retain(|_, l| l.expires > now && l.tokens > 0);
            if leases.len() >= MAX_LEASES {
                leases.clear();
            }
        }
        leases.insert(
            key.to_string(),
            Lease {
                tokens,
                expires: now + LEASE_LIFETIME,
            },
        );
    }

    fn store_is_down(&self, now: Instant) -> bool {
        lock(&self.store_down_until).is_some_and(|until| until > now)
    }

    /// One request of `key`, or how long to wait.
    pub(crate) async fn check(&self, key: &str) -> Result<(), Duration> {
        self.check_cost(key, 1).await
    }

    /// A request of `key` that costs `cost` tokens (bytes, for a byte quota), or how long to wait.
    /// A cost above the burst can never be paid and waits for a full bucket.
    pub(crate) async fn check_cost(&self, key: &str, cost: u32) -> Result<(), Duration> {
        let now = Instant::now();
        let cost = cost.max(1);
        if self.spend_leased(key, cost, now) {
            return Ok(());
        }
        if !self.store_is_down(now) {
            let bucket = format!("{}:{key}", self.name);
            let want = self.lease_size().max(cost);
            match self
                .store
                .take(&bucket, self.rate.per_sec, self.rate.capacity, want)
                .await
            {
                Ok(grant) if grant.granted >= cost => {
                    self.keep_lease(key, grant.granted - cost, now);
                    return Ok(());
                }
                Ok(grant) if grant.granted > 0 => {
                    // Not enough for this request: keep what was taken for smaller ones.
                    self.keep_lease(key, grant.granted, now);
                    let short = f64::from(cost - grant.granted);
                    return Err(Duration::try_from_secs_f64(short / self.rate.per_sec)
                        .unwrap_or(Duration::MAX));
                }
                Ok(grant) => return Err(Duration::from_millis(grant.wait_ms.max(1))),
                Err(e) => {
                    tracing::warn!(limit = self.name, error = %e, "shared rate limit unavailable; limiting locally");
                    *lock(&self.store_down_until) = Some(now + STORE_BACKOFF);
                }
            }
        }
        let share = self.agents.load(Ordering::Relaxed).max(1) as f64;
        self.fallback
            .try_acquire_n(key, share * f64::from(cost), now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::FakeRates;

    fn limit(rates: Arc<FakeRates>, agents: usize, per_sec: f64, burst: f64) -> SharedLimit {
        SharedLimit::new(
            "send",
            Rate::new(burst, per_sec),
            rates,
            Arc::new(AtomicUsize::new(agents)),
            1000,
        )
    }

    #[tokio::test]
    async fn two_agents_share_one_budget() {
        let rates = Arc::new(FakeRates::default());
        // Two agents over one store: a burst of 10 in total, whichever agent is asked.
        let a = limit(rates.clone(), 2, 0.001, 10.0);
        let b = limit(rates.clone(), 2, 0.001, 10.0);
        let mut allowed = 0;
        for i in 0..40 {
            let agent = if i % 2 == 0 { &a } else { &b };
            if agent.check("alice").await.is_ok() {
                allowed += 1;
            }
        }
        assert_eq!(allowed, 10, "the burst holds across agents");
        assert!(
            a.check("bob").await.is_ok(),
            "another user has a budget of their own"
        );
    }

    #[tokio::test]
    async fn leases_spare_the_store_a_round_trip_per_request() {
        let rates = Arc::new(FakeRates::default());
        let a = limit(rates.clone(), 1, 40.0, 100.0);
        for _ in 0..20 {
            a.check("alice").await.unwrap();
        }
        // 40 per second, a quarter second per lease: 10 tokens a time.
        assert_eq!(rates.calls(), 2);
    }

    #[tokio::test]
    async fn without_the_store_each_of_n_agents_allows_its_share() {
        let rates = Arc::new(FakeRates::default());
        rates.fail(true);
        let a = limit(rates.clone(), 4, 0.001, 20.0);
        let mut allowed = 0;
        for _ in 0..40 {
            if a.check("alice").await.is_ok() {
                allowed += 1;
            }
        }
        assert_eq!(allowed, 5, "a quarter of the burst on each of four agents");
        // The store is not asked again at once: one failure, then the fallback alone.
        assert_eq!(rates.calls(), 1);
    }
}
