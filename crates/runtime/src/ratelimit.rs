//! Token buckets, alone and keyed (per user, per address, per username), held in memory.
//!
//! Used by ws-agent (sends per user, login attempts per client address) and auth (failed logins per
//! username). Every operation takes the current [`Instant`] as an argument, so the logic is tested
//! with an injected clock and no sleeping. State is per process; ws-agent shares its counts across
//! agents through Redis and falls back to these, at a cost of N tokens per request (1/N of the
//! rate for each of N agents), when it cannot.
//!
//! The keyed map is bounded: when it is full, entries whose bucket has refilled completely (idle
//! keys, indistinguishable from a fresh bucket) are dropped first; if that frees nothing, the
//! least recently used eighth goes. A flood of new keys therefore costs memory up to the bound and
//! amortised O(1) work per key, never unbounded growth.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A bucket of `capacity` tokens refilled at `rate` tokens per second.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TokenBucket {
    tokens: f64,
    last: Instant,
}

/// Capacity and refill rate shared by every bucket of a limiter.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    /// The most tokens a bucket holds (the burst).
    pub capacity: f64,
    /// Tokens added per second.
    pub per_sec: f64,
}

impl Rate {
    /// `capacity` at once, `per_sec` sustained. Both are clamped to something positive so a
    /// bucket can always refill.
    pub fn new(capacity: f64, per_sec: f64) -> Rate {
        Rate {
            capacity: capacity.max(1.0),
            per_sec: if per_sec.is_finite() && per_sec > 0.0 {
                per_sec
            } else {
                f64::MIN_POSITIVE
            },
        }
    }

    /// `n` per minute, with a burst of `n`.
    pub fn per_minute(n: u32) -> Rate {
        Rate::new(f64::from(n), f64::from(n) / 60.0)
    }

    /// How long a bucket takes to refill from empty.
    fn full_refill(&self) -> Duration {
        duration_secs(self.capacity / self.per_sec)
    }
}

fn duration_secs(secs: f64) -> Duration {
    Duration::try_from_secs_f64(secs).unwrap_or(Duration::MAX)
}

impl TokenBucket {
    /// A full bucket.
    pub fn new(rate: Rate, now: Instant) -> TokenBucket {
        TokenBucket {
            tokens: rate.capacity,
            last: now,
        }
    }

    fn refill(&mut self, rate: Rate, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate.per_sec).min(rate.capacity);
        self.last = now.max(self.last);
    }

    /// Takes one token, or says how long until one is available.
    pub fn try_take(&mut self, rate: Rate, now: Instant) -> Result<(), Duration> {
        self.try_take_n(rate, 1.0, now)
    }

    /// Takes `cost` tokens at once (a cost above the capacity never succeeds but still says
    /// how long until the bucket is full), or says how long until they are there.
    pub fn try_take_n(&mut self, rate: Rate, cost: f64, now: Instant) -> Result<(), Duration> {
        self.refill(rate, now);
        let cost = cost.min(rate.capacity);
        if self.tokens >= cost {
            self.tokens -= cost;
            Ok(())
        } else {
            Err(duration_secs((cost - self.tokens) / rate.per_sec))
        }
    }

    /// Whether the bucket would be full at `now` (so forgetting it changes nothing).
    fn is_idle(&self, rate: Rate, now: Instant) -> bool {
        now.saturating_duration_since(self.last) >= rate.full_refill()
            || self.tokens >= rate.capacity
    }
}

/// Buckets by key, bounded to `max_keys` entries.
#[derive(Debug)]
pub struct KeyedLimiter<K> {
    rate: Rate,
    max_keys: usize,
    buckets: Mutex<HashMap<K, TokenBucket>>,
}

impl<K: Hash + Eq + Clone> KeyedLimiter<K> {
    pub fn new(rate: Rate, max_keys: usize) -> Self {
        KeyedLimiter {
            rate,
            max_keys: max_keys.max(8),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    pub fn rate(&self) -> Rate {
        self.rate
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<K, TokenBucket>> {
        // A panic elsewhere cannot leave a bucket map inconsistent in a way that matters.
        self.buckets.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes a token from `key`'s bucket, or says how long until one is available.
    /// (Borrowed keys, so a `&str` looks up a `String` key without allocating on the hot path.)
    pub fn try_acquire<Q>(&self, key: &Q, now: Instant) -> Result<(), Duration>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        self.try_acquire_n(key, 1.0, now)
    }

    /// Takes `cost` tokens from `key`'s bucket: with a cost of N, the bucket allows 1/N of its
    /// rate (what one of N agents may allow on its own when they cannot share a count).
    pub fn try_acquire_n<Q>(&self, key: &Q, cost: f64, now: Instant) -> Result<(), Duration>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        let mut buckets = self.lock();
        if let Some(bucket) = buckets.get_mut(key) {
            return bucket.try_take_n(self.rate, cost, now);
        }
        if buckets.len() >= self.max_keys {
            self.evict(&mut buckets, now);
        }
        let mut bucket = TokenBucket::new(self.rate, now);
        let taken = bucket.try_take_n(self.rate, cost, now);
        buckets.insert(key.to_owned(), bucket);
        taken
    }

    /// Forgets `key` (its next request starts with a full bucket), e.g. after a successful login.
    pub fn reset<Q>(&self, key: &Q)
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.lock().remove(key);
    }

    /// Number of keys held (for tests and metrics).
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn evict(&self, buckets: &mut HashMap<K, TokenBucket>, now: Instant) {
        let rate = self.rate;
        buckets.retain(|_, b| !b.is_idle(rate, now));
        if buckets.len() < self.max_keys {
            return;
        }
        // Everyone is active: drop the least recently used eighth.
        let mut by_age: Vec<(Instant, K)> =
            buckets.iter().map(|(k, b)| (b.last, k.clone())).collect();
        let cut = (by_age.len() / 8).max(1);
        by_age.select_nth_unstable_by_key(cut - 1, |(last, _)| *last);
        for (_, key) in &by_age[..cut] {
            buckets.remove(key);
        }
    }
}

/// A wait as whole milliseconds for `retry_after_ms`, at least 1 so a client never retries at once.
pub fn retry_after_ms(wait: Duration) -> u64 {
    u64::try_from(wait.as_nanos().div_ceil(1_000_000))
        .unwrap_or(u64::MAX)
        .max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn a_bucket_allows_the_burst_then_the_rate() {
        let t0 = Instant::now();
        let rate = Rate::new(3.0, 2.0); // burst 3, then one every 500 ms
        let mut b = TokenBucket::new(rate, t0);
        for _ in 0..3 {
            assert!(b.try_take(rate, t0).is_ok());
        }
        let wait = b.try_take(rate, t0).unwrap_err();
        assert_eq!(wait, 500 * MS);
        assert!(b.try_take(rate, t0 + 499 * MS).is_err());
        assert!(b.try_take(rate, t0 + 500 * MS).is_ok());
        assert!(b.try_take(rate, t0 + 500 * MS).is_err());
        // A long pause refills to the capacity, never beyond.
        let later = t0 + Duration::from_secs(3600);
        for _ in 0..3 {
            assert!(b.try_take(rate, later).is_ok());
        }
        assert!(b.try_take(rate, later).is_err());
    }

    #[test]
    fn a_clock_going_backwards_adds_nothing() {
        let t0 = Instant::now() + Duration::from_secs(10);
        let rate = Rate::new(1.0, 1.0);
        let mut b = TokenBucket::new(rate, t0);
        assert!(b.try_take(rate, t0).is_ok());
        assert!(b.try_take(rate, t0 - Duration::from_secs(5)).is_err());
        assert!(b.try_take(rate, t0 + Duration::from_secs(1)).is_ok());
    }

    #[test]
    fn keys_have_their_own_buckets_and_reset_refills() {
        let t0 = Instant::now();
        let limiter = KeyedLimiter::new(Rate::per_minute(2), 100);
        assert!(limiter.try_acquire(&"a", t0).is_ok());
        assert!(limiter.try_acquire(&"a", t0).is_ok());
        let wait = limiter.try_acquire(&"a", t0).unwrap_err();
        assert_eq!(wait, Duration::from_secs(30));
        assert!(limiter.try_acquire(&"b", t0).is_ok());
        limiter.reset(&"a");
        assert!(limiter.try_acquire(&"a", t0).is_ok());
    }

    #[test]
    fn the_map_stays_bounded_and_keeps_active_keys() {
        let t0 = Instant::now();
        let limiter = KeyedLimiter::new(Rate::new(2.0, 1.0), 64);
        // An active key, drained.
        limiter.try_acquire(&u32::MAX, t0).unwrap();
        limiter.try_acquire(&u32::MAX, t0).unwrap();
        // Idle keys are evicted first: after 2 s every one of these has refilled.
        for k in 0..63 {
            limiter.try_acquire(&k, t0).unwrap();
        }
        let t1 = t0 + Duration::from_millis(1500);
        limiter.try_acquire(&u32::MAX, t1).unwrap(); // 0.5 token left
        let t2 = t0 + Duration::from_secs(2);
        for k in 1000..1050 {
            limiter.try_acquire(&k, t2).unwrap();
            assert!(limiter.len() <= 64);
        }
        // The active key kept its (nearly empty) bucket: one token now, not a fresh two.
        limiter.try_acquire(&u32::MAX, t2).unwrap();
        limiter.try_acquire(&u32::MAX, t2).unwrap_err();
        // A flood of active keys: still bounded.
        let t3 = t0 + Duration::from_secs(3);
        for k in 5000..6000u32 {
            let _ = limiter.try_acquire(&k, t3 + (k - 5000) * MS);
            assert!(limiter.len() <= 64, "{}", limiter.len());
        }
        // Eviction drops an eighth, not everything.
        assert!(limiter.len() >= 56, "{}", limiter.len());
    }

    #[test]
    fn retry_after_rounds_up_to_whole_milliseconds() {
        assert_eq!(retry_after_ms(Duration::ZERO), 1);
        assert_eq!(retry_after_ms(Duration::from_micros(1)), 1);
        assert_eq!(retry_after_ms(Duration::from_micros(1500)), 2);
        assert_eq!(retry_after_ms(Duration::from_millis(250)), 250);
    }
}
